"""Bias-attribute assignment shared by the controlled datasets (Colored MNIST, Corrupted CIFAR-10).

Two named rules, with identical counts per (target, bias) cell:

* ``reference`` (default, the paper's protocol): the reference generator's positional rule. For a
  class y with n_y samples, p is the row of per-value probabilities (the aligned fraction at b = y,
  the rest spread evenly over the other values), the milestones are round(n_y * cumsum(p)) over the
  bias values in index order, and the class's samples, taken in the raw dataset's own order, get the
  value of the first milestone above their position. Consecutive blocks, one per bias value.
* ``random``: the same counts, with the samples of each class shuffled by a seeded generator before
  the blocks are laid out (which samples conflict is then independent of the raw order).

Which samples conflict changes the numbers, so the rule is a dataset parameter recorded with every
result (see docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from debiasbench.datasets.base import DiagnosisSettings

ASSIGNMENTS = ("reference", "random")


def bias_milestones(n: int, aligned_fraction: float, num_bias: int, target: int) -> np.ndarray:
    """round(n * cumsum(p)) for one class, computed with the reference's float operations so that
    half-way roundings fall the same way (numpy rounds half to even)."""
    eye = np.eye(1, num_bias, target)[0]
    probabilities = aligned_fraction * eye + (1 - aligned_fraction) / (num_bias - 1) * (1 - eye)
    return (n * np.cumsum(probabilities)).round().astype(np.int64)


def bias_counts(n: int, aligned_fraction: float, num_bias: int, target: int) -> np.ndarray:
    """Samples per bias value (index order) for one class of n samples with target `target`."""
    return np.diff(bias_milestones(n, aligned_fraction, num_bias, target), prepend=0)


def assign_bias(
    targets: np.ndarray,
    aligned_fraction: float,
    num_bias: int,
    assignment: str = "reference",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A bias value per sample, with the aligned mapping b = y (see the module docstring)."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"invalid assignment {assignment!r}: choose one of {', '.join(ASSIGNMENTS)}")
    if assignment == "random" and rng is None:
        raise ValueError("the random assignment needs a seeded generator")
    targets = np.asarray(targets)
    biases = np.empty(len(targets), dtype=np.int64)
    for y in range(int(targets.max()) + 1):
        index = np.flatnonzero(targets == y)  # the raw dataset's own order
        if assignment == "random":
            index = index[rng.permutation(len(index))]
        milestones = bias_milestones(len(index), aligned_fraction, num_bias, y)
        # Position i gets the first bias value whose milestone lies above i.
        biases[index] = np.searchsorted(milestones, np.arange(len(index)), side="right")
    return biases


def aligned_fraction_from_ratio(ratio_percent: float, num_classes: int) -> float:
    """Validate a ratio given in percent of bias-aligned samples and return it as a fraction."""
    if isinstance(ratio_percent, bool) or not isinstance(ratio_percent, (int, float)):
        raise ValueError(
            f"invalid ratio {ratio_percent!r}: the ratio is a number, the percentage of bias-aligned "
            "training samples, e.g. 95, 98, 99 or 99.5"
        )
    low = 100.0 / num_classes
    if not (low < ratio_percent < 100.0):
        raise ValueError(
            f"invalid ratio {ratio_percent!r}: the ratio is the percentage of bias-aligned training "
            f"samples and must lie strictly between {low:g} (no bias with {num_classes} classes) and "
            f"100, e.g. 95, 98, 99 or 99.5"
        )
    return ratio_percent / 100.0


def check_assignment(assignment: str) -> None:
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"invalid assignment {assignment!r}: choose one of {', '.join(ASSIGNMENTS)}")


def swapped_target_diagnosis(
    values: Mapping[str, Any],
    targets: tuple[str, str],
    labels: Mapping[str, str],
    value_names: Mapping[str, tuple[str, ...]],
    family: str,
) -> DiagnosisSettings:
    """The diagnosis of a controlled dataset whose `target` parameter picks one of two attributes
    (the other is the bias): the reverse direction swaps the target, the balanced training set is
    the dataset's own unbiased one (`unbiased_train`, uniform bias given the target). `bias` may
    be given too and must then name the other attribute."""
    values = dict(values)
    target = values.get("target", targets[0])
    if target not in targets:
        raise ValueError(f"invalid target {target!r}: {family} diagnoses target {targets[0]} or {targets[1]}")
    other = targets[1] if target == targets[0] else targets[0]
    bias = values.pop("bias", None)
    if bias is not None and bias != other:
        raise ValueError(
            f"{family}'s bias is the attribute that is not the target: with target={target} the bias "
            f"is {other}, got bias={bias!r}"
        )
    if values.pop("unbiased_train", False):
        raise ValueError(
            "the diagnosis chooses unbiased_train itself (false for the biased, true for the balanced "
            "training set); leave it out"
        )
    biased = {**values, "target": target, "unbiased_train": False}
    return DiagnosisSettings(
        biased=biased,
        balanced={**biased, "unbiased_train": True},
        reversed={**biased, "target": other},
        target=labels[target],
        bias=labels[other],
        target_values=value_names[target],
        bias_values=value_names[other],
        balanced_how="the unbiased training set (unbiased_train=true: every bias value equally likely given the "
        "target)",
    )
