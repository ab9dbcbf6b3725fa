"""Shared fixtures of the method tests: a bias-label stand-in that fails on any read (for methods
that declare supervision "none"), a tiny method context, and one epoch through the real trainer."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from debiasbench.methods.base import MethodContext

_READ_MESSAGE = "the method read bias labels"


class PoisonedBias:
    """Stands where bias labels would be. Any use (indexing, arithmetic, a torch op, len, a
    comparison) raises; only `x is None`-style identity checks pass untouched."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"{_READ_MESSAGE} ({getattr(func, '__name__', func)})")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{_READ_MESSAGE} (.{name})")


def _refuse(name: str) -> Callable[..., Any]:
    def refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{_READ_MESSAGE} ({name})")

    return refuse


for _name in (
    "__getitem__",
    "__len__",
    "__iter__",
    "__index__",
    "__int__",
    "__float__",
    "__bool__",
    "__array__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__floordiv__",
    "__mod__",
    "__contains__",
):
    setattr(PoisonedBias, _name, _refuse(_name))


@pytest.fixture
def poisoned_bias() -> PoisonedBias:
    return PoisonedBias()


class TinyNet(nn.Module):
    """The architecture contract (`features`, `classifier`) at toy size: Linear-ReLU, then a linear
    classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.fixture
def toy_context() -> Callable[..., MethodContext]:
    """make(inputs, targets, biases=None, num_bias=None, lr=1.0, model=None) -> MethodContext with
    plain SGD (no momentum), so one step moves every parameter by exactly -lr * grad."""

    def make(
        inputs: torch.Tensor,
        targets: torch.Tensor,
        biases: Any = None,
        num_bias: int | None = None,
        lr: float = 1.0,
        model: Callable[[], nn.Module] | None = None,
        num_classes: int | None = None,
    ) -> MethodContext:
        classes = num_classes if num_classes is not None else int(targets.max()) + 1
        return MethodContext(
            dataset="toy",
            num_classes=classes,
            num_train=len(targets),
            train_targets=targets,
            device=torch.device("cpu"),
            model_factory=model or (lambda: TinyNet(inputs.shape[1], classes)),
            optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr),
            train_inputs=lambda index: inputs[index],
            unit_inputs=lambda x: x,
            num_bias_values=num_bias,
            train_bias=biases,
            input_shape=tuple(inputs.shape[1:]),
            model_inputs=lambda u: u,
        )

    return make


def _trial_api() -> SimpleNamespace:
    """The trial-resolution and training entry points, imported on first use."""
    from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
    from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
    from debiasbench.benchmark.trial import TrialConfig
    from debiasbench.datasets.base import DataPaths

    return SimpleNamespace(
        TrialConfig=TrialConfig,
        resolve_trial=resolve_trial,
        InvalidTrialError=InvalidTrialError,
        TrainEnv=TrainEnv,
        train_trial=train_trial,
        DataPaths=DataPaths,
    )


@pytest.fixture
def trial_api() -> SimpleNamespace:
    return _trial_api()


@pytest.fixture
def toy_env(tmp_path, toy_plugin, trial_api) -> Any:
    """A CPU TrainEnv for the toy plugin's dataset, with a per-test data folder."""
    return trial_api.TrainEnv(paths=trial_api.DataPaths(tmp_path, tmp_path / "cache"), device="cpu", num_threads=1)


def metric_rows(output: Any) -> list[tuple]:
    """(epoch, role, split, subset, metric, value) rows of a TrialOutput."""
    return list(zip(*(output.metrics[c] for c in ("epoch", "role", "split", "subset", "metric", "value"))))


@pytest.fixture
def train_toy_epoch(toy_env, trial_api) -> Callable[..., Any]:
    """run(method, hparams=None, epochs=1) -> TrialOutput of the real trainer on the toy plugin's
    400-sample dataset (4 classes, 4 bias values, an MLP), after checking the run's basics. The
    output also carries `.trial` (the resolved trial) and `.rows` (see `metric_rows`)."""

    def run(method: str, hparams: dict[str, Any] | None = None, epochs: int = 1) -> Any:
        trial = trial_api.resolve_trial(
            trial_api.TrialConfig("toy", method, method_hparams=hparams or {}, epochs=epochs)
        )
        output = trial_api.train_trial(trial, toy_env)
        rows = metric_rows(output)
        train_losses = [r[5] for r in rows if r[2] == "train" and r[4] == "loss" and r[1] == trial.predictor_role]
        assert train_losses and all(math.isfinite(v) for v in train_losses), "no finite training loss logged"
        test_accuracy = [
            r[5]
            for r in rows
            if r[2] == "test" and r[3] == "all" and r[4] == "accuracy" and r[1] == trial.predictor_role
        ]
        assert len(test_accuracy) == epochs and all(0.0 <= v <= 1.0 for v in test_accuracy)
        output.trial = trial
        output.rows = rows
        return output

    return run


@pytest.fixture
def saved_and_loaded() -> Callable[[Any], Any]:
    """state -> the same state after torch.save and a weights-only torch.load, as the trainer's
    checkpoints go (a plain in-memory state would share optimiser tensors with the original)."""

    def roundtrip(state: Any) -> Any:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        return torch.load(buffer, map_location="cpu", weights_only=True)

    return roundtrip
