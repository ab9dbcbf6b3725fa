"""The one training loop every method shares. It knows nothing of Ray or of the result store:
it takes a resolved trial, trains every model role for the protocol's epochs, evaluates each role
on the evaluation split after every epoch, checkpoints, and returns long-format metric rows.

Bias labels reach a method only if its supervision type allows them; they are otherwise used here
solely for evaluation and for logging the training loss of aligned vs conflicting samples.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.trial import ResolvedTrial
from benchmark.training.input_pipeline import DeviceSplit
from benchmark.training.metrics import GroupCounts, summarize
from benchmark.training.holdout import holdout_indices
from datasets.base import DATASETS, BiasedData, DataPaths
from methods.base import METHODS, Batch, Method, MethodContext, Supervision
from models import build_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
EVAL_BATCH_SIZE = 2048
METRIC_COLUMNS = ("epoch", "role", "split", "subset", "target", "bias", "metric", "value")


@dataclass(frozen=True)
class TrainEnv:
    """Where and how a trial runs (not part of its key)."""

    paths: DataPaths
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    checkpoint_dir: Path | None = None  # per-epoch checkpoints; a rerun resumes from here
    num_threads: int | None = None
    mixed_precision: bool = False  # bf16 autocast, CUDA only
    channels_last: bool = False  # CUDA only
    max_device_bytes: int = 16 << 30  # larger datasets stay in host memory, gathered per batch
    save_predictions: bool = True


@dataclass
class TrialOutput:
    metrics: dict[str, list]  # long format, columns METRIC_COLUMNS
    predictions: dict[str, np.ndarray] | None
    wall_time_s: float
    seconds_per_epoch: float
    peak_memory_mb: float
    device_name: str
    torch_version: str
    cuda_version: str | None
    resumed_from_epoch: int


@dataclass
class MetricLog:
    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in METRIC_COLUMNS})

    def add(self, epoch: int, role: str, split: str, subset: str, metric: str, value: float,
            target: int | None = None, bias: int | None = None) -> None:
        for column, item in zip(METRIC_COLUMNS, (epoch, role, split, subset, target, bias, metric, float(value))):
            self.columns[column].append(item)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def stream_seed(seed: int, stream: str) -> int:
    """Independent, reproducible seeds for the RNG streams of one trial."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{stream}".encode()).digest()[:8], "little") >> 1


def make_optimizer_factory(trial: ResolvedTrial) -> Callable:
    def factory(parameters):
        if trial.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=trial.lr, weight_decay=trial.weight_decay)
        if trial.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=trial.lr, weight_decay=trial.weight_decay, momentum=0.9)
        raise ValueError(f"unknown optimizer {trial.optimizer!r}; use 'adam' or 'sgd'")

    return factory


@torch.no_grad()
def evaluate(method: Method, split: DeviceSplit, roles: tuple[str, ...], num_classes: int,
             num_bias: int) -> dict[str, tuple[GroupCounts, torch.Tensor]]:
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


def _record_eval(metric_log: MetricLog, epoch: int, split_name: str, role: str, counts: GroupCounts,
                 data: BiasedData, has_bias: bool) -> dict[str, float]:
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
    return {f"{subset}_accuracy": metrics["accuracy"] for subset, metrics in summary.items()} | {
        "worst_group_accuracy": summary["all"]["worst_group_accuracy"],
        "all_sample_accuracy": summary["all"]["sample_accuracy"],
    }


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_trial(trial: ResolvedTrial, env: TrainEnv,
                on_epoch: Callable[[dict[str, Any]], None] | None = None,
                on_metrics: Callable[[dict[str, list]], None] | None = None) -> TrialOutput:
    """Train and evaluate one trial; resumes from `env.checkpoint_dir` when a checkpoint exists.

    After every epoch, `on_metrics` receives every metric row measured so far (so a caller can
    persist partial progress), then `on_epoch` a flat summary of the epoch's evaluation."""
    started = time.perf_counter()
    device = pick_device(env.device)
    if env.num_threads:
        torch.set_num_threads(env.num_threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    dataset_cls = DATASETS.get(trial.dataset)
    data = dataset_cls.load(dataset_cls.make_params(trial.dataset_params), env.paths, trial.data_seed)
    method_cls = METHODS.get(trial.method)
    supervision = Supervision(trial.supervision)
    has_bias = data.num_bias_values is not None and data.train.biases is not None

    train_rows = valid_rows = None
    if trial.protocol == "validation":
        # The model trains on the rest; the held-out part is evaluated every epoch like the test set.
        train_rows, valid_rows = holdout_indices(data.train.targets, data.train.biases,
                                                 trial.validation_fraction, trial.data_seed)
    keep = data.train.images.numel() + data.test.images.numel() <= env.max_device_bytes
    train = DeviceSplit(data.train, data.input_spec, device, keep_on_device=keep, rows=train_rows)
    evaluated = {"test": DeviceSplit(data.test, data.input_spec, device, keep_on_device=keep)}
    if valid_rows is not None:
        evaluated["valid"] = DeviceSplit(data.train, data.input_spec, device, keep_on_device=keep, rows=valid_rows)
    test = evaluated["test"]
    # Slot per training sample for loss logging: 1 aligned, 0 conflicting (0 for all without bias).
    aligned = data.aligned_mask(train)
    loss_slot = (aligned.long() if aligned is not None else torch.zeros(len(train), dtype=torch.long)).to(device)
    loss_slot_names = ("conflicting", "aligned") if aligned is not None else ("all",)
    num_eval_bias = data.num_bias_values if (has_bias and data.test.biases is not None) else 1

    torch.manual_seed(trial.trial_seed)  # model initialisation (and any dropout)
    order_generator = torch.Generator().manual_seed(stream_seed(trial.trial_seed, "order"))
    augment_generator = torch.Generator(device=device).manual_seed(stream_seed(trial.trial_seed, "augment"))

    def model_factory() -> torch.nn.Module:
        model = build_model(data.model, data.num_classes, **data.model_kwargs)
        if env.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    ctx = MethodContext(
        dataset=trial.dataset,
        num_classes=data.num_classes,
        num_train=len(train),
        train_targets=train.targets,
        device=device,
        model_factory=model_factory,
        optimizer_factory=make_optimizer_factory(trial),
        train_inputs=lambda index: train.inputs(index),
        unit_inputs=train.to_unit,
        num_bias_values=data.num_bias_values,
        train_bias=train.biases if supervision.receives_bias_labels else None,
    )
    method = method_cls(method_cls.Hparams(**trial.method_hparams), ctx).to(device)

    metric_log = MetricLog()
    epoch_seconds: list[float] = []
    start_epoch = 0
    checkpoint_file = env.checkpoint_dir / "last.pt" if env.checkpoint_dir else None
    if checkpoint_file is not None and checkpoint_file.is_file():
        state = _load_checkpoint(checkpoint_file, trial.key)
        if state is not None:
            method.load_checkpoint_state(state["method"])
            order_generator.set_state(state["order_rng"])
            augment_generator.set_state(state["augment_rng"])
            torch.set_rng_state(state["torch_rng"])
            metric_log.columns = state["metrics"]
            epoch_seconds = list(state["epoch_seconds"])
            start_epoch = int(state["epoch"])
            log.info("resuming trial %s from epoch %d", trial.key, start_epoch)
    if start_epoch == 0:
        method.prepare()

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if env.mixed_precision and device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    batch_size = trial.batch_size
    predictions: dict[str, np.ndarray] | None = None
    for epoch in range(start_epoch, trial.epochs):
        epoch_started = time.perf_counter()
        method.train()
        order = method.epoch_indices(epoch, order_generator)
        if order is None:
            order = torch.randperm(len(train), generator=order_generator)
        order = order.to(device)
        num_batches = len(order) // batch_size if method_cls.drop_last else math.ceil(len(order) / batch_size)
        loss_sums = torch.zeros(len(trial.roles), len(loss_slot_names), device=device)
        visits = torch.zeros(len(loss_slot_names), device=device)
        for step in range(num_batches):
            index = order[step * batch_size:(step + 1) * batch_size]
            batch = Batch(
                index=index,
                x=train.inputs(index, augment=True, generator=augment_generator),
                y=train.targets[index],
                bias=train.biases[index] if supervision.receives_bias_labels else None,
            )
            with autocast:
                output = method.train_step(batch)
            slot = loss_slot[index]
            visits.index_add_(0, slot, torch.ones_like(slot, dtype=visits.dtype))
            for role_index, role in enumerate(trial.roles):
                per_sample = output.per_sample_loss.get(role)
                if per_sample is not None:
                    loss_sums[role_index].index_add_(0, slot, per_sample.float())
        mean_losses = (loss_sums / visits.clamp_min(1)).cpu()
        if not torch.isfinite(mean_losses).all():
            raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}: {mean_losses.tolist()}")
        record_epoch = epoch + 1  # epochs are 1-based in the store
        for name, value in method.epoch_diagnostics().items():
            metric_log.add(record_epoch, "-", "train", "method", name, value)
        for role_index, role in enumerate(trial.roles):
            for slot_index, slot_name in enumerate(loss_slot_names):
                if visits[slot_index] > 0:
                    metric_log.add(record_epoch, role, "train", slot_name, "loss", mean_losses[role_index, slot_index])

        summary: dict[str, Any] = {"epoch": record_epoch}
        for split_name, split in evaluated.items():
            split_evaluation = evaluate(method, split, trial.roles, data.num_classes, num_eval_bias)
            if split_name == "test":
                evaluation = split_evaluation
            for role, (counts, _) in split_evaluation.items():
                for name, value in _record_eval(metric_log, record_epoch, split_name, role, counts, data,
                                                has_bias and split.biases is not None).items():
                    summary[f"{split_name}/{role}/{name}"] = value
        epoch_seconds.append(time.perf_counter() - epoch_started)
        metric_log.add(record_epoch, "-", "train", "all", "seconds", epoch_seconds[-1])
        summary["seconds"] = epoch_seconds[-1]
        # Flat names for Tune: searches may only optimise the valid_* ones.
        summary["test_accuracy"] = summary[f"test/{trial.predictor_role}/all_accuracy"]
        if "valid" in evaluated:
            summary["valid_accuracy"] = summary[f"valid/{trial.predictor_role}/all_sample_accuracy"]
            summary["valid_worst_group_accuracy"] = summary[f"valid/{trial.predictor_role}/worst_group_accuracy"]
        if epoch + 1 == trial.epochs and env.save_predictions:
            predictions = _predictions(evaluation, test)
        if checkpoint_file is not None and epoch + 1 < trial.epochs:
            _save_checkpoint(checkpoint_file, trial.key, record_epoch, method, order_generator,
                             augment_generator, metric_log, epoch_seconds)
        if on_metrics is not None:
            on_metrics(metric_log.columns)
        if on_epoch is not None:
            on_epoch(summary)

    if predictions is None and env.save_predictions:  # resumed after the final epoch
        predictions = _predictions(evaluate(method, test, trial.roles, data.num_classes, num_eval_bias), test)
    return TrialOutput(
        metrics=metric_log.columns,
        predictions=predictions,
        wall_time_s=time.perf_counter() - started,
        seconds_per_epoch=float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        peak_memory_mb=_peak_memory_mb(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        resumed_from_epoch=start_epoch,
    )


def _predictions(evaluation: dict[str, tuple[GroupCounts, torch.Tensor]], split: DeviceSplit) -> dict[str, np.ndarray]:
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


def _save_checkpoint(path: Path, key: str, epoch: int, method: Method, order_generator: torch.Generator,
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


def _load_checkpoint(path: Path, key: str) -> dict[str, Any] | None:
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
