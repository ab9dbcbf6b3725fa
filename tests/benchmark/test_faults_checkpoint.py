"""Fault tests for checkpoints (ISSUE 13, failure 2 and the checkpoint share of 5): a checkpoint
damaged inside a tensor (zip intact, so torch.load would happily return NaN weights) is discarded
with a warning and the trial restarts; a trial that fails right after resuming is retried once
from scratch; a full disk while saving is one clear error and leaves no temporary file."""

import io
import logging
import struct

import faultkit
import pytest
import torch

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.experiments.worker import run_one_trial, trial_checkpoint_dir
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.training.checkpoint import CheckpointWriteError, _has_nan, load_checkpoint, save_checkpoint
from debiasbench.benchmark.training.evaluation import MetricLog
from debiasbench.benchmark.trial import TrialConfig

NAN = struct.pack("<f", float("nan"))


def _env(tmp_path):
    return {
        "results": str(tmp_path / "r"),
        "data_root": str(tmp_path),
        "cache_dir": str(tmp_path / "c"),
        "device": "cpu",
        "cpus_per_trial": 1,
        "code_version": "test",
    }


@pytest.fixture
def toy_trial(toy_plugin):
    load_plugins([toy_plugin])
    return resolve_trial(TrialConfig("toy", "vanilla", epochs=3))


def _interrupt_after_epoch_2(tmp_path, trial):
    """Run the trial and kill it after epoch 2, leaving the epoch-2 checkpoint behind."""

    def report(summary):
        if summary["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one_trial(trial, _env(tmp_path), report=report)
    path = trial_checkpoint_dir(str(tmp_path / "r"), trial.key) / "last.pt"
    assert path.is_file()
    return path


def _nan_inside_largest_tensor(path, offset=None):
    start = faultkit.checkpoint_payload_offset(path)
    span_start, size = faultkit.largest_tensor_span(path.read_bytes()[start:])
    faultkit.flip(path, start + span_start + (size // 2 // 4) * 4, value=NAN * 4)


def _epochs(store, key):
    rows = store.read().query(f"trial_key == '{key}' and metric == 'accuracy' and subset == 'all'")
    return sorted(rows["epoch"].unique())


def test_a_checkpoint_damaged_inside_a_tensor_is_discarded_never_resumed(tmp_path, toy_trial, caplog):
    path = _interrupt_after_epoch_2(tmp_path, toy_trial)
    _nan_inside_largest_tensor(path)
    # The reported failure: the zip is intact, so a plain torch.load returns the NaN weights.
    payload = path.read_bytes()[faultkit.checkpoint_payload_offset(path) :]
    state = torch.load(io.BytesIO(payload), weights_only=True)
    assert _has_nan(state)

    with caplog.at_level(logging.WARNING):
        run_one_trial(toy_trial, _env(tmp_path))
    assert f"discarding checkpoint {path}" in caplog.text and "do not match its checksum" in caplog.text
    store = ResultStore(tmp_path / "r")
    assert store.completed_keys() == {toy_trial.key} and _epochs(store, toy_trial.key) == [1, 2, 3]
    log_text = (tmp_path / "r" / "logs" / f"{toy_trial.key}.log").read_text()
    assert "discarding checkpoint" in log_text and "resuming trial" not in log_text.split("discarding")[-1]


def test_a_checkpoint_without_checksum_holding_nan_is_discarded(tmp_path, toy_trial, caplog):
    path = _interrupt_after_epoch_2(tmp_path, toy_trial)
    state = load_checkpoint(path, toy_trial.key)
    next(t for t in state["method"]["module"].values() if t.is_floating_point()).fill_(float("nan"))
    torch.save(state, path)  # the format of the previous release: no checksum
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, toy_trial.key) is None
    assert "no checksum and holds NaN" in caplog.text and not path.exists()


def test_a_trial_failing_right_after_resuming_is_retried_once_from_scratch(tmp_path, toy_trial, caplog):
    path = _interrupt_after_epoch_2(tmp_path, toy_trial)
    state = load_checkpoint(path, toy_trial.key)
    for tensor in state["method"]["module"].values():
        if tensor.is_floating_point():
            tensor.fill_(3e38)  # finite, loads fine, diverges at once
    torch.save(state, path)  # no checksum, no NaN: nothing flags it before training
    with caplog.at_level(logging.WARNING):
        run_one_trial(toy_trial, _env(tmp_path))
    assert "failed right after resuming from its epoch-2 checkpoint" in caplog.text
    assert "non-finite training loss" in caplog.text and "retrying once from scratch" in caplog.text
    store = ResultStore(tmp_path / "r")
    assert store.completed_keys() == {toy_trial.key} and _epochs(store, toy_trial.key) == [1, 2, 3]


class _BigMethod:
    def checkpoint_state(self):
        return {"w": torch.ones(300_000)}  # 1.2 MB


def test_a_full_disk_while_checkpointing_names_the_disk_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    args = (_BigMethod(), torch.Generator(), torch.Generator(), MetricLog(), [1.0])
    with faultkit.tiny_filesystem(tmp_path, 2048) as tiny:
        directory = (tiny if tiny is not None else tmp_path / "sim") / "checkpoints" / "k"
        path = directory / "last.pt"
        save_checkpoint(path, "k", 1, *args)  # epoch 1 fits
        if tiny is None:
            monkeypatch.setattr("os.fsync", faultkit.enospc)  # no mount permitted: simulate ENOSPC
        with pytest.raises(CheckpointWriteError) as error:
            save_checkpoint(path, "k", 2, *args)  # epoch 2 does not
        message = str(error.value)
        assert str(path) in message and "the disk is full" in message and "--results" in message
        assert "unexpected pos" not in message
        assert [p.name for p in directory.iterdir()] == ["last.pt"]  # no temporary file left
        assert load_checkpoint(path, "k")["epoch"] == 1  # the previous checkpoint is intact
