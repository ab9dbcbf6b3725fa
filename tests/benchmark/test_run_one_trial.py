"""One trial inside a worker, without Ray: under an early-stopping scheduler the metrics so far are
stored before every report (Tune tears a stopped worker down without waiting for it), and the final
epoch is reported only after the completed record is written."""

import pytest

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.experiments.worker import attempt_origin, run_one_trial
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig


def _env(tmp_path, scheduler):
    return {
        "results": str(tmp_path / "r"),
        "data_root": str(tmp_path),
        "cache_dir": str(tmp_path / "c"),
        "device": "cpu",
        "cpus_per_trial": 1,
        "mixed_precision": False,
        "channels_last": False,
        "code_version": "test",
        "scheduler": scheduler,
    }


@pytest.fixture
def toy_trial(toy_plugin):
    load_plugins([toy_plugin])
    return resolve_trial(TrialConfig("toy", "vanilla", epochs=3))


def test_a_scheduler_stop_leaves_the_epochs_measured_so_far_as_a_partial_record(tmp_path, toy_trial):
    store = ResultStore(tmp_path / "r")
    seen = []

    def report(summary):
        seen.append(summary["epoch"])
        # Stored before it is reported, so nothing is lost if the worker dies right here.
        assert (
            sorted(store.read().query("metric == 'accuracy' and subset == 'all'")["epoch"].unique())[-1]
            == summary["epoch"]
        )
        if summary["epoch"] == 2:
            raise SystemExit(0)  # what Tune's report() does when the scheduler stops the trial

    with pytest.raises(SystemExit):
        run_one_trial(toy_trial, _env(tmp_path, "asha"), report=report)
    assert seen == [1, 2]
    assert store.keys_with_status("partial") == {toy_trial.key} and store.finished_keys() == set()


def test_the_final_epoch_is_reported_after_the_completed_record_is_written(tmp_path, toy_trial):
    store = ResultStore(tmp_path / "r")
    completed_when_reported = {}

    def report(summary):
        completed_when_reported[summary["epoch"]] = toy_trial.key in store.completed_keys()
        if summary["epoch"] == 3:
            raise SystemExit(0)  # ASHA stops every trial that reaches max_t

    run_one_trial(toy_trial, _env(tmp_path, "asha"), report=report)
    assert completed_when_reported == {1: False, 2: False, 3: True}
    assert store.completed_keys() == {toy_trial.key}


def test_without_a_scheduler_nothing_partial_is_written(tmp_path, toy_trial):
    store = ResultStore(tmp_path / "r")
    statuses = []
    run_one_trial(
        toy_trial,
        _env(tmp_path, None),
        report=lambda summary: statuses.append(set(store.trials()["status"]) if summary["epoch"] < 3 else None),
    )
    assert statuses[:2] == [set(), set()] and store.completed_keys() == {toy_trial.key}


def test_the_stored_trial_records_the_cpu_it_ran_on(tmp_path, toy_trial):
    """CPU results are bit-reproducible on one CPU model and kernel level only, so both are stored."""
    import torch

    from debiasbench.benchmark.training.trainer import cpu_description

    run_one_trial(toy_trial, _env(tmp_path, None))
    (cpu,) = ResultStore(tmp_path / "r").trials()["cpu"].tolist()
    assert cpu == cpu_description()
    model, level = cpu.rsplit(", ", 1)
    assert model and level == torch.backends.cpu.get_cpu_capability()


def test_a_failed_trial_logs_the_host_and_cpu_it_ran_on(tmp_path, toy_trial):
    """The driver writes a failed trial's record and may run elsewhere; the trial's log says where it ran."""
    import socket

    from debiasbench.benchmark.training.trainer import cpu_description

    failing = resolve_trial(TrialConfig("toy", "always_fails", epochs=1))
    with pytest.raises(RuntimeError, match="always fails"):
        run_one_trial(failing, _env(tmp_path, None))
    log_text = (tmp_path / "r" / "logs" / f"{failing.key}.log").read_text()
    assert f"trial {failing.key} failed on {socket.gethostname()} ({cpu_description()}):" in log_text
    assert f"trial {failing.key} on {socket.gethostname()} ({cpu_description()}):" in log_text
    assert attempt_origin(log_text, failing.key) == (socket.gethostname(), cpu_description())
