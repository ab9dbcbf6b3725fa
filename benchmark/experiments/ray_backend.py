"""Ray and Tune specifics, kept in one place: starting or joining Ray, the trainable Tune runs,
the recording ASHA scheduler, and the callback that feeds the live progress view."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from debiasbench.benchmark.experiments.progress import GridProgress, LiveView
from debiasbench.benchmark.experiments.worker import WorkerSpec, run_one_trial
from debiasbench.benchmark.paths import checkout_root
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.trial import ResolvedTrial

REPO_ROOT = checkout_root()  # None when the suite runs as an installed package


def check_cluster(address: str, timeout: float = 5.0) -> None:
    """Fail within seconds, before anything is written, when no Ray cluster listens at `address`."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        raise ConnectionError(
            f"no Ray cluster is listening at {address!r} ({error}); start one with "
            "`ray start --head --node-ip-address 127.0.0.1` or drop --address to use an embedded Ray"
        ) from None


def tune_trainable(config: dict[str, Any]) -> None:
    """The function Tune runs for one trial: its configuration is the trial's JSON and the spec."""
    from ray import tune

    spec = WorkerSpec.from_dict(config["env"])
    load_plugins(spec.plugins)
    run_one_trial(ResolvedTrial.from_json(config["trial"]), spec, report=tune.report)


def recording_asha() -> type:
    """ASHA that remembers which trials it stopped, so the driver records exactly those as
    "stopped" (Tune reports a scheduler stop and an interrupted trial alike)."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stopped: set[str] = set()  # the stopped trials' JSON configurations

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP:
                self.stopped.add(trial.config["trial"])
            return decision

    return RecordingASHA


def cluster_runtime_env() -> dict:
    """What a cluster's workers need to import the suite: the checkout (less results, data and
    history) when running from one; otherwise the installed package itself (`py_modules`), not the
    folder above it, which would be the whole site-packages."""
    env = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    if REPO_ROOT is not None:
        env.update(working_dir=str(REPO_ROOT), excludes=["/results/", "/data/", "/.git/", "*.parquet", "*.pt"])
    else:
        import debiasbench

        env["py_modules"] = [debiasbench]  # the one installed package, its subpackages inside it
    return env


def ray_init(address: str | None, num_cpus: int | None) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0"}
    if REPO_ROOT is not None:  # workers import this checkout's code, not another installed copy
        env_vars["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        )
    if address:
        ray.init(
            address=address,
            runtime_env=cluster_runtime_env(),
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    else:
        import torch

        ray.init(
            address="local",  # a new embedded instance, even when another cluster runs on this machine
            num_cpus=num_cpus or os.cpu_count(),
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=200 * 2**20,  # trials pass no objects through Ray; keep it small
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": env_vars},
        )
    quiet_trial_errors()


class _OneLineConsole(logging.Filter):
    """Ray's console, one line per event: Tune's per-attempt trial tracebacks are dropped (the
    worker writes each one to the trial's log file; the driver records the error and prints one
    line per failed trial), and any other Ray error keeps its message and the exception's last
    line, not its traceback (e.g. Tune failing to save its state on a full disk)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Trial task failed") or message.startswith("Trials did not complete"):
            return False
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            detail = (str(error).strip().splitlines() or [""])[0]
            record.msg = f"{record.getMessage().strip()} {type(error).__name__}: {detail}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_trial_errors() -> None:
    """Console policy for Ray (after ray.init, which sets the "ray" logger to ERROR): one line per
    event, no tracebacks, and Tune's insufficient-resources warning visible as a safety net."""
    ray_logger = logging.getLogger("ray")
    targets = [
        *ray_logger.handlers,
        *(logging.getLogger(name) for name in ("ray.tune.execution.tune_controller", "ray.tune.tune")),
    ]
    for target in targets:
        if not any(isinstance(f, _OneLineConsole) for f in target.filters):
            target.addFilter(_OneLineConsole())
    logging.getLogger("ray.tune.execution.insufficient_resources_manager").setLevel(logging.WARNING)


def progress_callback(progress: GridProgress, labels: dict[str, str], epochs: dict[str, int]) -> Any:
    """A Tune callback that keeps the live view in step with the trials' starts, epochs and ends.
    Set its `view` after the Tuner is built: Tune pickles callbacks then, and a view holds a lock."""
    from ray import tune

    class ProgressCallback(tune.Callback):
        view: LiveView | None = None

        def on_trial_start(self, iteration, trials, trial, **info):
            progress.running[labels[trial.config["trial"]]] = "starting"
            progress.started[trial.trial_id] = time.time()
            self.view.refresh()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            key = trial.config["trial"]
            progress.running[labels[key]] = f"epoch {result.get('epoch', '?')}/{epochs[key]}"
            self.view.refresh()

        def _finish(self, trial, failed: bool):
            progress.running.pop(labels[trial.config["trial"]], None)
            if failed:
                progress.failed += 1
            else:
                progress.done += 1
                progress.durations.append(time.time() - progress.started.get(trial.trial_id, time.time()))
            self.view.refresh()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._finish(trial, failed=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._finish(trial, failed=True)

    return ProgressCallback()
