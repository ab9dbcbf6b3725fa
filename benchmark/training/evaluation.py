"""Evaluating every model role on a split, and the long-format metric rows a trial produces:
per epoch and role, accuracy over all cells, the aligned and conflicting cells, every (target, bias)
group and the losses, so the report can recompute any table without retraining."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from debiasbench.benchmark.metric_names import REPORTED, TEST_ACCURACY, VALID_ACCURACY, VALID_WORST_GROUP_ACCURACY
from debiasbench.benchmark.training.input_pipeline import DeviceSplit
from debiasbench.benchmark.training.metrics import GroupCounts, summarize
from debiasbench.datasets.base import BiasedData
from debiasbench.methods.base import Method

EVAL_BATCH_SIZE = 2048
METRIC_COLUMNS = ("epoch", "role", "split", "subset", "target", "bias", "metric", "value")


@dataclass
class MetricLog:
    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in METRIC_COLUMNS})

    def add(
        self,
        epoch: int,
        role: str,
        split: str,
        subset: str,
        metric: str,
        value: float,
        target: int | None = None,
        bias: int | None = None,
    ) -> None:
        for column, item in zip(METRIC_COLUMNS, (epoch, role, split, subset, target, bias, metric, float(value))):
            self.columns[column].append(item)


@torch.no_grad()
def evaluate(
    method: Method, split: DeviceSplit, roles: tuple[str, ...], num_classes: int, num_bias: int
) -> dict[str, tuple[GroupCounts, torch.Tensor]]:
    """Group counts, summed CE and predictions of every role on a split."""
    was_training = method.training
    method.eval()
    results = {role: (GroupCounts.zeros(num_classes, num_bias, split.device), []) for role in roles}
    loss_sums = {role: torch.zeros((), device=split.device) for role in roles}
    for start in range(0, len(split), EVAL_BATCH_SIZE):
        index = torch.arange(start, min(start + EVAL_BATCH_SIZE, len(split)), device=split.device)
        x = split.inputs(index)
        y = split.targets[index]
        b = split.biases[index] if split.biases is not None else torch.zeros_like(y)
        for role in roles:
            logits = method.logits(x, role).float()
            predictions = logits.argmax(1)
            results[role][0].add(predictions, y, b)
            results[role][1].append(predictions)
            loss_sums[role] += F.cross_entropy(logits, y, reduction="sum")
    method.train(was_training)
    out = {}
    for role in roles:
        counts, predictions = results[role]
        counts.loss_sum = float(loss_sums[role])
        out[role] = (counts, torch.cat(predictions))
    return out


def record_evaluation(
    metric_log: MetricLog, epoch: int, split_name: str, role: str, counts: GroupCounts, data: BiasedData, has_bias: bool
) -> dict[str, float]:
    summary = summarize(counts, data.aligned_bias if has_bias else None)
    for subset, metrics in summary.items():
        for metric, value in metrics.items():
            metric_log.add(epoch, role, split_name, subset, metric, value)
    metric_log.add(epoch, role, split_name, "all", "loss", counts.loss_sum / float(counts.total.sum()))
    accuracy = counts.accuracy_matrix().cpu()
    total = counts.total.cpu()
    for y, b in zip(*torch.nonzero(total > 0, as_tuple=True)):
        y, b = int(y), int(b)
        subset, bias = ("group", b) if has_bias else ("class", None)
        metric_log.add(epoch, role, split_name, subset, "accuracy", float(accuracy[y, b]), y, bias)
        metric_log.add(epoch, role, split_name, subset, "count", float(total[y, b]), y, bias)
    # Flat "<subset>_<metric>" names; the trainer prefixes split and role.
    return {f"{subset}_{metric}": value for subset, metrics in summary.items() for metric, value in metrics.items()}


def predictions_of(
    evaluation: dict[str, tuple[GroupCounts, torch.Tensor]], split: DeviceSplit
) -> dict[str, np.ndarray]:
    roles = list(evaluation)
    n = len(split)
    biases = split.biases.cpu().numpy() if split.biases is not None else np.full(n, -1)
    return {
        "role": np.repeat(np.array(roles, dtype=object), n),
        "index": np.tile(np.arange(n), len(roles)),
        "target": np.tile(split.targets.cpu().numpy(), len(roles)),
        "bias": np.tile(biases, len(roles)),
        "prediction": np.concatenate([evaluation[r][1].cpu().numpy() for r in roles]),
    }


def reported_metrics(summary: dict[str, float], predictor_role: str) -> dict[str, float]:
    """The flat metric names Tune receives every epoch (a search may optimise only the valid ones)."""
    out = {}
    for name in (TEST_ACCURACY, VALID_ACCURACY, VALID_WORST_GROUP_ACCURACY):
        stored = REPORTED[name]
        value = summary.get(f"{stored.split}/{predictor_role}/{stored.subset}_{stored.metric}")
        if value is not None:
            out[name] = value
    return out
