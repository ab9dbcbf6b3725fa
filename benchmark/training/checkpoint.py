"""Per-epoch checkpoints of a trial: models, optimisers, method state (e.g. LfF's EMA tables),
RNG states and the metrics so far, written atomically so a preempted or retried trial resumes.

File layout (container version 2): one header line `DEBIASBENCH-CHECKPOINT 2`, one JSON line
{"checksum": "sha256:<hex>", "bytes": N, "trial_key": ..., "epoch": ...}, then the N bytes of
`torch.save(state)`. A checkpoint whose bytes do not match its checksum, that does not load, or
(written before checksums existed) whose tensors hold NaN is discarded with a warning and never
resumed: the trial starts again from epoch 0. Checkpoints load with weights_only=True (tensors and
plain containers only; a checkpoint folder is not trusted with code).
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from debiasbench.benchmark.integrity import checksum_bytes, disk_error_message
from debiasbench.benchmark.training.evaluation import MetricLog
from debiasbench.methods.base import Method

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1  # the layout of the state dictionary
_MAGIC = b"DEBIASBENCH-CHECKPOINT 2\n"  # the file container with a checksum


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions); the message names the fix."""


def save_checkpoint(
    path: Path,
    key: str,
    epoch: int,
    method: Method,
    order_generator: torch.Generator,
    augment_generator: torch.Generator,
    metric_log: MetricLog,
    epoch_seconds: list[float],
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "trial_key": key,
        "epoch": epoch,
        "method": method.checkpoint_state(),
        "order_rng": order_generator.get_state(),
        "augment_rng": augment_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "metrics": metric_log.columns,
        "epoch_seconds": epoch_seconds,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised in memory: a full disk cannot leave a half-written zip
    payload = buffer.getbuffer()
    header = (
        json.dumps(
            {"checksum": checksum_bytes(payload), "bytes": len(payload), "trial_key": key, "epoch": epoch}
        ).encode()
        + b"\n"
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(_MAGIC)
            handle.write(header)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(
            disk_error_message(
                error,
                path,
                f"the epoch-{epoch} checkpoint of trial {key}",
                "pass --results on a disk with space (checkpoints live under RESULTS/checkpoints/); "
                "the trial resumes from its previous checkpoint on the next run",
            )
        ) from error


def _discard(path: Path, key: str, reason: str) -> None:
    log.warning("discarding checkpoint %s of trial %s: %s; the trial restarts from epoch 0", path, key, reason)
    try:
        path.unlink()
    except OSError:
        pass


def _load_failure(error: Exception) -> str:
    """A short cause for a refused torch.load, without torch's advice to load it unsafely."""
    import pickle

    if isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain containers, which are never loaded"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def _has_nan(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point() and bool(torch.isnan(value).any())
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    return False


def load_checkpoint(path: Path, key: str) -> dict[str, Any] | None:
    """The state of a sound checkpoint of trial `key`, or None (a damaged one is discarded)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        log.warning("ignoring unreadable checkpoint %s (%s)", path, error)
        return None
    legacy = not data.startswith(_MAGIC)
    if legacy:
        payload = memoryview(data)
    else:
        try:
            line_end = data.index(b"\n", len(_MAGIC))
            header = json.loads(data[len(_MAGIC) : line_end])
            payload = memoryview(data)[line_end + 1 :]
            if len(payload) != header["bytes"]:
                _discard(path, key, f"it is truncated ({len(payload)} of {header['bytes']} bytes)")
                return None
            if checksum_bytes(payload, like=header["checksum"]) != header["checksum"]:
                _discard(path, key, "its bytes do not match its checksum (the file is damaged)")
                return None
        except (ValueError, KeyError, TypeError) as error:
            _discard(path, key, f"its header is damaged ({error})")
            return None
    try:
        # Checkpoint folders are not trusted with code: tensors and plain containers only.
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file: start over rather than fail
        _discard(path, key, f"it does not load ({_load_failure(error)})")
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("trial_key") != key:
        log.warning("ignoring checkpoint %s: it belongs to another trial or format", path)
        return None
    if legacy and _has_nan(state):
        # Written before checksums existed: NaN weights are the one damage a plain load cannot see.
        _discard(path, key, "it has no checksum and holds NaN values")
        return None
    return state
