"""A real two-node Ray cluster on this machine (head + one worker node, one CPU each, loopback,
no dashboard, usage stats off, token auth disabled for the test cluster): the smoke-sized grid runs
through --address, trials land on both nodes, every result reaches the one store, and the test
stops exactly the processes it started (their process groups), never a broad `ray stop`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from debiasbench.benchmark.experiments.driver import RunOptions, run_grid
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig

pytestmark = [pytest.mark.ray, pytest.mark.cluster]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [RAY, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the node's own process group, give Ray time to drain, then SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_for_nodes(address: str, count: int, env: dict, timeout: float = 60) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", probe, address], capture_output=True, text=True, env=env, timeout=60
        )
        if out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise TimeoutError(f"the test cluster at {address} did not reach {count} nodes")


@pytest.mark.skipif(not Path(RAY).exists(), reason="the ray command-line tool is not installed")
def test_two_node_cluster_runs_trials_on_both_nodes(tmp_path, toy_plugin, monkeypatch):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start(["--head", "--port", str(port), "--include-dashboard", "false"], tmp_path / "head.log", env)
    worker = None
    try:
        time.sleep(3)
        worker = _start(["--address", address], tmp_path / "worker.log", env)
        _wait_for_nodes(address, 2, env)
        configs = [TrialConfig("toy", "vanilla", epochs=2, trial_seed=s) for s in range(4)]
        options = RunOptions(
            results=str(tmp_path / "store"),
            data_root=str(tmp_path),
            cache_dir=str(tmp_path / "c"),
            address=address,
            device="cpu",
            plugins=(toy_plugin,),
            progress="off",
        )
        summary = run_grid(configs, options)
        assert len(summary.completed) == 4 and not summary.failed
        trials = ResultStore(tmp_path / "store").trials()
        assert len(trials) == 4 and (trials["status"] == "completed").all()
        assert trials["ray_node_id"].nunique() == 2, trials["ray_node_id"].value_counts()
    finally:
        for node in (worker, head):
            if node is not None:
                _stop(node)
