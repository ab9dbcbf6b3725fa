"""The bias diagnosis's rules, as pure functions of the numbers (no store, no files; torch-free):
the verdict from the two arms' unbiased test accuracies (malignant, benign or inconclusive, with the
seeds that would settle it) and what the biased trials' loss curves show being learned first.
The rules themselves are stated in benchmark/report/diagnosis.py's docstring and in `RULE`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

THRESHOLD = 5.0  # points: a smaller drop is benign, a larger one malignant once it exceeds the noise
SINGLE_SEED_BENIGN = 2.0  # points: with one seed, only a drop this small is called benign
STRONG_RATIO = 10.0  # conflicting / aligned early loss at or above this: the bias is learned first anyway
# Runs too short for a halving epoch inside the first quarter (fewer than 5 epochs) go by the ratio alone:
SHORT_BIAS_RATIO = 2.0  # at or above: the bias is learned first
SHORT_TARGET_RATIO = 1.5  # below: the target is learned first
ARMS = ("biased", "balanced")
LOSS_RULE = (
    f"Learned first, from the biased trials' training loss (Q = the first quarter of the epochs): the bias when the "
    f"aligned loss halves within Q and the conflicting loss does not, or the conflicting/aligned mean loss over Q is "
    f">= {STRONG_RATIO:g}; the target when both halve within Q with a smaller ratio; unclear otherwise. Runs shorter "
    f"than 5 epochs go by the ratio alone (bias >= {SHORT_BIAS_RATIO:g}, target < {SHORT_TARGET_RATIO:g}). The "
    "verdict rests on the accuracy drop; the loss curves are the supporting evidence."
)
RULE = (
    f"drop = balanced - biased mean unbiased test accuracy (points); noise = 2*sqrt(se_b^2 + se_u^2), "
    f"se = std/sqrt(n) over seeds; malignant if drop > max(noise, {THRESHOLD:g}); benign if drop <= "
    f"{THRESHOLD:g} and (n >= 2 or drop <= {SINGLE_SEED_BENIGN:g}); inconclusive otherwise. " + LOSS_RULE
)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # malignant, benign or inconclusive
    drop: float  # points
    noise: float  # points; NaN when an arm has a single seed
    n: int  # seeds of the smaller arm
    reason: str
    settle: str = ""  # what would settle an inconclusive verdict (or confirm a single-seed one)


def spread(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, std, n) with the sample std (NaN for one value)."""
    series = pd.Series(list(values), dtype=float).dropna()
    n = len(series)
    return (float(series.mean()) if n else math.nan, float(series.std(ddof=1)) if n > 1 else math.nan, n)


def _more_seeds(seeds: Sequence[int], total: int) -> str:
    have = sorted(set(int(s) for s in seeds))
    extra, candidate = [], (max(have) + 1 if have else 0)
    while len(have) + len(extra) < total:
        extra.append(candidate)
        candidate += 1
    return ",".join(str(s) for s in have + extra)


def verdict_of(biased: Sequence[float], balanced: Sequence[float], seeds: Sequence[int] = ()) -> Verdict:
    """The verdict from the unbiased test accuracies (percent) of the biased and the balanced arm,
    one value per seed; `seeds` are the seeds run (for the hint naming more)."""
    mean_b, std_b, n_b = spread(biased)
    mean_u, std_u, n_u = spread(balanced)
    if not n_b or not n_u:
        missing = " and ".join(a for a, n in zip(ARMS, (n_b, n_u)) if not n)
        return Verdict(
            "inconclusive",
            math.nan,
            math.nan,
            min(n_b, n_u),
            f"no completed trial on the {missing} training set",
            "rerun the command to run the missing trials",
        )
    drop = mean_u - mean_b
    n = min(n_b, n_u)
    noise = 2 * math.sqrt(std_b**2 / n_b + std_u**2 / n_u) if n >= 2 else math.nan
    level = max(0.0 if math.isnan(noise) else noise, THRESHOLD)
    noise_text = f"noise {noise:.2f}" if n >= 2 else "noise unknown with one seed"
    if drop > level:
        settle = "" if n >= 2 else f"one seed: confirm with --seeds {_more_seeds(seeds, 3)}"
        return Verdict(
            "malignant",
            drop,
            noise,
            n,
            f"the biased training set costs {drop:.2f} points of unbiased accuracy, more than "
            f"max({noise_text}, {THRESHOLD:g})",
            settle,
        )
    if drop <= THRESHOLD and (n >= 2 or drop <= SINGLE_SEED_BENIGN):
        limit = THRESHOLD if n >= 2 else SINGLE_SEED_BENIGN
        return Verdict(
            "benign",
            drop,
            noise,
            n,
            f"a drop of {drop:.2f} points is at most {limit:g}" + ("" if n >= 2 else " (one seed)"),
        )
    if drop > THRESHOLD:  # above the threshold but within the seed noise
        needed = max(n + 1, math.floor(n * (noise / drop) ** 2) + 1)
        return Verdict(
            "inconclusive",
            drop,
            noise,
            n,
            f"a drop of {drop:.2f} points is within the seed noise ({noise:.2f})",
            f"about {needed} seeds would bring the noise below the drop if the spread stays as it is: "
            f"--seeds {_more_seeds(seeds, needed)}",
        )
    return Verdict(
        "inconclusive",
        drop,
        noise,
        n,
        f"a drop of {drop:.2f} points with one seed: between {SINGLE_SEED_BENIGN:g} and {THRESHOLD:g}, "
        "too close to call without a spread",
        f"a second seed settles it (benign if the drop stays at most {THRESHOLD:g} points and above the "
        f"noise otherwise): --seeds {_more_seeds(seeds, max(2, n + 1))}",
    )


@dataclass(frozen=True)
class LossEvidence:
    epochs: int
    quarter: int  # epochs 1..quarter are "the first quarter"
    ratio: float  # conflicting / aligned mean training loss over the first quarter
    aligned_half: int | None  # first epoch whose loss is below half its epoch-1 value (None: never)
    conflicting_half: int | None
    learned_first: str  # "bias", "target", "unclear" or "n/a" (no curves)


def loss_evidence(curves: pd.DataFrame) -> LossEvidence:
    """From per-epoch training loss rows (epoch, subset aligned/conflicting, loss), pooled over
    seeds by the mean."""
    if curves.empty:
        return LossEvidence(0, 0, math.nan, None, None, "n/a")
    mean = curves.groupby(["subset", "epoch"])["loss"].mean()
    epochs = int(curves["epoch"].max())
    quarter = max(1, math.ceil(epochs / 4))

    def series(subset: str) -> pd.Series:
        return mean[subset].sort_index() if subset in mean.index.get_level_values(0) else pd.Series(dtype=float)

    def half(values: pd.Series) -> int | None:
        if values.empty or 1 not in values.index or not values[1] > 0:
            return None
        below = values[(values.index > 1) & (values < values[1] / 2)]
        return int(below.index[0]) if len(below) else None

    aligned, conflicting = series("aligned"), series("conflicting")
    early_a = aligned[aligned.index <= quarter].mean() if len(aligned) else math.nan
    early_c = conflicting[conflicting.index <= quarter].mean() if len(conflicting) else math.nan
    ratio = float(early_c / early_a) if early_a and not math.isnan(early_a) and not math.isnan(early_c) else math.nan
    aligned_half, conflicting_half = half(aligned), half(conflicting)
    if math.isnan(ratio):
        first = "n/a"
    elif quarter < 2:  # no epoch after the first inside the quarter: the ratio alone
        first = "bias" if ratio >= SHORT_BIAS_RATIO else "target" if ratio < SHORT_TARGET_RATIO else "unclear"
    elif aligned_half is None or aligned_half > quarter:
        first = "unclear"  # nothing is clearly fitted early
    elif conflicting_half is None or conflicting_half > quarter or ratio >= STRONG_RATIO:
        first = "bias"
    else:
        first = "target"
    return LossEvidence(epochs, quarter, ratio, aligned_half, conflicting_half, first)


def loss_text(evidence: LossEvidence, target: str, bias: str) -> str:
    if evidence.learned_first == "n/a":
        return "no training-loss curves of aligned and conflicting samples in the biased trials"
    if evidence.epochs < 2:
        halves = "one epoch, so no halving epochs"
    else:
        halves = ", ".join(
            f"{name} loss halves at epoch {epoch if epoch is not None else f'> {evidence.epochs}'}"
            for name, epoch in (("aligned", evidence.aligned_half), ("conflicting", evidence.conflicting_half))
        )
    verdict = {
        "bias": f"the bias ({bias}) is learned first: aligned samples are fitted much faster",
        "target": f"the target ({target}) is learned first: conflicting samples are fitted early too",
        "unclear": "neither attribute is clearly learned first",
    }[evidence.learned_first]
    span = "epoch 1" if evidence.quarter == 1 else f"epochs 1-{evidence.quarter}"
    return f"{verdict} (conflicting/aligned loss {evidence.ratio:.2f}x over {span}; {halves})"
