"""The one training loop every method shares. It knows nothing of Ray or of the result store:
it takes a resolved trial, trains every model role for the protocol's epochs, evaluates each role
on the evaluation split after every epoch, checkpoints, and returns long-format metric rows.

Bias labels reach a method only if its supervision type allows them; they are otherwise used here
solely for evaluation and for logging the training loss of aligned vs conflicting samples.
"""

from __future__ import annotations

import logging
import math
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from debiasbench.benchmark.training.checkpoint import load_checkpoint, save_checkpoint
from debiasbench.benchmark.training.evaluation import (
    MetricLog,
    evaluate,
    predictions_of,
    record_evaluation,
    reported_metrics,
)
from debiasbench.benchmark.training.setup import TrainEnv, TrialSetup, set_up_trial
from debiasbench.benchmark.trial import ResolvedTrial
from debiasbench.methods.base import Batch

log = logging.getLogger(__name__)

__all__ = ["TrainEnv", "TrialOutput", "train_trial"]


@dataclass
class TrialOutput:
    metrics: dict[str, list]  # long format, columns METRIC_COLUMNS
    predictions: dict[str, np.ndarray] | None
    wall_time_s: float
    seconds_per_epoch: float
    peak_memory_mb: float
    device_name: str
    cpu: str  # the CPU model and the vector kernels torch chose: CPU results differ between them
    torch_version: str
    cuda_version: str | None
    resumed_from_epoch: int


def cpu_description() -> str:
    """The host CPU's model and the instruction set torch's CPU kernels use (e.g. "AMD EPYC, AVX2").
    Kernels of another level (AVX2, AVX-512, generic) round sums differently, so one seed gives
    bit-identical results on one CPU but not across CPUs (measured: docs/protocol.md)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}"


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_one_epoch(setup: TrialSetup, epoch: int, autocast: Any) -> torch.Tensor:
    """One pass over the epoch's batches; returns the mean training loss per (role, loss slot)."""
    trial, method, train = setup.trial, setup.method, setup.train
    method.train()
    order = method.epoch_indices(epoch, setup.order_generator)
    if order is None:
        order = torch.randperm(len(train), generator=setup.order_generator)
    order = order.to(setup.device)
    batch_size = trial.batch_size
    num_batches = len(order) // batch_size if setup.drop_last else math.ceil(len(order) / batch_size)
    loss_sums = torch.zeros(len(trial.roles), len(setup.loss_slot_names), device=setup.device)
    visits = torch.zeros(len(setup.loss_slot_names), device=setup.device)
    for step in range(num_batches):
        index = order[step * batch_size : (step + 1) * batch_size]
        batch = Batch(
            index=index,
            x=train.inputs(index, augment=True, generator=setup.augment_generator),
            y=train.targets[index],
            bias=train.biases[index] if setup.supervision.receives_bias_labels else None,
        )
        with autocast:
            output = method.train_step(batch)
        slot = setup.loss_slot[index]
        visits.index_add_(0, slot, torch.ones_like(slot, dtype=visits.dtype))
        for role_index, role in enumerate(trial.roles):
            per_sample = output.per_sample_loss.get(role)
            if per_sample is not None:
                loss_sums[role_index].index_add_(0, slot, per_sample.float())
    mean_losses = (loss_sums / visits.clamp_min(1)).cpu()
    if not torch.isfinite(mean_losses).all():
        raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}: {mean_losses.tolist()}")
    return torch.where(visits.cpu() > 0, mean_losses, torch.full_like(mean_losses, math.nan))


def train_trial(
    trial: ResolvedTrial,
    env: TrainEnv,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_metrics: Callable[[dict[str, list]], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> TrialOutput:
    """Train and evaluate one trial; resumes from `env.checkpoint_dir` when a checkpoint exists.

    After every epoch, `on_metrics` receives every metric row measured so far (so a caller can
    persist partial progress), then `on_epoch` a flat summary of the epoch's evaluation.
    `on_resume` hears the checkpoint's epoch before its state is applied (so a caller can retry
    from scratch when a resumed run fails)."""
    started = time.perf_counter()
    setup = set_up_trial(trial, env)
    method, device = setup.method, setup.device

    metric_log = MetricLog()
    epoch_seconds: list[float] = []
    start_epoch = 0
    checkpoint_file = env.checkpoint_dir / "last.pt" if env.checkpoint_dir else None
    if checkpoint_file is not None and checkpoint_file.is_file():
        state = load_checkpoint(checkpoint_file, trial.key)
        if state is not None:
            if on_resume is not None:
                on_resume(int(state["epoch"]))
            method.load_checkpoint_state(state["method"])
            setup.order_generator.set_state(state["order_rng"])
            setup.augment_generator.set_state(state["augment_rng"])
            torch.set_rng_state(state["torch_rng"])
            metric_log.columns = state["metrics"]
            epoch_seconds = list(state["epoch_seconds"])
            start_epoch = int(state["epoch"])
            log.info("resuming trial %s from epoch %d", trial.key, start_epoch)
    if start_epoch == 0:
        method.prepare()

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if env.mixed_precision and device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    predictions: dict[str, np.ndarray] | None = None
    evaluate_split = lambda split: evaluate(
        method,
        split,
        trial.roles,
        setup.data.num_classes,  # noqa: E731
        setup.num_eval_bias,
    )
    for epoch in range(start_epoch, trial.epochs):
        epoch_started = time.perf_counter()
        mean_losses = train_one_epoch(setup, epoch, autocast)
        method.end_epoch(epoch)
        record_epoch = epoch + 1  # epochs are 1-based in the store
        for name, value in method.epoch_diagnostics().items():
            metric_log.add(record_epoch, "-", "train", "method", name, value)
        for role_index, role in enumerate(trial.roles):
            for slot_index, slot_name in enumerate(setup.loss_slot_names):
                if not math.isnan(mean_losses[role_index, slot_index]):
                    metric_log.add(record_epoch, role, "train", slot_name, "loss", mean_losses[role_index, slot_index])

        summary: dict[str, Any] = {"epoch": record_epoch}
        for split_name, split in setup.evaluated.items():
            split_evaluation = evaluate_split(split)
            if split_name == "test":
                evaluation = split_evaluation
            for role, (counts, _) in split_evaluation.items():
                has_bias = setup.has_bias and split.biases is not None
                for name, value in record_evaluation(
                    metric_log, record_epoch, split_name, role, counts, setup.data, has_bias
                ).items():
                    summary[f"{split_name}/{role}/{name}"] = value
        epoch_seconds.append(time.perf_counter() - epoch_started)
        metric_log.add(record_epoch, "-", "train", "all", "seconds", epoch_seconds[-1])
        summary["seconds"] = epoch_seconds[-1]
        summary.update(reported_metrics(summary, trial.predictor_role))
        if epoch + 1 == trial.epochs and env.save_predictions:
            predictions = predictions_of(evaluation, setup.evaluated["test"])
        if checkpoint_file is not None and epoch + 1 < trial.epochs:
            save_checkpoint(
                checkpoint_file,
                trial.key,
                record_epoch,
                method,
                setup.order_generator,
                setup.augment_generator,
                metric_log,
                epoch_seconds,
            )
        if on_metrics is not None:
            on_metrics(metric_log.columns)
        if on_epoch is not None:
            on_epoch(summary)

    if predictions is None and env.save_predictions:  # resumed after the final epoch
        predictions = predictions_of(evaluate_split(setup.evaluated["test"]), setup.evaluated["test"])
    return TrialOutput(
        metrics=metric_log.columns,
        predictions=predictions,
        wall_time_s=time.perf_counter() - started,
        seconds_per_epoch=float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        peak_memory_mb=_peak_memory_mb(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        cpu=cpu_description(),
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        resumed_from_epoch=start_epoch,
    )
