"""The held-out validation split of the `validation` selection protocol (docs/protocol.md#training-and-selection).

A seeded, group-stratified fraction of the training set, keeping the training bias: every
(target, bias) group with at least two samples gives at least one, so the split holds a few
bias-conflicting samples of every group that has any. Seeded by the data seed, so all trials of
one configuration share it. Without bias labels the strata are the classes.
"""

from __future__ import annotations

import numpy as np
import torch

_STREAM = 7919  # keeps this RNG stream apart from the dataset generators' streams


def holdout_indices(
    targets: torch.Tensor, biases: torch.Tensor | None, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), both sorted."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {fraction}")
    targets_np = targets.numpy()
    strata = targets_np if biases is None else targets_np * (int(biases.max()) + 1) + biases.numpy()
    rng = np.random.default_rng([seed, _STREAM])
    held_out = []
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        count = int(round(fraction * len(members)))
        if count == 0 and len(members) >= 2:
            count = 1
        held_out.append(rng.choice(members, size=count, replace=False))
    valid = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(targets_np)), valid)
    return torch.from_numpy(train), torch.from_numpy(valid)
