"""Fault tests for the driver (ISSUE 13, failures 5, 7 and the console part of 8): two drivers on one
results directory, a killed driver's stale claims, a failed record or Tune's own state on a full
disk, and trial tracebacks kept off the console."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import faultkit
import pytest

from debiasbench import cli
from debiasbench.benchmark.experiments.driver import RunOptions, RunSummary, run_grid
from debiasbench.benchmark.experiments.failures import fit_tuner, record_failure
from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.experiments.store_lock import TrialClaims
from debiasbench.benchmark.paper.grids import build_grid
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
from debiasbench.benchmark.experiments.store_lock import TrialClaims
claims = TrialClaims(sys.argv[1], heartbeat_s=0.5)
mine, _ = claims.claim(sys.argv[2:])
print("claimed", len(mine), flush=True)
time.sleep(300)
"""


def _other_driver(store_root: Path, keys: list[str]) -> subprocess.Popen:
    """Another process holding claims on `keys` exactly as a running driver does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(repo=str(REPO)), str(store_root), *keys],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline().split() == ["claimed", str(len(keys))]
    return process


def _kill9(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def ray_never_starts(monkeypatch):
    import debiasbench.benchmark.experiments.driver as driver

    def refuse(*args, **kwargs):
        raise AssertionError("nothing should be scheduled")

    monkeypatch.setattr(driver, "ray_init", refuse)
    monkeypatch.setattr(driver, "prepare_datasets", refuse)


# -- failure 7: two drivers on one store -------------------------------------------------------------


def test_a_second_driver_skips_what_another_driver_runs_and_says_so(tmp_path, capsys, caplog, ray_never_starts):
    results = tmp_path / "r"
    ResultStore(results).ensure_writable()
    keys = [t.key for t in resolve_all(build_grid("smoke"))]
    other = _other_driver(results, keys)
    try:
        code = cli.main(["--grid", "smoke", "--results", str(results), "--progress", "off", "--no-report"])
        err = capsys.readouterr().err
        assert code == 0 and "2 trial(s) skipped: another driver is running them" in err
        assert (
            f"skipping 2 trial(s) another driver is running on this results directory (pid {other.pid} on"
            in caplog.text
        )
    finally:
        _kill9(other)

    # Killed with -9, its claims stay on disk, but they are stale at once on the same host.
    assert sorted(p.stem for p in (results / "claims" / "trials").glob("*.claim")) == sorted(keys)
    with TrialClaims(results) as claims:
        mine, others = claims.claim(keys)
        assert sorted(mine) == sorted(keys) and others == {}
    assert not list((results / "claims" / "trials").glob("*.claim"))  # released on the way out


def test_claims_of_a_driver_on_another_host_expire_when_its_heartbeat_stops(tmp_path):
    root = tmp_path / "claims"
    (root / "trials").mkdir(parents=True)
    (root / "drivers").mkdir()
    holder = {"run": "far-1-x", "host": "far-away-node", "pid": 1, "since": "2026-01-01T00:00:00+00:00"}
    (root / "drivers" / "far-1-x.json").write_text(json.dumps(holder))
    (root / "trials" / "k.claim").write_text(json.dumps(holder))
    with TrialClaims(tmp_path, stale_after_s=60) as claims:
        mine, others = claims.claim(["k"])
        assert mine == [] and others["k"].host == "far-away-node"  # heartbeat fresh: respected
    old = time.time() - 600
    os.utime(root / "drivers" / "far-1-x.json", (old, old))  # its heartbeat stopped ten minutes ago
    with TrialClaims(tmp_path, stale_after_s=60) as claims:
        mine, others = claims.claim(["k"])
        assert mine == ["k"] and others == {}


@pytest.mark.ray
def test_two_real_drivers_never_train_the_same_trial(tmp_path, toy_plugin):
    """A real second driver (run_grid in another process, Ray and all) against this one."""
    results = tmp_path / "r"
    options = dict(
        results=str(results),
        data_root=str(tmp_path),
        cache_dir=str(tmp_path / "c"),
        num_cpus=1,
        device="cpu",
        plugins=(toy_plugin,),
        progress="off",
        max_failures=0,
    )
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from debiasbench.benchmark.experiments.driver import RunOptions, run_grid\n"
        "from debiasbench.benchmark.trial import TrialConfig\n"
        f"run_grid([TrialConfig('toy', 'vanilla', epochs=100000)], RunOptions(**{options!r}))\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        logs = results / "logs"  # the trial's log appears once its worker is training
        # Generous: Ray's start takes minutes on a loaded 2-core machine; the loop ends as soon as it trains.
        deadline = time.time() + 300
        while not (logs.is_dir() and any(logs.glob("*.log"))) and time.time() < deadline:
            assert first.poll() is None, f"the first driver exited ({first.returncode}) before training"
            time.sleep(0.5)
        assert any(logs.glob("*.log")), "the first driver never started its trial"
        summary = run_grid([TrialConfig("toy", "vanilla", epochs=100000)], RunOptions(**options))
        assert summary.scheduled == 0 and len(summary.running_elsewhere) == 1
        assert f"pid {first.pid}" in next(iter(summary.running_elsewhere.values()))
        assert ResultStore(results).statuses() == {}  # nothing was trained twice, nothing finished
    finally:
        _kill9(first)


# -- failure 5: a full disk in the driver ---------------------------------------------------------------


def test_recording_a_failure_on_a_full_disk_is_a_line_not_a_crash(tmp_path, toy_plugin, monkeypatch):
    trial = resolve_all([TrialConfig("toy", "always_fails", epochs=1)])[0]
    with faultkit.tiny_filesystem(tmp_path, 256) as tiny:
        root = tiny if tiny is not None else tmp_path / "sim"
        store = ResultStore(root / "r")
        store.ensure_writable()
        if tiny is not None:
            faultkit.fill(tiny, leave_bytes=1 << 10)
        else:
            monkeypatch.setattr("os.fsync", faultkit.enospc)  # no mount permitted: simulate ENOSPC
        line = record_failure(store, trial, RuntimeError("boom " * 2000), "test")
    assert line.startswith("RuntimeError: boom")
    assert "the failure could not be recorded: cannot write result file" in line and "the disk is full" in line
    assert "\n" not in line


class _DyingTuner:
    def fit(self):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/results/_ray/experiment_state.json")
        except OSError:
            raise EOFError("Ran out of input")  # noqa: B904 - as Tune raised it, the disk error as context


def test_tune_dying_on_a_full_disk_becomes_one_line_with_the_file_and_fix(tmp_path):
    grid, aborted = fit_tuner(_DyingTuner(), tmp_path)
    assert grid == []
    assert aborted.startswith(
        "Ray Tune stopped the grid: cannot write Ray Tune's state under "
        "/results/_ray/experiment_state.json: the disk is full"
    )
    assert "--results" in aborted and "rerun the same command" in aborted


def test_the_cli_prints_an_aborted_grid_as_a_summary_and_one_error_line(capsys, tmp_path, monkeypatch):
    import debiasbench.benchmark.experiments.driver as driver

    monkeypatch.setattr(
        driver,
        "run_grid",
        lambda configs, options: RunSummary(
            scheduled=2, completed=["a"], unfinished=["b"], aborted="Ray Tune stopped the grid: the disk is full"
        ),
    )
    code = cli.main(["--grid", "smoke", "--results", str(tmp_path), "--no-report"])
    captured = capsys.readouterr()
    assert code == 1 and "1 trial(s) completed" in captured.out
    assert "error: Ray Tune stopped the grid: the disk is full" in captured.err and "Traceback" not in captured.err


@pytest.mark.ray
def test_a_grid_on_a_full_disk_ends_in_a_summary_and_leaves_no_temporary_files(tmp_path, toy_plugin, monkeypatch):
    with faultkit.tiny_filesystem(tmp_path, 4096) as tiny:
        root = tiny if tiny is not None else tmp_path / "sim"
        options = RunOptions(
            results=str(root / "r"),
            data_root=str(root),
            cache_dir=str(root / "c"),
            num_cpus=1,
            max_failures=0,
            device="cpu",
            plugins=(toy_plugin,),
            progress="off",
        )
        ResultStore(root / "r").ensure_writable()
        if tiny is not None:
            faultkit.fill(tiny, leave_bytes=20 << 10)  # a real, nearly full tmpfs: Tune's state write fails
        else:
            from ray import tune

            monkeypatch.setattr(tune.Tuner, "fit", lambda self: _DyingTuner().fit())  # simulated
        summary = run_grid([TrialConfig("toy", "vanilla", epochs=3)], options)  # returns; never raises
        outcome = (summary.aborted or "") + " ".join(summary.failed.values())
        assert "full" in outcome and "--results" in outcome
        leftovers = [p for p in (root / "r").rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == []


# -- failure 8: one console line per failed trial -----------------------------------------------------


@pytest.mark.ray
def test_a_failed_trial_is_one_console_line_and_its_tracebacks_go_to_its_log(tmp_path, toy_plugin, capfd):
    options = RunOptions(
        results=str(tmp_path / "r"),
        data_root=str(tmp_path),
        cache_dir=str(tmp_path / "c"),
        num_cpus=1,
        max_failures=1,
        device="cpu",
        plugins=(toy_plugin,),
        progress="off",
    )
    summary = run_grid([TrialConfig("toy", "always_fails", epochs=1)], options)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err and "Trial task failed" not in captured.err
    ((key, line),) = summary.failed.items()
    log_file = tmp_path / "r" / "logs" / f"{key}.log"
    assert line == f"RuntimeError: this method always fails (test fixture) (full error in {log_file})"
    log_text = log_file.read_text()
    assert log_text.count("Traceback") >= 2 and "failed after Tune's retries" in log_text
    assert " failed on " in log_text  # the worker names its host and CPU (tests/benchmark/test_run_one_trial.py)
    from debiasbench.benchmark.training.trainer import cpu_description

    (row,) = ResultStore(tmp_path / "r").trials().to_dict("records")
    assert (row["status"], row["cpu"]) == ("failed", cpu_description())  # read from the attempt's log


# -- ISSUE 29, item 6: a claim file that is not valid JSON --------------------------------------------


@pytest.mark.parametrize("content", [b'{"run": "x", "ho', b"\x00\x00\x00\x00", b""])
def test_a_claim_file_that_is_not_valid_json_is_broken_at_once_naming_it(tmp_path, caplog, content):
    claim = tmp_path / "claims" / "trials" / "k.claim"
    claim.parent.mkdir(parents=True)
    claim.write_bytes(content)  # garbled by a crash or a full disk; was: "pid 0 on ? since ?" for 180 s
    if not content:  # an empty one may be a claim being written right now: only once it has stayed empty
        old = time.time() - 60
        os.utime(claim, (old, old))
    with caplog.at_level("WARNING", logger="debiasbench.benchmark.experiments.store_lock"):
        with TrialClaims(tmp_path) as claims:
            mine, others = claims.claim(["k"])
    assert mine == ["k"] and others == {}
    assert f"its claim file {claim} was not valid JSON; the trial runs here" in caplog.text


def test_a_claim_file_being_written_this_moment_is_respected(tmp_path):
    claim = tmp_path / "claims" / "trials" / "k.claim"
    claim.parent.mkdir(parents=True)
    claim.write_bytes(b"")  # created by another driver's O_EXCL, not yet filled
    with TrialClaims(tmp_path) as claims:
        mine, others = claims.claim(["k"])
    assert mine == [] and others["k"].describe() == "a driver writing its claims this moment"
