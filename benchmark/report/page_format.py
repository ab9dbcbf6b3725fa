"""How the report page prints numbers and marks cells: values and differences at the report's
precision, the |ours - paper| > 2 SE test, and the best cells (torch-free)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from debiasbench.benchmark.report.compare import PAPER_SEEDS, beyond_standard_errors, standard_error


def finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_value(value: Any, metric: str = "") -> str:
    """A mean or paper value as printed on the page (and in the report): 2 decimals, counts whole."""
    if not finite(value):
        return ""
    if metric == "count":
        return f"{int(round(float(value)))}"
    return f"{float(value):.2f}"


def fmt_diff(value: Any) -> str:
    return f"{float(value):+.2f}" if finite(value) else ""


def beyond_2se(cell: Mapping[str, Any]) -> tuple[bool | None, float]:
    """(whether |difference| > 2 SE, the SE used); None where no SE or no paper value exists."""
    if not finite(cell.get("difference")):
        return None, math.nan
    paper = float(cell["paper_std"]) / math.sqrt(PAPER_SEEDS) if finite(cell.get("paper_std")) else math.nan
    return beyond_standard_errors(float(cell["difference"]), standard_error(cell.get("std"), cell.get("n")), paper)


def best_cells(cells: pd.DataFrame, rule: str | None) -> set[tuple[str, str]]:
    """(row_id, col_id) of the best cells: highest mean at the printed precision, per row and metric
    ("row") or per column ("column"), ties all marked, only where at least two cells compete."""
    if rule is None or cells.empty:
        return set()
    filled = cells[(cells["n"] > 0) & (cells["metric"] != "relative_drop") & cells["mean"].notna()]
    keys = ["row_id", "metric"] if rule == "row" else ["col_id"]
    best: set[tuple[str, str]] = set()
    for _, group in filled.groupby(keys, sort=False):
        if len(group) < 2:
            continue
        rounded = group["mean"].astype(float).round(2)
        top = rounded.max()
        best |= {(r, c) for r, c, v in zip(group["row_id"], group["col_id"], rounded) if v == top}
    return best
