"""BAR for the report: the class names of stored class indices, and the per-class counts of Table 7
from the dataset's metadata."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.paper.axes import BAR_CLASSES
from debiasbench.benchmark.paper.bar import bar_class_counts
from debiasbench.benchmark.paper.values import PAPER
from debiasbench.benchmark.paths import resolve_data_root
from debiasbench.benchmark.report.loading import ReportError


def bar_counts(data_root: str | os.PathLike | None) -> tuple[dict[str, dict[str, int]], Path]:
    """Per split ("train", "test") and class, the number of BAR images, from BAR/metadata.json."""
    path = resolve_data_root(data_root) / "BAR" / "metadata.json"
    if not path.is_file():
        raise ReportError(f"BAR metadata not found at {path}; pass --data-root DIR (the directory holding BAR/)")
    try:
        return bar_class_counts(path), path
    except (ValueError, KeyError, TypeError) as error:
        raise ReportError(f"cannot read BAR metadata {path}: {error}") from None


def bar_class_names(summaries: pd.DataFrame, test_counts: dict[str, int] | None = None) -> tuple[dict[int, str], str]:
    """Names of the class indices stored for BAR trials. The store keeps indices only, so they are
    matched by their test-set counts (distinct for BAR's six classes) against the dataset's counts
    (or the paper's Table 7); otherwise the paper's class order is assumed, and the note says so."""
    reference = test_counts or {c: int(PAPER[(7, "bar", "test", "count", c)][0]) for c in BAR_CLASSES}
    bar = summaries[summaries["dataset"] == "bar"] if len(summaries) else summaries
    counts: dict[int, float] = {}
    for classes in bar["classes"] if len(bar) else []:
        for index, stats in classes.items():
            counts.setdefault(index, stats.get("count", math.nan))
    if not counts:
        return {}, ""
    by_count = {v: k for k, v in reference.items()}
    if (
        len(set(reference.values())) == len(reference)
        and len(counts) == len(reference)
        and all(c in by_count for c in counts.values())
    ):
        return {i: by_count[c] for i, c in counts.items()}, ""
    names = {i: (BAR_CLASSES[i] if i < len(BAR_CLASSES) else f"class {i}") for i in counts}
    return names, (
        "class names assumed in the paper's order (climbing, diving, fishing, racing, throwing, "
        "vaulting): the stored per-class test counts do not match the dataset's"
    )
