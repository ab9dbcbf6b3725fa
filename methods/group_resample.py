"""Group resampling (docs/methods-beyond-the-paper.md): plain ERM on an epoch whose (target, bias) groups are balanced
by resampling, through the `epoch_indices` hook.

Groups are g = y * num_bias + b. With n_g the training count of every populated group:
- mode "oversample": every populated group contributes n_max = max_g n_g indices per epoch. The
  largest group is visited once; a group with n_g < n_max is visited floor(n_max / n_g) whole times
  plus a fresh random subset of n_max mod n_g of its samples (drawn without replacement), so its
  samples appear as evenly as the count allows.
- mode "undersample": every populated group contributes n_min = min_g n_g distinct samples, a fresh
  random subset each epoch.
The per-group lists are concatenated and shuffled. Every draw uses the generator the trainer passes
to the hook, so the order is a function of the trial seed and survives a resume.
An epoch therefore has G+ * n_max or G+ * n_min steps' worth of samples (G+ populated groups), not N:
on strongly biased data, oversampling lengthens the epoch many times and undersampling shortens it.

Supervision: bias labels (the group of every training sample).

Deviations: SubpopBench's ReSample (and Group DRO's `--reweight_groups`, this suite's group_dro
sampler) draws N indices with replacement, P(i) proportional to 1/n_{g_i}: balanced in expectation,
with N steps per epoch. Here the per-group counts are exact and the epoch length follows the mode.
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

MODES = ("oversample", "undersample")


@dataclass(frozen=True)
class GroupResampleHparams:
    # "oversample" [inferred default]: keeps every training sample in every epoch, as the
    # with-replacement ReSample baseline keeps all of them in expectation.
    mode: str = "oversample"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")


def group_members(groups: torch.Tensor) -> list[torch.Tensor]:
    """The training indices of every populated group, in increasing group order."""
    groups = groups.cpu()
    return [torch.nonzero(groups == g).squeeze(1) for g in torch.unique(groups).tolist()]


def balanced_indices(members: list[torch.Tensor], mode: str, generator: torch.Generator) -> torch.Tensor:
    """One epoch's shuffled indices with exactly n_max (oversample) or n_min (undersample) draws
    from every populated group; `members` as returned by `group_members`."""
    sizes = [len(m) for m in members]
    target = max(sizes) if mode == "oversample" else min(sizes)
    picked = []
    for group in members:
        whole, rest = divmod(target, len(group))
        extra = group[torch.randperm(len(group), generator=generator)[:rest]]
        picked.append(torch.cat([group.repeat(whole), extra]))
    order = torch.cat(picked)
    return order[torch.randperm(len(order), generator=generator)]


@register_method("group_resample")
class GroupResample(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = GroupResampleHparams
    search_space = {"mode": lambda rng: str(rng.choice(list(MODES)))}
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: GroupResampleHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        require_bias_labels(ctx, "group_resample")
        self.net = self.add_net("main")
        # On the CPU: the trainer's order generator is a CPU generator. Derived from the training
        # labels at construction, so there is nothing to checkpoint.
        self._members = group_members(ctx.train_targets * ctx.num_bias_values + ctx.train_bias)

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        return balanced_indices(self._members, self.hparams.mode, generator)

    def train_step(self, batch: Batch) -> StepOutput:
        return self.cross_entropy_step(self.net, batch)
