"""Tracker callbacks: Ray Tune's own logger callbacks by name, clear errors for unknown names and
missing packages, and a tiny Tune run whose epoch metrics land in TensorBoard event files, MLflow
runs and (where wandb is installed) an offline W&B run."""

from __future__ import annotations

import builtins
import importlib.util
import json
import logging
import os
import struct
from pathlib import Path

import pytest

from debiasbench.benchmark.experiments import trackers
from debiasbench.benchmark.experiments.trackers import TrackerError, tracker_callbacks

HAS = {
    name: importlib.util.find_spec(module) is not None
    for name, module in (("tensorboard", "tensorboardX"), ("mlflow", "mlflow"), ("wandb", "wandb"))
}
needs = {
    name: pytest.mark.skipif(not present, reason=f'{name} not installed (pip install "debiasbench[{name}]")')
    for name, present in HAS.items()
}
EPOCHS = 3


@needs["tensorboard"]
def test_tensorboard_is_tunes_tbx_logger(tmp_path):
    from ray.tune.logger import TBXLoggerCallback

    (callback,) = tracker_callbacks(["tensorboard"], str(tmp_path))
    assert type(callback) is TBXLoggerCallback


@needs["mlflow"]
def test_mlflow_is_tunes_callback_with_a_file_store_under_the_results(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    (callback,) = tracker_callbacks(["mlflow"], str(tmp_path))
    assert type(callback) is MLflowLoggerCallback
    assert callback.tracking_uri == f"file://{tmp_path.resolve()}/mlflow"
    assert callback.experiment_name == "debiasbench"
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # MLflow 3 refuses a file store otherwise


@needs["wandb"]
def test_wandb_is_tunes_callback_offline(tmp_path, monkeypatch):
    from ray.air.integrations.wandb import WandbLoggerCallback

    monkeypatch.delenv("WANDB_MODE", raising=False)
    (callback,) = tracker_callbacks(["wandb"], str(tmp_path))
    assert isinstance(callback, WandbLoggerCallback)  # Ray's, with a logging actor that waits for wandb's flush
    assert callback._logger_actor_cls.run is not WandbLoggerCallback._logger_actor_cls.run
    assert callback.kwargs["mode"] == "offline" and callback.kwargs["dir"] == str(tmp_path.resolve() / "wandb")
    assert os.environ["WANDB_MODE"] == "offline"


def test_names_order_duplicates_and_none(tmp_path):
    assert tracker_callbacks([], str(tmp_path)) == []
    if HAS["tensorboard"] and HAS["mlflow"]:
        callbacks = tracker_callbacks(["MLflow", "tensorboard", "mlflow"], str(tmp_path))
        assert [type(c).__name__ for c in callbacks] == ["MLflowLoggerCallback", "TBXLoggerCallback"]


def test_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(TrackerError, match=r"unknown tracker\(s\) 'comet'; valid: tensorboard, mlflow, wandb"):
        tracker_callbacks(["tensorboard", "comet"], str(tmp_path))


@pytest.mark.parametrize("name, module", [("tensorboard", "tensorboardX"), ("mlflow", "mlflow"), ("wandb", "wandb")])
def test_missing_package_names_the_pip_extra(tmp_path, monkeypatch, name, module):
    real_import = builtins.__import__

    def without(requested, *args, **kwargs):
        if requested == module or requested.startswith(module + "."):
            raise ModuleNotFoundError(f"No module named {requested!r}")
        return real_import(requested, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    monkeypatch.setattr(trackers.importlib, "import_module", lambda requested: without(requested))
    with pytest.raises(TrackerError) as error:
        tracker_callbacks([name], str(tmp_path))
    assert f'pip install "debiasbench[{name}]"' in str(error.value) and module in str(error.value)


def test_remote_results_need_a_local_tracker_location():
    if not HAS["mlflow"]:
        pytest.skip("mlflow not installed")
    with pytest.raises(TrackerError, match="not a local directory"):
        tracker_callbacks(["mlflow"], "s3://bucket/results")


# --------------------------------------------------------------------------------------------
# A tiny Tune run: 3 epochs of the runner's kind of flat summary
# --------------------------------------------------------------------------------------------
def _epoch_metrics(epoch: int) -> dict[str, float]:
    return {
        "epoch": epoch,
        "test_accuracy": 0.5 + 0.1 * epoch,
        "test/debiased/conflicting_accuracy": 0.2 * epoch,
        "seconds": 0.01,
    }


def _trainable(config):
    from ray import tune

    for epoch in range(1, EPOCHS + 1):
        tune.report(_epoch_metrics(epoch))


def _tfevent_scalars(path: Path) -> dict[str, dict[int, float]]:
    """Scalars of a TensorBoard event file (TFRecord framing, Event protos from tensorboardX)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, dict[int, float]] = {}
    data = path.read_bytes()
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        record = data[position + 12 : position + 12 + length]
        position += 12 + length + 4
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


@pytest.fixture(scope="module")
def tune_run(tmp_path_factory):
    """One Tune trial with every installed tracker; returns (results dir, Tune storage dir, names)."""
    ray = pytest.importorskip("ray")
    from ray import tune

    names = [name for name, present in HAS.items() if present]
    if not names:
        pytest.skip("no tracker package installed")
    results = tmp_path_factory.mktemp("results")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # as the runner: only what is asked for
    # The workers import this module (the trainable) and the repository by path.
    path = os.pathsep.join(
        [str(Path(__file__).parent), str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
    )
    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=100 * 2**20,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": {"PYTHONPATH": path.rstrip(os.pathsep), "RAY_USAGE_STATS_ENABLED": "0"}},
    )
    try:
        callbacks = tracker_callbacks(names, str(results))
        tuner = tune.Tuner(
            _trainable,
            param_space={"trial": "toy"},
            run_config=tune.RunConfig(name="grid", storage_path=str(results / "_ray"), verbose=0, callbacks=callbacks),
        )
        grid = tuner.fit()
        assert not grid.errors, grid.errors
    finally:
        ray.shutdown()
    return results, results / "_ray", names


@pytest.mark.ray
@needs["tensorboard"]
def test_tune_run_writes_tensorboard_event_files(tune_run):
    results, storage, _ = tune_run
    files = sorted(storage.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {storage}"
    scalars = {}
    for path in files:
        scalars.update(_tfevent_scalars(path))
    for name in ("test_accuracy", "test/debiased/conflicting_accuracy", "epoch"):
        steps = scalars[f"ray/tune/{name}"]
        assert sorted(steps) == [1, 2, 3]
        assert steps == pytest.approx({e: _epoch_metrics(e)[name] for e in range(1, EPOCHS + 1)})


@pytest.mark.ray
@needs["mlflow"]
def test_tune_run_writes_mlflow_runs(tune_run):
    from mlflow.tracking import MlflowClient

    results, _, _ = tune_run
    client = MlflowClient(tracking_uri=(results / "mlflow").resolve().as_uri())
    experiment = client.get_experiment_by_name("debiasbench")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    for name in ("test_accuracy", "test/debiased/conflicting_accuracy", "epoch"):
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert history == pytest.approx({e: _epoch_metrics(e)[name] for e in range(1, EPOCHS + 1)})
    assert run.data.params.get("trial") == "toy" and run.info.status == "FINISHED"


def _wandb_history(path: Path) -> list[dict[str, str]]:
    """The history rows (key -> JSON value) of an offline .wandb file: a ":W&B" header, then
    LevelDB-log framing (32 KiB blocks; records with crc, length, type) of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, chunks, pending = 7, [], b""
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:  # block trailer
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or last piece of a record
            chunks.append(pending)
    rows = []
    for raw in chunks:
        record = wandb_internal_pb2.Record.FromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows


@pytest.mark.ray
@needs["wandb"]
def test_tune_run_writes_an_offline_wandb_run(tune_run):
    results, _, _ = tune_run
    runs = sorted((results / "wandb").rglob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline W&B run under {results / 'wandb'}"
    (history_file,) = runs[0].glob("*.wandb")  # what `wandb sync` uploads
    rows = _wandb_history(history_file)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for name in ("test_accuracy", "test/debiased/conflicting_accuracy"):
        assert [json.loads(row[name]) for row in rows] == pytest.approx(
            [_epoch_metrics(e)[name] for e in range(1, EPOCHS + 1)]
        )


@pytest.mark.ray
@pytest.mark.real_data
@needs["tensorboard"]
@needs["mlflow"]
def test_the_smoke_grid_logs_every_epoch_to_tensorboard_and_mlflow(mnist_paths, tmp_path):
    """`run_all.py --tracker tensorboard --tracker mlflow` on the smoke grid: the event files and
    the MLflow runs hold every trial's per-epoch metrics, under the results directory."""
    from mlflow.tracking import MlflowClient

    from debiasbench import cli

    results = tmp_path / "results"
    status = cli.main(
        [
            "--grid",
            "smoke",
            "--epochs",
            "2",
            "--tracker",
            "tensorboard",
            "--tracker",
            "mlflow",
            "--results",
            str(results),
            "--data-root",
            str(mnist_paths.data_root),
            "--cache-dir",
            str(mnist_paths.cache_dir),
            "--progress",
            "off",
            "--no-report",
        ]
    )
    assert status == 0
    runs = {}
    for path in sorted((results / "_ray").rglob("events.out.tfevents.*")):
        runs[path.parent] = _tfevent_scalars(path)
    assert len(runs) == 2  # vanilla and lff
    for scalars in runs.values():
        assert sorted(scalars["ray/tune/test_accuracy"]) == [1, 2]
        assert sorted(scalars["ray/tune/epoch"]) == [1, 2]
    client = MlflowClient(tracking_uri=(results / "mlflow").resolve().as_uri())
    experiment = client.get_experiment_by_name("debiasbench")
    mlflow_runs = client.search_runs([experiment.experiment_id])
    assert len(mlflow_runs) == 2
    for run in mlflow_runs:
        history = client.get_metric_history(run.info.run_id, "test_accuracy")
        assert sorted(m.step for m in history) == [1, 2] and all(0.0 <= m.value <= 1.0 for m in history)
