"""Experiment trackers for a grid: Ray Tune's own logger callbacks, chosen by name.

    callbacks = tracker_callbacks(["tensorboard", "mlflow"], results_dir)
    tune.Tuner(..., run_config=tune.RunConfig(..., callbacks=[*callbacks, ...]))

Every callback logs what the trainable reports to Tune after each epoch (the runner's flat
summary: "epoch", "test_accuracy", "test/<role>/<subset>_accuracy", ..., "seconds"), with Tune's
training_iteration (= epoch) as the step:

    tensorboard  ray.tune.logger.TBXLoggerCallback: event files in each trial's Tune directory
                 (RESULTS/_ray/<grid>/<trial>/events.out.tfevents.*), scalars under "ray/tune/";
                 view with `tensorboard --logdir RESULTS/_ray`.              extra: tensorboard
    mlflow       ray.air.integrations.mlflow.MLflowLoggerCallback: one MLflow run per trial in the
                 experiment "debiasbench", stored in a local file store, file://RESULTS/mlflow
                 (MLflow 3 needs MLFLOW_ALLOW_FILE_STORE=true for a file store: set here; view
                 with `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
                 file://RESULTS/mlflow`).                                          extra: mlflow
    wandb        ray.air.integrations.wandb.WandbLoggerCallback in offline mode (no account, no
                 network; its logging actor also waits for wandb.teardown(), see below): runs
                 under RESULTS/wandb/wandb/offline-run-*, upload later with `wandb sync`. extra: wandb

A tracker whose package is missing raises TrackerError naming the pip extra to install.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXPERIMENT = "debiasbench"


class TrackerError(ValueError):
    """An unknown tracker name or a tracker whose package is not installed (the message says the fix)."""


def _require(module: str, tracker: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise TrackerError(
            f"the {tracker} tracker needs the {module} package, which is not installed: "
            f'pip install "debiasbench[{tracker}]"'
        ) from None


def _local_dir(results_dir: str, tracker: str) -> Path:
    if "://" in str(results_dir) and not str(results_dir).startswith("file://"):
        raise TrackerError(
            f"the {tracker} tracker writes next to the results, but {results_dir!r} is not a local "
            "directory; pass a local results directory (or the tracker's own location)"
        )
    return Path(str(results_dir).removeprefix("file://")).expanduser().resolve()


def tensorboard_callback(results_dir: str) -> Any:
    """TensorBoard event files per trial, in the trial's Tune directory (under RunConfig.storage_path)."""
    _require("tensorboardX", "tensorboard")
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


def mlflow_callback(results_dir: str, tracking_uri: str | None = None, experiment_name: str = EXPERIMENT) -> Any:
    """One MLflow run per trial; tracking_uri defaults to a file store at RESULTS/mlflow. MLflow 3
    keeps that backend in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE=true, which
    is then set in this process (the callback logs from the Tune driver); pass e.g.
    tracking_uri="sqlite:///RESULTS/mlflow.db" (needs the full mlflow package) for a database store."""
    _require("mlflow", "mlflow")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    if tracking_uri is None:
        tracking_uri = (_local_dir(results_dir, "mlflow") / "mlflow").as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name=experiment_name)


_WANDB_CALLBACK: type | None = None


def _wandb_callback_class() -> type:
    """Ray's WandbLoggerCallback whose per-trial logging actor calls wandb.teardown() after
    wandb.finish(). Ray kills that actor as soon as finish() returns, and wandb's service may not
    have written the run to disk yet (wandb's atexit teardown never runs in a killed process):
    with wandb 0.31 and Ray 2.60 about one offline run in five was left as an empty .wandb file."""
    global _WANDB_CALLBACK
    if _WANDB_CALLBACK is None:
        from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

        class _FlushingWandbLoggingActor(_WandbLoggingActor):
            def run(self):
                super().run()
                self._wandb.teardown()  # wait until the run is on disk before Ray kills this actor

        class FlushingWandbLoggerCallback(WandbLoggerCallback):
            _logger_actor_cls = _FlushingWandbLoggingActor

        _WANDB_CALLBACK = FlushingWandbLoggerCallback
    return _WANDB_CALLBACK


def wandb_callback(results_dir: str, project: str = EXPERIMENT) -> Any:
    """Weights & Biases in offline mode: runs under RESULTS/wandb, nothing leaves the machine.
    Sets WANDB_MODE=offline in this process (Ray's callback reads it there to skip the API key)."""
    _require("wandb", "wandb")
    directory = _local_dir(results_dir, "wandb") / "wandb"
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_MODE"] = "offline"
    return _wandb_callback_class()(project=project, mode="offline", dir=str(directory))


TRACKERS: dict[str, Callable[[str], Any]] = {
    "tensorboard": tensorboard_callback,
    "mlflow": mlflow_callback,
    "wandb": wandb_callback,
}


def tracker_callbacks(names: Sequence[str], results_dir: str) -> list:
    """Ray Tune logger callbacks for the named trackers (tensorboard, mlflow, wandb), in order,
    each once; [] for no names. Pass them as tune.RunConfig(callbacks=[...])."""
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    wanted = list(dict.fromkeys(n.strip().lower() for n in names if n and n.strip()))
    unknown = [n for n in wanted if n not in TRACKERS]
    if unknown:
        raise TrackerError(f"unknown tracker(s) {', '.join(map(repr, unknown))}; valid: {', '.join(TRACKERS)}")
    return [TRACKERS[name](results_dir) for name in wanted]
