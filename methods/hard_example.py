"""Online hard-example mining (OHEM; Shrivastava et al., CVPR 2016, for detection; loss-based batch
selection, Loshchilov & Hutter 2015, for classification): forward the whole batch, then
back-propagate only through the samples with the largest loss.

Per step, with B the batch size and ce_i = CE(f(x_i), y_i) from one forward pass:
    k = ceil(keep_fraction * B)
    S = the k indices of the largest ce_i                            (selection "topk")
      | k indices drawn without replacement, P proportional to ce_i   (selection "proportional")
    L = (1/k) sum_{i in S} ce_i
The selection is made on detached losses, so the selected set is a constant; samples outside S
contribute no gradient at all. The proportional draw uses the global torch generator of the
batch's device, which the trainer seeds per trial: reproducible per seed. A resumed trial repeats
an uninterrupted one exactly on the CPU (the trainer checkpoints the CPU generator); on CUDA the
device generator is not checkpointed, so draws after a resume differ.

Supervision: none; the loss alone decides. A sample the model finds hard is more often a
bias-conflicting one once the shortcut is learnt, which is why this is a debiasing baseline.

Deviations and inferences: the original OHEM forwards a larger pool and keeps a fixed B; here the
trainer's batch is the pool and k < B samples are kept, so each step back-propagates k samples
[inferred]. Default keep_fraction 0.5 [inferred, no published value for these datasets]. If every
loss in the batch is exactly 0, the proportional draw falls back to uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method

SELECTIONS = ("topk", "proportional")


@dataclass(frozen=True)
class HardExampleHparams:
    keep_fraction: float = 0.5  # [inferred]
    selection: str = "topk"  # "topk" (classic OHEM) or "proportional" (loss-proportional sampling)

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must lie in (0, 1], got {self.keep_fraction}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")


def kept_count(batch_size: int, keep_fraction: float) -> int:
    """k = ceil(keep_fraction * B), at least 1 (float round-off guarded: 0.5 * 6 stays 3)."""
    return max(1, min(batch_size, math.ceil(round(keep_fraction * batch_size, 9))))


def select_hard(losses: torch.Tensor, k: int, selection: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (into the batch) of the k samples that are back-propagated."""
    losses = losses.detach()
    if selection == "topk":
        return torch.topk(losses, k).indices
    # All-zero losses would be an invalid distribution; the where() keeps it on the device.
    weights = torch.where(losses.sum() > 0, losses.float(), torch.ones_like(losses, dtype=torch.float))
    # Without replacement, torch refuses to draw more indices than there are non-zero weights; a
    # floor far below any real loss only orders the zero-loss samples after the others.
    weights = weights + torch.finfo(torch.float32).tiny
    return torch.multinomial(weights, k, replacement=False, generator=generator)


@register_method("hard_example")
class HardExample(Method):
    supervision = Supervision.NONE
    Hparams = HardExampleHparams
    search_space = {
        "keep_fraction": lambda rng: float(rng.choice([0.125, 0.25, 0.5, 0.75])),
        "selection": lambda rng: str(rng.choice(list(SELECTIONS))),
    }
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: HardExampleHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")

    def train_step(self, batch: Batch) -> StepOutput:
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        k = kept_count(per_sample.shape[0], self.hparams.keep_fraction)
        selected = select_hard(per_sample, k, self.hparams.selection)
        loss = per_sample[selected].mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        # The logged per-sample loss covers the whole batch: it is what the model does on the data.
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
