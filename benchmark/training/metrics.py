"""Group-accuracy metrics (docs/protocol.md#vocabulary). A cell is a (target, bias) group, or a class when the dataset
has no bias labels. `accuracy` of a subset is the mean of its cells' accuracies, so every cell
weighs the same whatever its count: on subset `all` that is the unbiased accuracy, on
`conflicting` the bias-conflicting accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GroupCounts:
    """Correct and total predictions per cell, shape (num_classes, num_bias_values)."""

    correct: torch.Tensor
    total: torch.Tensor
    loss_sum: float = 0.0

    @classmethod
    def zeros(cls, num_classes: int, num_bias: int, device: torch.device | str = "cpu") -> GroupCounts:
        shape = (num_classes, num_bias)
        return cls(torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def add(self, predictions: torch.Tensor, targets: torch.Tensor, biases: torch.Tensor) -> None:
        num_bias = self.total.shape[1]
        cell = targets * num_bias + biases
        size = self.total.numel()
        self.total += torch.bincount(cell, minlength=size).view_as(self.total).to(self.total.dtype)
        hits = (predictions == targets).to(self.correct.dtype)
        self.correct += torch.bincount(cell, weights=hits, minlength=size).view_as(self.correct)

    def accuracy_matrix(self) -> torch.Tensor:
        """Per-cell accuracy, NaN where a cell is empty."""
        return torch.where(self.total > 0, self.correct / self.total.clamp_min(1), torch.nan)


def summarize(counts: GroupCounts, aligned_bias: torch.Tensor | None) -> dict[str, dict[str, float]]:
    """Per subset (`all`, `aligned`, `conflicting`): accuracy (mean over populated cells),
    sample_accuracy (over samples) and, for `all`, the worst-group accuracy."""
    correct, total = counts.correct.double().cpu(), counts.total.double().cpu()
    populated = total > 0
    cell_acc = torch.where(populated, correct / total.clamp_min(1), torch.zeros_like(total))
    masks = {"all": populated}
    if aligned_bias is not None:
        aligned = torch.zeros_like(populated)
        aligned[torch.arange(total.shape[0]), aligned_bias.cpu()] = True
        masks["aligned"] = populated & aligned
        masks["conflicting"] = populated & ~aligned
    out: dict[str, dict[str, float]] = {}
    for subset, mask in masks.items():
        if not mask.any():
            continue
        out[subset] = {
            "accuracy": float(cell_acc[mask].mean()),
            "sample_accuracy": float(correct[mask].sum() / total[mask].sum()),
        }
    out["all"]["worst_group_accuracy"] = float(cell_acc[populated].min())
    return out
