"""SMOTE in feature space (Chawla et al., JAIR 2002, applied to embeddings as the background notes
describe; docs/methods-beyond-the-paper.md#smote).

Rare groups: a populated (target, bias) group g = y * num_bias + b is rare when it has fewer than
`rare_below` times the members of the largest group of its class, and at least two members (one
member has no neighbour). For every rare member i the method keeps its embedding e_i (the
network's penultimate `features`, un-augmented, eval mode) and its `k_neighbours` nearest
neighbours (Euclidean) among the members of its own group (all of them if the group is smaller).

One step on a batch (x, y) of size B:
1. S = round(synthetic_fraction * B) synthetic points: each draws a rare group uniformly, a member
   i of it uniformly, one of i's neighbours j uniformly, and lambda ~ U(0, 1):
   z = e_i + lambda * (e_j - e_i), labelled with the group's class (Chawla's rule; the notes'
   "average of a pair" is lambda = 1/2).
2. loss = mean CE(f(x), y) + synthetic_weight * mean CE(classifier(z), y_z): the synthetic points
   reach only the classifier head, as embeddings.

Where the embeddings come from (`embeddings`):
- "own" (default): the network being trained; refreshed after every epoch (`end_epoch`), so the
  points follow the representation as it changes. The real batch trains the whole network.
- "frozen": a first stage of plain ERM (`stage1_epochs` passes, un-augmented) trains the network,
  then its feature extractor is frozen and the embeddings are computed once; the trial's epochs
  train the classifier head only, on real and synthetic embeddings (the classic pipeline: SMOTE on
  a fixed representation, then a classifier).

Supervision: bias labels (the groups). Defaults: k = 5 is Chawla's; `synthetic_fraction`,
`synthetic_weight`, `rare_below` and `stage1_epochs` have no published value for this use
[inferred]. Deviation from Chawla: points are drawn afresh every step instead of one fixed
oversampled set, and only rare groups are oversampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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
from debiasbench.methods.jtt import train_identification_model

EMBEDDINGS = ("own", "frozen")
_EVAL_CHUNK = 4096


@dataclass(frozen=True)
class SMOTEHparams:
    k_neighbours: int = 5  # Chawla et al.
    synthetic_fraction: float = 0.5  # synthetic points per step, as a fraction of the batch [inferred]
    synthetic_weight: float = 1.0  # weight of their loss [inferred]
    rare_below: float = 0.5  # rare: fewer members than this x the class's largest group [inferred]
    embeddings: str = "own"
    stage1_epochs: int = 5  # "frozen" only [inferred]

    def __post_init__(self) -> None:
        if self.k_neighbours < 1:
            raise ValueError(f"k_neighbours must be at least 1, got {self.k_neighbours}")
        if self.synthetic_fraction <= 0:
            raise ValueError(f"synthetic_fraction must be positive, got {self.synthetic_fraction}")
        if self.synthetic_weight < 0:
            raise ValueError(f"synthetic_weight must be non-negative, got {self.synthetic_weight}")
        if not 0.0 < self.rare_below <= 1.0:
            raise ValueError(f"rare_below must lie in (0, 1], got {self.rare_below}")
        if self.embeddings not in EMBEDDINGS:
            raise ValueError(f"embeddings must be one of {', '.join(EMBEDDINGS)}, got {self.embeddings!r}")
        if self.stage1_epochs < 1:
            raise ValueError(f"stage1_epochs must be at least 1, got {self.stage1_epochs}")


def rare_groups(members: list[torch.Tensor], group_class: list[int], rare_below: float) -> list[int]:
    """Positions in `members` of the rare groups: fewer than rare_below x the largest group of the
    same class, and at least two members."""
    largest: dict[int, int] = {}
    for group, cls in zip(members, group_class):
        largest[cls] = max(largest.get(cls, 0), len(group))
    return [
        g for g, (group, cls) in enumerate(zip(members, group_class)) if 2 <= len(group) < rare_below * largest[cls]
    ]


def nearest_neighbours(embeddings: torch.Tensor, k: int) -> torch.Tensor:
    """(n, min(k, n-1)) indices of each row's nearest other rows (Euclidean), nearest first."""
    distances = torch.cdist(embeddings, embeddings)
    distances.fill_diagonal_(float("inf"))
    return distances.topk(min(k, len(embeddings) - 1), largest=False).indices


def interpolate(anchor: torch.Tensor, neighbour: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Chawla's synthetic point on the segment from `anchor` to `neighbour`: a + gap * (n - a)."""
    return anchor + gap.unsqueeze(1) * (neighbour - anchor)


@register_method("smote")
class SMOTE(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = SMOTEHparams
    search_space = {
        "k_neighbours": lambda rng: int(rng.choice([3, 5, 10])),
        "synthetic_fraction": lambda rng: float(rng.choice([0.25, 0.5, 1.0])),
        "synthetic_weight": lambda rng: float(rng.choice([0.5, 1.0, 2.0])),
    }
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: SMOTEHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        require_bias_labels(ctx, "smote")
        self.net = self.add_net("main")
        members = group_members(ctx.train_targets * ctx.num_bias_values + ctx.train_bias)
        classes = [int(ctx.train_targets[m[0]]) for m in members]
        rare = rare_groups(members, classes, hparams.rare_below)
        # Flat tables over the rare members: their training index, group slot and class.
        self._rare_index = (
            torch.cat([members[g] for g in rare]).to(ctx.device) if rare else torch.zeros(0, dtype=torch.long)
        )
        self._group_slices = []
        start = 0
        for g in rare:
            self._group_slices.append((start, len(members[g])))
            start += len(members[g])
        self._group_class = torch.tensor([classes[g] for g in rare], dtype=torch.long, device=ctx.device)
        width = self.net.classifier.in_features
        k = hparams.k_neighbours
        self.register_buffer("embedding", torch.zeros(len(self._rare_index), width, device=ctx.device))
        # Neighbours as positions in the flat tables; `neighbour_count` per row (groups smaller than k+1).
        self.register_buffer("neighbour", torch.zeros(len(self._rare_index), k, dtype=torch.long, device=ctx.device))
        self.register_buffer("neighbour_count", torch.ones(len(self._rare_index), dtype=torch.long, device=ctx.device))

    # -- embeddings -----------------------------------------------------------------------
    @torch.no_grad()
    def refresh_embeddings(self) -> None:
        """Recompute every rare member's embedding and its same-group neighbours."""
        was_training = self.net.training
        self.net.eval()
        chunks = [
            self.net.features(self.ctx.train_inputs(self._rare_index[s : s + _EVAL_CHUNK]))
            for s in range(0, len(self._rare_index), _EVAL_CHUNK)
        ]
        self.net.train(was_training)
        if chunks:
            self.embedding.copy_(torch.cat(chunks).float())
        for start, size in self._group_slices:
            local = nearest_neighbours(self.embedding[start : start + size], self.hparams.k_neighbours)
            self.neighbour[start : start + size, : local.shape[1]] = local + start
            self.neighbour_count[start : start + size] = local.shape[1]

    def prepare(self) -> None:
        if self.hparams.embeddings == "frozen":
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
            train_identification_model(
                self.ctx,
                self.hparams.stage1_epochs,
                self.ctx.batch_size or 256,
                generator,
                model=self.net,
                optimizer=self.optimizers["main"],
            )
            freeze_features(self.net)
        self.refresh_embeddings()

    def load_checkpoint_state(self, state) -> None:
        super().load_checkpoint_state(state)
        if self.hparams.embeddings == "frozen":  # a resume skips `prepare`; the freeze is no state
            freeze_features(self.net)

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        if self.hparams.embeddings == "own":
            self.refresh_embeddings()

    # -- training -------------------------------------------------------------------------
    def synthetic_points(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` synthetic embeddings and their labels (step 1 of the rule)."""
        device = self.embedding.device
        slot = torch.randint(len(self._group_slices), (count,), device=device)
        starts = torch.tensor([s for s, _ in self._group_slices], device=device)[slot]
        sizes = torch.tensor([n for _, n in self._group_slices], device=device)[slot]
        anchor = starts + (torch.rand(count, device=device) * sizes).long().clamp_max(sizes - 1)
        column = (torch.rand(count, device=device) * self.neighbour_count[anchor]).long()
        neighbour = self.neighbour[anchor, column.clamp_max(self.neighbour_count[anchor] - 1)]
        gap = torch.rand(count, device=device)
        points = interpolate(self.embedding[anchor], self.embedding[neighbour], gap)
        return points, self._group_class[slot]

    def train_step(self, batch: Batch) -> StepOutput:
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        loss = per_sample.mean()
        count = round(self.hparams.synthetic_fraction * len(batch.y))
        if self._group_slices and count > 0 and self.hparams.synthetic_weight > 0:
            points, labels = self.synthetic_points(count)
            synthetic = F.cross_entropy(self.net.classifier(points), labels)
            loss = loss + self.hparams.synthetic_weight * synthetic
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})

    def epoch_diagnostics(self) -> dict[str, float]:
        return {"rare_groups": float(len(self._group_slices)), "rare_members": float(len(self._rare_index))}


def freeze_features(net: nn.Module) -> None:
    """Leave only `net.classifier` trainable (the "frozen" mode after its first stage)."""
    for name, parameter in net.named_parameters():
        if not name.startswith("classifier."):
            parameter.requires_grad_(False)
