"""Batch-level group balancing (docs/methods-beyond-the-paper.md#balanced_batches): plain ERM on
mini-batches that each hold the same number of samples from every (target, bias) group present.

The background notes contrast two places to balance: the epoch (`group_resample`, which decides
which samples an epoch visits) and the batch (this method, which decides what every single step
sees). Groups are g = y * num_bias + b over the populated groups G+. With batch size B:
- every batch holds floor(B / |G+|) samples of every group, and the B mod |G+| remaining slots go
  to distinct groups drawn at random for that batch, so group counts in a batch differ by at most 1;
- within a group, samples come from back-to-back shuffles of its members (every member once per
  round): a group smaller than its share of the epoch is drawn with replacement across rounds, and
  one smaller than its share of a batch repeats within that batch;
- an epoch has ceil(N / B) full batches, the same number of steps as ERM on the same data.
Every draw uses the generator the trainer passes to `epoch_indices`, so the order is a function of
the trial seed and survives a resume.

Supervision: bias labels (the group of every training sample).

Source: the background notes' "batch level" resampling; no reference implementation. The
per-group share and the within-group rounds are this suite's choices (inferred), stated above.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from debiasbench.methods.base import (
    Batch,
    Method,
    MethodContext,
    StepOutput,
    Supervision,
    register_method,
    require_bias_labels,
)
from debiasbench.methods.group_resample import group_members


@dataclass(frozen=True)
class BalancedBatchesHparams:
    """No tuned parameter: the batch size is the protocol's."""


def _group_stream(members: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` draws from back-to-back shuffles of `members`."""
    rounds = -(-count // len(members))
    return torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])[:count]


def balanced_batch_indices(
    members: list[torch.Tensor], num_batches: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """`num_batches` consecutive batches of `batch_size` indices, each with floor(B/G) samples of
    every group in `members` plus one more for B mod G groups drawn afresh per batch."""
    num_groups = len(members)
    base, extra = divmod(batch_size, num_groups)
    # Per batch, how many samples each group gives: `base`, plus 1 for `extra` random groups.
    counts = torch.full((num_batches, num_groups), base, dtype=torch.long)
    if extra:
        bonus = torch.stack([torch.randperm(num_groups, generator=generator)[:extra] for _ in range(num_batches)])
        counts.scatter_(1, bonus, 1 + base)
    streams = [_group_stream(m, int(counts[:, g].sum()), generator) for g, m in enumerate(members)]
    offsets = [0] * num_groups
    batches = []
    for b in range(num_batches):
        parts = []
        for g in range(num_groups):
            n = int(counts[b, g])
            parts.append(streams[g][offsets[g] : offsets[g] + n])
            offsets[g] += n
        batch = torch.cat(parts)
        batches.append(batch[torch.randperm(len(batch), generator=generator)])
    return torch.cat(batches)


@register_method("balanced_batches")
class BalancedBatches(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = BalancedBatchesHparams
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: BalancedBatchesHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        require_bias_labels(ctx, "balanced_batches")
        if ctx.batch_size < 1:
            raise ValueError("balanced_batches needs the protocol's batch size in its context (ctx.batch_size)")
        self.net = self.add_net("main")
        self._members = group_members(ctx.train_targets * ctx.num_bias_values + ctx.train_bias)

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        num_batches = -(-self.ctx.num_train // self.ctx.batch_size)
        return balanced_batch_indices(self._members, num_batches, self.ctx.batch_size, generator)

    def train_step(self, batch: Batch) -> StepOutput:
        return self.cross_entropy_step(self.net, batch)
