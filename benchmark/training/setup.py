"""Everything a trial needs before its first epoch: the device, the data on it (with the held-out
split under the validation protocol), the RNG streams, and the method with its context.

Bias labels reach a method's context only when its supervision type allows them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from debiasbench.benchmark.supervision import Supervision
from debiasbench.benchmark.training.holdout import holdout_indices
from debiasbench.benchmark.training.input_pipeline import DeviceSplit
from debiasbench.benchmark.trial import ResolvedTrial
from debiasbench.datasets.base import DATASETS, BiasedData, DataPaths
from debiasbench.methods.base import METHODS, Method, MethodContext
from debiasbench.models import build_model


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
class TrialSetup:
    trial: ResolvedTrial
    device: torch.device
    data: BiasedData
    method: Method
    supervision: Supervision
    train: DeviceSplit
    evaluated: dict[str, DeviceSplit]  # "test", and "valid" under the validation protocol
    # Per training sample, the slot its loss is logged in (Figure 2): 1 aligned, 0 conflicting.
    loss_slot: torch.Tensor
    loss_slot_names: tuple[str, ...]
    num_eval_bias: int
    has_bias: bool
    order_generator: torch.Generator
    augment_generator: torch.Generator
    drop_last: bool = False


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
    """factory(parameters, lr=None): the protocol's optimiser, at the protocol's learning rate
    unless a method asks for its own for one network."""

    def factory(parameters, lr: float | None = None):
        rate = trial.lr if lr is None else lr
        if trial.optimizer == "adam":
            return torch.optim.Adam(parameters, lr=rate, weight_decay=trial.weight_decay)
        if trial.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=rate, weight_decay=trial.weight_decay, momentum=0.9)
        raise ValueError(f"unknown optimizer {trial.optimizer!r}; use 'adam' or 'sgd'")

    return factory


def input_shape(data: BiasedData, train: DeviceSplit) -> tuple[int, ...]:
    """The shape of one model input (after any crop), from one un-augmented training input."""
    if len(train) == 0:
        return tuple(data.train.images.shape[1:])
    return tuple(train.inputs(torch.zeros(1, dtype=torch.long, device=train.targets.device)).shape[1:])


def set_up_trial(trial: ResolvedTrial, env: TrainEnv) -> TrialSetup:
    """Load the data onto the device and build the method. The trial is already resolved and
    validated (by the driver), so its parameters are trusted as they are."""
    device = pick_device(env.device)
    if env.num_threads:
        torch.set_num_threads(env.num_threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    dataset_cls = DATASETS.get(trial.dataset)
    data = dataset_cls.load(dataset_cls.Params(**trial.dataset_params), env.paths, trial.data_seed)
    method_cls = METHODS.get(trial.method)
    supervision = Supervision(trial.supervision)
    has_bias = data.num_bias_values is not None and data.train.biases is not None

    train_rows = valid_rows = None
    if trial.protocol == "validation":
        # The model trains on the rest; the held-out part is evaluated every epoch like the test set.
        train_rows, valid_rows = holdout_indices(
            data.train.targets, data.train.biases, trial.validation_fraction, trial.data_seed
        )
    keep = data.train.images.numel() + data.test.images.numel() <= env.max_device_bytes
    train = DeviceSplit(data.train, data.input_spec, device, keep_on_device=keep, rows=train_rows)
    evaluated = {"test": DeviceSplit(data.test, data.input_spec, device, keep_on_device=keep)}
    if valid_rows is not None:
        evaluated["valid"] = DeviceSplit(data.train, data.input_spec, device, keep_on_device=keep, rows=valid_rows)
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
        input_shape=input_shape(data, train),
        batch_size=trial.batch_size,
        epochs=trial.epochs,
        model_name=data.model,
        model_kwargs=dict(data.model_kwargs),
        augmented_inputs=lambda index: train.inputs(index, augment=True, generator=augment_generator),
        model_inputs=train.from_unit,
    )
    method = method_cls(method_cls.Hparams(**trial.method_hparams), ctx).to(device)
    return TrialSetup(
        trial,
        device,
        data,
        method,
        supervision,
        train,
        evaluated,
        loss_slot,
        loss_slot_names,
        num_eval_bias,
        has_bias,
        order_generator,
        augment_generator,
        drop_last=method_cls.drop_last,
    )
