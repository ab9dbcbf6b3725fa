"""The uncertainty of every comparison the report prints (torch-free; scipy and autorank do the
statistics, this module only says what they are applied to).

Per cell (one method's seeds in one table cell):
    t_interval           95% Student-t interval of the mean over seeds (n - 1 degrees of freedom)
Per pair of methods in a cell:
    difference_interval  Welch's t interval of mean(A) - mean(B) (scipy.stats.ttest_ind, unequal variances);
                         seeds are treated as independent runs, as rliable does
    probability_of_improvement  P(A > B): the share of (seed of A, seed of B) pairs where A is higher,
                         ties counted half (the Mann-Whitney U statistic over n_A * n_B), rliable's estimator
Across cells:
    stratified_bootstrap the percentile interval of a statistic of several cells, each cell's seeds
                         resampled within the cell (scipy.stats.bootstrap resamples each sample on its own,
                         which is rliable's stratified bootstrap when every cell is a sample)

rliable itself is the reference for the two estimators but is not a dependency: it needs `arch`,
whose current release does not import under pandas 3 (deprecate_kwarg's signature changed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # a fixed generator: the same store gives the same intervals


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Student-t interval of the mean of `values` (NaN, NaN below two values)."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(array) < 2:
        return math.nan, math.nan
    sem = float(array.std(ddof=1)) / math.sqrt(len(array))
    if sem == 0.0:
        return float(array.mean()), float(array.mean())
    low, high = stats.t.interval(confidence, len(array) - 1, loc=float(array.mean()), scale=sem)
    return float(low), float(high)


def difference_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """mean(a) - mean(b) and Welch's t interval of it (NaN bounds below two values on either side)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return difference, math.nan, math.nan
    if a.std() == 0.0 and b.std() == 0.0:
        return difference, difference, difference
    with warnings.catch_warnings():  # near-identical seeds: scipy warns of precision loss, the interval stands
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return difference, float(interval.low), float(interval.high)


def probability_of_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """P(A > B) over seeds: U / (n_A n_B) of the Mann-Whitney test (ties count one half)."""
    if not len(a) or not len(b):
        return math.nan
    u = stats.mannwhitneyu(np.asarray(a, dtype=float), np.asarray(b, dtype=float)).statistic
    return float(u) / (len(a) * len(b))


def _poi_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # The same estimator as probability_of_improvement, over a leading batch of bootstrap resamples.
    greater = (a[..., :, None] > b[..., None, :]).mean(axis=(-2, -1))
    ties = (a[..., :, None] == b[..., None, :]).mean(axis=(-2, -1))
    return greater + 0.5 * ties


def aggregate_pair(
    cells: Sequence[tuple[Sequence[float], Sequence[float]]],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, float]:
    """Mean over cells of P(A > B) and of mean(A) - mean(B), each with its stratified-bootstrap
    percentile interval (every cell's seeds of A and of B resampled on their own)."""
    cells = [(np.asarray(a, float), np.asarray(b, float)) for a, b in cells if len(a) and len(b)]
    if not cells:
        return dict.fromkeys(
            ("poi", "poi_low", "poi_high", "difference", "difference_low", "difference_high"), math.nan
        )
    samples = [x for pair in cells for x in pair]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        pairs = list(zip(resampled[0::2], resampled[1::2]))
        poi = np.mean([_poi_batched(a, b) for a, b in pairs], axis=0)
        difference = np.mean([a.mean(axis=-1) - b.mean(axis=-1) for a, b in pairs], axis=0)
        return np.stack([poi, difference])

    point, low, high = _percentile_bootstrap(samples, statistic, confidence, resamples)
    return {
        "poi": float(point[0]),
        "poi_low": float(low[0]),
        "poi_high": float(high[0]),
        "difference": float(point[1]),
        "difference_low": float(low[1]),
        "difference_high": float(high[1]),
    }


def mean_rank_intervals(
    values: Sequence[Sequence[Sequence[float]]],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values[cell][method] = that method's seeds in that cell (every method in every cell).
    Returns each method's mean rank over the cells (rank 1 = highest cell mean, ties averaged)
    and its stratified-bootstrap percentile interval (seeds resampled within each cell and method)."""
    n_cells, n_methods = len(values), len(values[0])
    samples = [np.asarray(values[c][m], float) for c in range(n_cells) for m in range(n_methods)]

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        means = np.stack([x.mean(axis=-1) for x in resampled], axis=-1)  # (..., cells * methods)
        means = means.reshape(*means.shape[:-1], n_cells, n_methods)
        ranks = stats.rankdata(-means, axis=-1)  # rank 1: the best method of the cell
        return np.moveaxis(ranks.mean(axis=-2), -1, 0)  # (methods, ...)

    return _percentile_bootstrap(samples, statistic, confidence, resamples)


def resolved(low: float, high: float, precision: float | None = None) -> bool:
    """A comparison is resolved when the interval of its difference excludes zero (which method is
    better is known) or, with `precision` (points), when it is no wider than +-precision (the two
    are known to be that close)."""
    if math.isnan(low) or math.isnan(high):
        return False
    if low > 0 or high < 0:
        return True
    return precision is not None and (high - low) / 2 <= precision


def _percentile_bootstrap(samples, statistic, confidence: float, resamples: int):
    """(point, low, high) of `statistic` with scipy's stratified percentile bootstrap (each sample
    resampled on its own, a fixed seed); NaN bounds when a sample has a single value."""
    point = statistic(*samples)
    if any(len(x) < 2 for x in samples):  # a single seed cannot be resampled: no interval
        return point, np.full_like(point, math.nan), np.full_like(point, math.nan)
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return point, np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)
