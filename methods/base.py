"""The method contract. A debiasing method is one module in `methods/` that subclasses `Method`
and registers itself with `@register_method("name")`; nothing outside that module changes.

A method never sees the runner, the store or the report. It gets a `MethodContext` (model and
optimiser factories, training-set metadata) and one `Batch` at a time. Bias labels appear in the
context and the batch only when the method's supervision type allows them: the trainer enforces it.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.benchmark.registry import Registry
from debiasbench.benchmark.supervision import Supervision


@dataclass(frozen=True)
class Batch:
    """One training minibatch. `index` are stable dataset indices (LfF and REPAIR keep per-sample
    state); `x` is the augmented, normalised float input; `bias` is None unless allowed."""

    index: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    bias: torch.Tensor | None = None


@dataclass
class StepOutput:
    """What one training step reports. Tensors stay on the device (no host sync per step)."""

    loss: torch.Tensor
    # Plain per-sample cross-entropy of every trained role, detached: the trainer splits it into
    # aligned/conflicting means for Figure 2 using bias labels the method never sees.
    per_sample_loss: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodContext:
    """Everything a method may know about its training run."""

    dataset: str
    num_classes: int
    num_train: int
    train_targets: torch.Tensor  # (N,) long, on `device`
    device: torch.device
    model_factory: Callable[[], nn.Module]  # a fresh network of the dataset's architecture
    # optimizer_factory(params) uses the protocol's learning rate; the trainer's factory also takes
    # `lr=` for a network that a method trains at its own rate (e.g. LC's 0.1x for the biased model).
    optimizer_factory: Callable[..., torch.optim.Optimizer]
    # Un-augmented, normalised inputs for the given training indices (for pre-training stages).
    train_inputs: Callable[[torch.Tensor], torch.Tensor]
    # Maps model inputs (scaled, normalised) back to pixel intensities in [0, 1], for methods whose
    # bias representation reads raw colour or texture (HEX's NGLCM, REPAIR's colour feature).
    unit_inputs: Callable[[torch.Tensor], torch.Tensor]
    num_bias_values: int | None = None
    train_bias: torch.Tensor | None = None  # only for methods with Supervision.BIAS_LABELS
    # What the network sees, so a method can build variants of it (early exits, two encoders, an
    # auxiliary encoder) from the registered models: `build_model(model_name, num_classes,
    # **model_kwargs)` is what `model_factory` returns; `input_shape` is one input, e.g. (3, 28, 28).
    input_shape: tuple[int, ...] = ()
    batch_size: int = 0  # the protocol's training batch size (what `epoch_indices` is cut into)
    epochs: int = 0  # the trial's training epochs (a first stage may default to the same length)
    model_name: str = ""
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # Augmented inputs for training indices, drawn from the trial's augment stream (a second view).
    augmented_inputs: Callable[[torch.Tensor], torch.Tensor] | None = None
    # The inverse of `unit_inputs`: pixel intensities in [0, 1] to model inputs (for perturbations
    # defined in pixel units, e.g. an adversarial epsilon of 8/255).
    model_inputs: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class NoHparams:
    """For methods without hyper-parameters of their own."""


Sampler = Callable[[np.random.Generator], Any]


class Method(nn.Module, abc.ABC):
    """Base class of every debiasing method (cf. DomainBed's Algorithm).

    Subclasses set the class attributes and implement `train_step`. Networks go in `self.nets`
    (one per model role) and their optimisers in `self.optimizers`; per-sample state goes in
    registered buffers, so `checkpoint_state()` captures everything needed to resume.
    """

    name: ClassVar[str]
    supervision: ClassVar[Supervision] = Supervision.NONE
    Hparams: ClassVar[type] = NoHparams
    # Optional random-search space: parameter name -> sampler(rng). See `resolve_hparams`.
    search_space: ClassVar[Mapping[str, Sampler]] = {}
    roles: ClassVar[tuple[str, ...]] = ("main",)
    predictor_role: ClassVar[str] = "main"
    drop_last: ClassVar[bool] = False  # methods that need full batches (HEX, HSIC) set this

    def __init__(self, hparams: Any, ctx: MethodContext) -> None:
        super().__init__()
        self.hparams = hparams
        self.ctx = ctx
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # Per-network learning-rate schedules, stepped by `end_epoch` and checkpointed.
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # -- contract -------------------------------------------------------------------------
    @classmethod
    def supervision_on(cls, dataset: str) -> Supervision:
        """The supervision this method needs on `dataset` (REPAIR needs labels on some only)."""
        return cls.supervision

    @abc.abstractmethod
    def train_step(self, batch: Batch) -> StepOutput:
        """Update the method's networks on one batch."""

    def logits(self, x: torch.Tensor, role: str) -> torch.Tensor:
        """Evaluation logits of one role (called in eval mode under no_grad)."""
        return self.nets[role](x)

    def prepare(self) -> None:
        """Optional stage run once before the first epoch (e.g. REPAIR's weight learning)."""

    def epoch_diagnostics(self) -> Mapping[str, float]:
        """Optional method-specific scalars, called once at the end of every epoch and stored
        (role "-", split "train", subset "method"). Methods may reset per-epoch accumulators here."""
        return {}

    def end_epoch(self, epoch: int) -> None:
        """Optional hook after every training epoch (0-based `epoch`), before the evaluation:
        refresh per-epoch state (embeddings, statistics). The default steps every registered
        learning-rate scheduler once."""
        for scheduler in self.schedulers.values():
            scheduler.step()

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        """Optional custom sampling: the training indices to visit this epoch, in order.
        None means a uniform random permutation of the whole training set."""
        return None

    # -- helpers --------------------------------------------------------------------------
    def add_net(self, role: str) -> nn.Module:
        net = self.ctx.model_factory().to(self.ctx.device)
        self.nets[role] = net
        self.optimizers[role] = self.ctx.optimizer_factory(net.parameters())
        return net

    def zero_grad_all(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def step_all(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.step()

    def cross_entropy_step(self, net: nn.Module, batch: Batch, role: str = "main") -> StepOutput:
        """One update on the mean cross-entropy of `net`: the whole step of the methods whose
        change lies in which samples an epoch visits (their `epoch_indices`), not in the loss."""
        per_sample = F.cross_entropy(net(batch.x), batch.y, reduction="none")
        loss = per_sample.mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={role: per_sample.detach()})

    def add_scheduler(self, role: str, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        """Register a learning-rate schedule for the optimiser of `role` (stepped once per epoch)."""
        if role not in self.optimizers:
            raise ValueError(f"no optimiser for role {role!r}; add the network first (add_net)")
        self.schedulers[role] = scheduler

    def checkpoint_state(self) -> dict[str, Any]:
        state = {
            "module": self.state_dict(),
            "optimizers": {role: opt.state_dict() for role, opt in self.optimizers.items()},
        }
        if self.schedulers:
            state["schedulers"] = {role: s.state_dict() for role, s in self.schedulers.items()}
        return state

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["module"])
        for role, opt_state in state["optimizers"].items():
            self.optimizers[role].load_state_dict(opt_state)
        for role, scheduler_state in state.get("schedulers", {}).items():
            self.schedulers[role].load_state_dict(scheduler_state)


def require_bias_labels(ctx: MethodContext, method: str) -> tuple[torch.Tensor, int]:
    """The training bias labels and their number of values, or an error naming the method: for
    methods whose groups need them (the trainer passes them only under their supervision)."""
    if ctx.train_bias is None or ctx.num_bias_values is None:
        raise ValueError(f"{method} needs the bias label of every training sample; the dataset has none")
    return ctx.train_bias, ctx.num_bias_values


def shuffled_rounds(pool: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """The first n of back-to-back shuffles of `pool`: an epoch of the full training length drawn
    from a smaller (or upsampled) pool, every member once per round."""
    rounds = math.ceil(n / len(pool))
    return torch.cat([pool[torch.randperm(len(pool), generator=generator)] for _ in range(rounds)])[:n]


METHODS: Registry[type[Method]] = Registry("method", "debiasbench.methods")
register_method = METHODS.register


def _param_rng(method: str, dataset: str, hparams_seed: int, param: str) -> np.random.Generator:
    # One generator per (method, dataset, k, parameter): adding a parameter never shifts the others.
    digest = hashlib.sha256(f"{method}|{dataset}|{hparams_seed}|{param}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def resolve_hparams(
    method_cls: type[Method],
    dataset: str,
    hparams_seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """The method's hyper-parameters: defaults for hparams_seed 0, else draws from its search
    space (docs/protocol.md#training-and-selection), then explicit overrides. Unknown override names are an error."""
    fields = {f.name for f in dataclasses.fields(method_cls.Hparams)}
    values: dict[str, Any] = {}
    if hparams_seed != 0:
        if not method_cls.search_space:
            raise ValueError(
                f"method {method_cls.name!r} declares no search space, so hparams_seed "
                f"{hparams_seed} has nothing to draw; use hparams_seed 0 (the paper's defaults)"
            )
        for param, sampler in method_cls.search_space.items():
            values[param] = sampler(_param_rng(method_cls.name, dataset, hparams_seed, param))
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ValueError(
                f"method {method_cls.name!r} has no hyper-parameter {key!r}; "
                f"its hyper-parameters are: {', '.join(sorted(fields)) or '(none)'}"
            )
        values[key] = value
    return method_cls.Hparams(**values)


def default_hparams(method_cls: type[Method], dataset: str) -> dict[str, Any]:
    """The method's registered defaults on `dataset` (hparams_seed 0, no overrides), as a trial records them."""
    return dataclasses.asdict(resolve_hparams(method_cls, dataset))
