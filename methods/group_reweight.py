"""Group reweighting (docs/methods-beyond-the-paper.md, SubpopBench's ReWeight): ERM with every sample's loss weighted
by the inverse frequency of its (target, bias) group in the training set.

Groups are g = y * num_bias + b, as in Group DRO. With n_g the training count of group g, G+ the
number of populated groups and N the training-set size,
    w_g = c / n_g^p,  c chosen so that (1/N) sum_i w_{g_i} = 1,  i.e. c = N / sum_{g populated} n_g^(1-p);
for the default p = 1 this is w_g = N / (G+ * n_g). p = `exponent`: 1 is inverse frequency, 0.5
SubpopBench's SqrtReWeight. Every populated group then carries the same total
weight (p = 1), and the average weight over an epoch is 1, so the loss keeps ERM's scale.
Per step: L = (1/B) sum_{i in batch} w_{g_i} CE(f(x_i), y_i); the weights are constants.

Supervision: bias labels (the group of every training sample).

Deviation from SubpopBench: it normalises so that the mean over *groups* of w_g is 1; here the mean
over *training samples* is 1, so an epoch's total weight equals ERM's (a different constant factor,
which matters with Adam only through its epsilon, with SGD through the effective learning rate).
Empty groups get no weight (they never appear in a batch).
"""

from __future__ import annotations

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
class GroupReweightHparams:
    exponent: float = 1.0  # w_g proportional to n_g^-exponent; 1 = inverse frequency (the method's definition)

    def __post_init__(self) -> None:
        if self.exponent < 0:
            raise ValueError(f"exponent must be non-negative, got {self.exponent}")


def group_weights(groups: torch.Tensor, num_groups: int, exponent: float = 1.0) -> torch.Tensor:
    """Per-group weights c / n_g^exponent (0 for empty groups), scaled so the mean over the samples
    whose groups are `groups` is exactly 1."""
    counts = torch.bincount(groups, minlength=num_groups).double()
    populated = counts > 0
    raw = torch.where(populated, counts.clamp_min(1.0) ** -exponent, torch.zeros_like(counts))
    # sum_i raw[g_i] = sum_g n_g raw_g; divide it out so that the sample mean is 1.
    scale = len(groups) / (counts * raw).sum()
    return (raw * scale).float()


@register_method("group_reweight")
class GroupReweight(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = GroupReweightHparams
    search_space = {"exponent": lambda rng: float(rng.choice([0.5, 1.0]))}
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: GroupReweightHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        require_bias_labels(ctx, "group_reweight")
        self.net = self.add_net("main")
        self.num_bias = ctx.num_bias_values
        num_groups = ctx.num_classes * ctx.num_bias_values
        weights = group_weights(ctx.train_targets * self.num_bias + ctx.train_bias, num_groups, hparams.exponent)
        # Derived from the training labels at construction: nothing to checkpoint.
        self.register_buffer("weights", weights.to(ctx.device), persistent=False)

    def train_step(self, batch: Batch) -> StepOutput:
        if batch.bias is None:
            raise ValueError("group_reweight received a batch without bias labels")
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        weight = self.weights[batch.y * self.num_bias + batch.bias]
        loss = (weight * per_sample).mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
