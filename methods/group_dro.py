"""Group DRO (Sagawa et al., ICLR 2020; docs/methods.md#group-dro): online mirror ascent on group weights q.

Groups are the (target, bias) cells, g = y * num_bias + b. Each step first moves q by an
exponentiated-gradient step on the current batch's per-group mean losses, then minimises the
q-weighted sum of those losses. q lives on the device as a registered buffer, so a checkpoint
resumes it. Group-balanced sampling (the official commands' `--reweight_groups`) is on by default
and recorded with the trial's hyper-parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import (
    Batch,
    Method,
    MethodContext,
    StepOutput,
    Supervision,
    register_method,
    require_bias_labels,
)


@dataclass(frozen=True)
class GroupDROHparams:
    eta: float = 0.01  # robust step size of the q update (reference default)
    # Draw each epoch's N indices with replacement, P(i) proportional to 1/n_{g_i}.
    group_balanced_sampling: bool = True
    # C of the generalisation adjustment C/sqrt(n_g), used in the q update only (reference: 0).
    generalization_adjustment: float = 0.0
    normalize_loss: bool = False  # divide the adjusted group losses by their sum before the q step

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError(f"eta must be non-negative, got {self.eta}")
        if self.generalization_adjustment < 0:
            raise ValueError(f"generalization_adjustment must be non-negative, got {self.generalization_adjustment}")


def group_mean_losses(per_sample: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """L_g = sum_{i: g_i = g} loss_i / max(1, #{i: g_i = g}); 0 for groups absent from the batch."""
    sums = torch.zeros(num_groups, dtype=per_sample.dtype, device=per_sample.device)
    sums = sums.index_add(0, groups, per_sample)
    counts = torch.bincount(groups, minlength=num_groups).to(per_sample.dtype)
    return sums / counts.clamp_min(1.0)


@register_method("group_dro")
class GroupDRO(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = GroupDROHparams
    search_space = {"eta": lambda rng: float(10.0 ** rng.uniform(-3, -1))}
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: GroupDROHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        require_bias_labels(ctx, "group_dro")
        self.net = self.add_net("main")
        self.num_bias = ctx.num_bias_values
        self.num_groups = ctx.num_classes * ctx.num_bias_values
        train_groups = self.group_of(ctx.train_targets, ctx.train_bias)
        group_counts = torch.bincount(train_groups, minlength=self.num_groups).float()
        # Groups without training samples are excluded: q_g = 0 forever and no 1/sqrt(n_g) term.
        populated = group_counts > 0
        self.register_buffer("group_counts", group_counts, persistent=False)
        self.register_buffer("populated", populated, persistent=False)
        self.register_buffer("q", populated.float() / populated.sum())
        # Sampler weights stay on the CPU: the trainer's order generator is a CPU generator.
        self._sample_weights = (1.0 / group_counts[train_groups]).cpu()

    def group_of(self, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return y * self.num_bias + b

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        if not self.hparams.group_balanced_sampling:
            return None
        # Every group is equally likely at every draw; replacement because minority groups are tiny.
        return torch.multinomial(self._sample_weights, len(self._sample_weights), replacement=True, generator=generator)

    def epoch_diagnostics(self) -> dict[str, float]:
        q = self.q[self.populated]
        entropy = float(-(q * q.clamp_min(1e-30).log()).sum())
        # exp(entropy): how many groups q effectively spreads over (all populated ones when uniform).
        return {"q_max": float(q.max()), "q_effective_groups": math.exp(entropy)}

    @torch.no_grad()
    def update_q(self, group_losses: torch.Tensor) -> None:
        """Exponentiated-gradient step q_g <- q_g exp(eta * A_g), then renormalise."""
        adjusted = group_losses.detach().float()
        c = self.hparams.generalization_adjustment
        if c > 0:
            adjusted = adjusted + torch.where(self.populated, c / self.group_counts.clamp_min(1.0).sqrt(), 0.0)
        if self.hparams.normalize_loss:
            adjusted = adjusted / adjusted.sum().clamp_min(torch.finfo(adjusted.dtype).tiny)
        q = self.q * torch.exp(self.hparams.eta * adjusted)
        self.q.copy_(q / q.sum())

    def train_step(self, batch: Batch) -> StepOutput:
        if batch.bias is None:
            raise ValueError("group_dro received a batch without bias labels")
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        group_losses = group_mean_losses(per_sample.float(), self.group_of(batch.y, batch.bias), self.num_groups)
        self.update_q(group_losses)  # before the theta step, from the current batch
        loss = (self.q * group_losses).sum()  # q is a constant here; absent groups add 0
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
