"""Bias-attribute assignment shared by the controlled datasets (SPEC 2.1, 2.2)."""

from __future__ import annotations

import numpy as np


def bias_counts(n: int, aligned_fraction: float, num_bias: int) -> np.ndarray:
    """Counts per bias value for one class of n samples, aligned value first.

    Exactly round(aligned_fraction * n) samples are aligned; the rest are spread evenly over the
    other num_bias - 1 values by cumulative rounding, so the counts are exact and sum to n."""
    n_aligned = int(np.round(aligned_fraction * n))
    rest = n - n_aligned
    milestones = np.round(rest * np.cumsum(np.full(num_bias - 1, 1.0 / (num_bias - 1)))).astype(np.int64)
    milestones[-1] = rest  # guard against floating-point drift in the cumulative sum
    return np.concatenate([[n_aligned], np.diff(np.concatenate([[0], milestones]))])


def assign_bias(
    targets: np.ndarray, aligned_fraction: float, num_bias: int, rng: np.random.Generator
) -> np.ndarray:
    """A bias value per sample with the aligned mapping b = y; which samples of a class get which
    value is a seeded random choice."""
    targets = np.asarray(targets)
    biases = np.empty_like(targets, dtype=np.int64)
    for y in range(int(targets.max()) + 1):
        index = np.flatnonzero(targets == y)
        counts = bias_counts(len(index), aligned_fraction, num_bias)
        values = [y] + [b for b in range(num_bias) if b != y]
        labels = np.repeat(values, counts)
        biases[index[rng.permutation(len(index))]] = labels
    return biases


def aligned_fraction_from_ratio(ratio_percent: float, num_classes: int) -> float:
    """Validate a ratio given in percent of bias-aligned samples and return it as a fraction."""
    low = 100.0 / num_classes
    if not (low < ratio_percent < 100.0):
        raise ValueError(
            f"invalid ratio {ratio_percent!r}: the ratio is the percentage of bias-aligned training "
            f"samples and must lie strictly between {low:g} (no bias with {num_classes} classes) and "
            f"100, e.g. 95, 98, 99 or 99.5"
        )
    return ratio_percent / 100.0
