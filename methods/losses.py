"""Loss functions shared by several methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generalized_ce(logits: torch.Tensor, targets: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample GCE as the LfF reference codes it: CE * q * sg(p_y)^q.

    Its gradient is q * p_y^q * grad(CE), i.e. q times the textbook (1 - p_y^q)/q, and its value is
    not the textbook GCE value; kept for parity with the paper's numbers (docs/methods.md#lff-and-lff-ce)."""
    p_target = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return F.cross_entropy(logits, targets, reduction="none") * (q * p_target.detach() ** q)
