"""Per-epoch checkpoints of a trial: models, optimisers, method state (e.g. LfF's EMA tables),
RNG states and the metrics so far, written atomically so a preempted or retried trial resumes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from benchmark.training.evaluation import MetricLog
from methods.base import Method

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, key: str, epoch: int, method: Method, order_generator: torch.Generator,
                     augment_generator: torch.Generator, metric_log: MetricLog, epoch_seconds: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, key: str) -> dict[str, Any] | None:
    try:
        # Checkpoint folders are not trusted with code: tensors and plain containers only.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or foreign file: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s)", path, error)
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("trial_key") != key:
        log.warning("ignoring checkpoint %s: it belongs to another trial or format", path)
        return None
    return state
