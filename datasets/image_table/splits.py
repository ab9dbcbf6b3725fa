"""Train/test splits and protocol subsampling, all seeded by the data seed and rounded exactly
(fractions as the decimals the user wrote): the stratified test split, the aligned mapping g(y),
`ratio` subsampling of the training split and `balanced_test` of the evaluation split."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from debiasbench.datasets.image_table.errors import ImageTableError

log = logging.getLogger("debiasbench.datasets.image_table")
SPLIT_VALUES = ("train", "test")
_STREAM_SPLIT, _STREAM_RATIO, _STREAM_BALANCE = 0, 1, 2


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _fraction(value: float) -> Fraction:
    """The decimal a user wrote (99.9, 0.15) as an exact fraction, so rounding is reproducible."""
    return Fraction(repr(float(value)))


def group_ids(targets: np.ndarray, biases: np.ndarray | None, num_bias: int) -> np.ndarray:
    return targets if biases is None else targets * num_bias + biases


def stratified_test_rows(groups: np.ndarray, test_fraction: float, data_seed: int) -> np.ndarray:
    """A boolean test mask: in every group of n rows (groups visited in increasing id), the first
    floor(n * test_fraction + 1/2) rows of a seeded permutation go to the test split."""
    rng = np.random.default_rng([data_seed, _STREAM_SPLIT])
    fraction = _fraction(test_fraction)
    test = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        count = _round_half_up(len(rows) * fraction)
        test[rows[rng.permutation(len(rows))[:count]]] = True
    return test


def aligned_mapping(targets: np.ndarray, biases: np.ndarray, num_classes: int, num_bias: int) -> np.ndarray:
    """g(y) by majority over the given (training) samples. With as many bias values as classes,
    the bijection that makes the most samples aligned (b == g(y)), the identity whenever it is one
    of the best (CelebA's rule for two classes); otherwise each class's most frequent bias value
    (ties to the smaller index)."""
    counts = np.zeros((num_classes, num_bias), dtype=np.int64)
    np.add.at(counts, (targets, biases), 1)
    if num_classes == num_bias:
        from scipy.optimize import linear_sum_assignment

        rows, columns = linear_sum_assignment(counts, maximize=True)
        if np.trace(counts) >= counts[rows, columns].sum():
            return np.arange(num_classes, dtype=np.int64)
        mapping = np.empty(num_classes, dtype=np.int64)
        mapping[rows] = columns
        return mapping
    return counts.argmax(1).astype(np.int64)


def _largest_remainder(total: int, sizes: Sequence[int]) -> list[int]:
    """Split `total` over groups in proportion to `sizes`: floors first, then one more to the
    groups with the largest remainders (ties to the earlier group)."""
    whole = sum(sizes)
    quotas = [Fraction(total * s, whole) for s in sizes]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def ratio_counts(aligned: int, conflicting: int, ratio: float) -> tuple[int, int]:
    """(aligned kept, conflicting kept) for one class at `ratio` percent aligned: all aligned
    samples and round(A * (100 - r) / r) conflicting ones if there are that many; otherwise all C
    conflicting samples and min(A, round(C * r / (100 - r))) aligned ones (round half up)."""
    r = _fraction(ratio)
    wanted = _round_half_up(aligned * (100 - r) / r)
    if wanted <= conflicting:
        return aligned, wanted
    return min(aligned, _round_half_up(conflicting * r / (100 - r))), conflicting


def subsample_to_ratio(
    targets: np.ndarray, biases: np.ndarray, mapping: np.ndarray, ratio: float, data_seed: int, describe
) -> np.ndarray:
    """Training rows (sorted positions into targets) kept so that every class has `ratio` percent
    aligned samples (`ratio_counts`). The conflicting samples kept are spread over the class's
    conflicting groups in proportion to their sizes (largest remainder); which samples of a
    group are kept is a seeded random choice. `describe(y, b)` names a group in errors."""
    rng = np.random.default_rng([data_seed, _STREAM_RATIO])
    keep: list[np.ndarray] = []
    for y in range(len(mapping)):
        in_class = np.flatnonzero(targets == y)
        if not len(in_class):
            continue
        aligned_rows = in_class[biases[in_class] == mapping[y]]
        conflicting_values = [b for b in np.unique(biases[in_class]) if b != mapping[y]]
        if not len(aligned_rows) or not conflicting_values:
            empty = (
                f"the aligned group {describe(y, mapping[y])}"
                if not len(aligned_rows)
                else f"every conflicting group of {describe(y, None)} (bias value other than "
                f"{describe(None, mapping[y])})"
            )
            raise ImageTableError(
                f"ratio={ratio:g} needs aligned and conflicting training samples in every class, but {empty} has "
                "no training samples; add training rows for it, or leave ratio unset to train on the data as it is"
            )
        groups = [in_class[biases[in_class] == b] for b in conflicting_values]
        n_aligned, n_conflicting = ratio_counts(len(aligned_rows), sum(len(g) for g in groups), ratio)
        keep.append(aligned_rows[np.sort(rng.permutation(len(aligned_rows))[:n_aligned])])
        for rows, count in zip(groups, _largest_remainder(n_conflicting, [len(g) for g in groups])):
            keep.append(rows[np.sort(rng.permutation(len(rows))[:count])])
    return np.sort(np.concatenate(keep))


def balance_groups(groups: np.ndarray, all_groups: Sequence[int], data_seed: int, describe) -> np.ndarray:
    """Evaluation rows kept so that every group has as many as the smallest: min over groups of
    the group size, a seeded random choice within each group. Every group must be present."""
    sizes = {g: int(np.sum(groups == g)) for g in all_groups}
    empty = [g for g in all_groups if sizes[g] == 0]
    if empty:
        raise ImageTableError(
            "balanced_test=true needs samples of every (target, bias) group in the evaluation split, but "
            f"{', '.join(describe(g) for g in empty[:10])}{' ...' if len(empty) > 10 else ''} "
            f"{'has' if len(empty) == 1 else 'have'} none; add such rows to the test split (or raise "
            "test_fraction), or leave balanced_test unset"
        )
    smallest = min(sizes.values())
    rng = np.random.default_rng([data_seed, _STREAM_BALANCE])
    keep = [np.flatnonzero(groups == g) for g in all_groups]
    return np.sort(np.concatenate([rows[np.sort(rng.permutation(len(rows))[:smallest])] for rows in keep]))


def warn_repeated_images(
    table: Any,
    row_ref: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    targets: np.ndarray,
    biases: np.ndarray | None,
    describe: Callable[[int | None, int | None], str],
) -> None:
    """Warn about images the table lists more than once: in both splits, and (naming the rows) with
    contradictory labels, which no model can fit and which a fix of the table removes."""
    shared = np.intersect1d(row_ref[train_rows], row_ref[test_rows])
    if len(shared):
        log.warning("image_table: %d image(s) appear in both the training and the test split", len(shared))
    first = np.full(int(row_ref.max()) + 1 if len(row_ref) else 0, -1, dtype=np.int64)
    clashes = []
    for i, ref in enumerate(row_ref.tolist()):
        if first[ref] < 0:
            first[ref] = i
            continue
        j = int(first[ref])
        if targets[i] != targets[j] or (biases is not None and biases[i] != biases[j]):
            clashes.append((j, i))
    if clashes:
        shown = "; ".join(
            f"{table.row(j)} {describe(int(targets[j]), None if biases is None else int(biases[j]))} and "
            f"{table.row(i)} {describe(int(targets[i]), None if biases is None else int(biases[i]))}"
            for j, i in clashes[:3]
        )
        log.warning(
            "image_table: %d row(s) of %s list an image already listed with other labels (%s%s); both rows are "
            "trained on as they are: correct the labels or remove one row of each pair",
            len(clashes),
            table.path,
            shown,
            f"; and {len(clashes) - 3} more" if len(clashes) > 3 else "",
        )
