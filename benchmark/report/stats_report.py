"""Which method is best, and how sure (torch-free): from the comparison tables' cells, the pairwise
comparisons (pairwise.csv), the ranking across cells with a Friedman test and a critical-difference
diagram (ranking.csv, critical_difference.png/.pdf) and, per cell, whether its leading comparison is
resolved (resolution.csv). The statistics are benchmark.report.statistics' (scipy) and autorank's.

A cell is one (dataset, setting, condition, metric) of a comparison table; a method is a method with
its variant label. Only cells with at least one seed of a method count for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.paper.axes import METHOD_LABELS
from debiasbench.benchmark.report.specs import TableResult
from debiasbench.benchmark.report.statistics import (
    CONFIDENCE,
    aggregate_pair,
    difference_interval,
    mean_rank_intervals,
    probability_of_improvement,
    resolved,
)

RANK_METRICS = ("unbiased", "conflicting")  # the default cells of the ranking: the paper's two metrics
MIN_FRIEDMAN_CELLS = 5  # autorank's minimum number of cells (its "performance estimations")
ALPHA = 1 - CONFIDENCE


@dataclass
class StatsOptions:
    metrics: Sequence[str] = RANK_METRICS
    datasets: Sequence[str] | None = None  # None: every dataset
    conditions: Sequence[str] | None = None  # substrings of the condition label, e.g. "ratio=99.5"
    methods: Sequence[str] | None = None  # None: every method (fewest-cell ones dropped for the Friedman test)
    precision: float | None = None  # points: a comparison whose interval is within +-precision is resolved too
    pair: tuple[str, str] | None = None  # the leading comparison of every cell (default: best vs runner-up)


@dataclass
class CellValues:
    """Every cell's seeds per method: cells[(dataset, setting, condition, metric)][method] = values."""

    cells: dict[tuple[str, str, str, str], dict[str, list[float]]] = field(default_factory=dict)
    keys: dict[tuple[str, str, str, str], dict[str, list[str]]] = field(default_factory=dict)  # their trials
    methods: dict[str, str] = field(default_factory=dict)  # each printed label -> its registry name


def method_name(method: str, variant: str) -> str:
    return METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")


def cell_values(tables: Sequence[TableResult], summaries: pd.DataFrame) -> CellValues:
    """Seeds of every filled (cell, method) of the comparison tables, in percent."""
    by_key = summaries.set_index("trial_key") if len(summaries) else summaries
    out = CellValues()
    for table in tables:
        cells = table.cells
        if not len(cells):
            continue
        for record in cells[(cells["n"] > 0) & (cells["metric"] != "class")].to_dict("records"):
            keys = [k for k in str(record["trial_keys"]).split(";") if k]
            pairs = [(k, 100.0 * float(by_key.loc[k, record["metric"]])) for k in keys]
            pairs = [(k, v) for k, v in pairs if not math.isnan(v)]
            if pairs:
                cell = (record["dataset"], record["setting"], record["row"], record["metric"])
                method = method_name(record["method"], record["method_variant"])
                out.cells.setdefault(cell, {})[method] = [v for _, v in pairs]
                out.keys.setdefault(cell, {})[method] = [k for k, _ in pairs]
                out.methods[method] = record["method"]
    return out


def _selected(values: CellValues, options: StatsOptions) -> dict[tuple[str, str, str, str], dict[str, list[float]]]:
    chosen = {}
    for cell, methods in values.cells.items():
        dataset, _, condition, metric = cell
        if metric not in options.metrics or (options.datasets and dataset not in options.datasets):
            continue
        if options.conditions and not any(c in condition for c in options.conditions):
            continue
        if options.methods:
            methods = {
                m: v
                for m, v in methods.items()
                if any(x in (values.methods[m], m.split(" [")[0]) for x in options.methods)  # name or label
            }
        chosen[cell] = methods
    return chosen


def _cell_text(cell: tuple[str, str, str, str]) -> str:
    return " / ".join(x for x in cell if x)


# --------------------------------------------------------------------------------------------
# Pairwise
# --------------------------------------------------------------------------------------------
def pairwise(values: CellValues, options: StatsOptions) -> pd.DataFrame:
    """Per pair of methods: per cell and aggregated over the selected cells they share, the
    difference A - B with its interval and P(A > B) with its interval. Each pair is oriented so
    that A has the higher mean over their shared cells."""
    cells = _selected(values, options)
    methods = sorted({m for per in cells.values() for m in per})
    rows = []
    for x, y in combinations(methods, 2):
        shared = [c for c, per in cells.items() if x in per and y in per]
        if not shared:
            continue
        overall = sum(sum(cells[c][x]) / len(cells[c][x]) - sum(cells[c][y]) / len(cells[c][y]) for c in shared)
        a, b = (x, y) if overall >= 0 else (y, x)
        for cell in shared:
            difference, low, high = difference_interval(cells[cell][a], cells[cell][b])
            boot = aggregate_pair([(cells[cell][a], cells[cell][b])])
            rows.append(
                {
                    "scope": "cell",
                    "cell": _cell_text(cell),
                    "method_a": a,
                    "method_b": b,
                    "cells": 1,
                    "n_a": len(cells[cell][a]),
                    "n_b": len(cells[cell][b]),
                    "difference": difference,
                    "difference_low": low,
                    "difference_high": high,
                    "interval": "Welch t",
                    "p_a_better": probability_of_improvement(cells[cell][a], cells[cell][b]),
                    "p_a_better_low": boot["poi_low"],
                    "p_a_better_high": boot["poi_high"],
                    "resolved": resolved(low, high, options.precision),
                }
            )
        boot = aggregate_pair([(cells[c][a], cells[c][b]) for c in shared])
        rows.append(
            {
                "scope": "aggregate",
                "cell": f"{len(shared)} cell(s): " + "; ".join(_cell_text(c) for c in shared),
                "method_a": a,
                "method_b": b,
                "cells": len(shared),
                "n_a": sum(len(cells[c][a]) for c in shared),
                "n_b": sum(len(cells[c][b]) for c in shared),
                "difference": boot["difference"],
                "difference_low": boot["difference_low"],
                "difference_high": boot["difference_high"],
                "interval": "stratified bootstrap",
                "p_a_better": boot["poi"],
                "p_a_better_low": boot["poi_low"],
                "p_a_better_high": boot["poi_high"],
                "resolved": resolved(boot["difference_low"], boot["difference_high"], options.precision),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Ranking, Friedman, critical difference
# --------------------------------------------------------------------------------------------
@dataclass
class Ranking:
    table: pd.DataFrame  # method, cells, mean_rank, rank_low, rank_high
    cells: list[tuple[str, str, str, str]]
    dropped: list[str]  # methods left out to keep enough shared cells
    test: str = ""  # the omnibus test and its outcome, in words
    autorank_result: object = None  # for the critical-difference diagram


def ranking(values: CellValues, options: StatsOptions) -> Ranking:
    """Mean rank of each method over the selected cells that every ranked method shares. Methods
    in the fewest cells are dropped (and named) until at least MIN_FRIEDMAN_CELLS cells are shared,
    so the Friedman test and the critical-difference diagram can be computed."""
    cells = _selected(values, options)
    methods = sorted({m for per in cells.values() for m in per})
    dropped: list[str] = []

    def shared(ms: list[str]) -> list:
        return [c for c, per in cells.items() if all(m in per for m in ms)]

    while len(methods) > 2 and len(shared(methods)) < MIN_FRIEDMAN_CELLS:
        coverage = {m: sum(m in per for per in cells.values()) for m in methods}
        worst = min(methods, key=lambda m: (coverage[m], m))
        if coverage[worst] == max(coverage.values()):
            break  # every method covers the same cells: dropping one gains nothing
        methods.remove(worst)
        dropped.append(worst)
    common = shared(methods)
    empty = pd.DataFrame(columns=["method", "cells", "mean_rank", "rank_low", "rank_high"])
    if len(methods) < 2 or not common:
        return Ranking(empty, common, dropped, "fewer than two methods share a cell: no ranking")
    seeds = [[cells[c][m] for m in methods] for c in common]
    point, low, high = mean_rank_intervals(seeds)
    table = pd.DataFrame(
        {"method": methods, "cells": len(common), "mean_rank": point, "rank_low": low, "rank_high": high}
    ).sort_values(["mean_rank", "method"], ignore_index=True)
    outcome = Ranking(table, common, dropped)
    if len(common) < MIN_FRIEDMAN_CELLS:
        outcome.test = (
            f"no Friedman test: {len(common)} shared cell(s), autorank needs {MIN_FRIEDMAN_CELLS}; "
            "select more cells (--rank-metrics, --rank-datasets) or fewer methods (--rank-methods)"
        )
        return outcome
    outcome.autorank_result, outcome.test = _friedman(common, methods, cells)
    return outcome


def _friedman(common: list, methods: list[str], cells: dict) -> tuple[object, str]:
    from autorank import autorank

    frame = pd.DataFrame(
        [[sum(cells[c][m]) / len(cells[c][m]) for m in methods] for c in common],
        columns=methods,
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autorank warns about small samples; the text below says how many
        result = autorank(frame, alpha=ALPHA, verbose=False, order="descending", force_mode="nonparametric")
    if result.omnibus == "friedman":
        text = (
            f"Friedman test over {len(common)} cells and {len(methods)} methods: p = {result.pvalue:.3g} "
            f"({'the methods differ' if result.pvalue < ALPHA else 'no difference shown'} at {CONFIDENCE:.0%}); "
            f"Nemenyi critical difference {result.cd:.2f} ranks: two methods whose mean ranks differ by less "
            "are not shown to differ (joined by a bar in the diagram)"
        )
    else:
        text = f"{result.omnibus} test over {len(common)} cells: p = {result.pvalue:.3g}"
    return result, text


def critical_difference_figure(outcome: Ranking, out: Path) -> list[Path]:
    """critical_difference.png and .pdf (autorank's diagram); [] where no Nemenyi test was run."""
    result = outcome.autorank_result
    if result is None or getattr(result, "posthoc", "") != "nemenyi":
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from autorank import plot_stats

    plot_stats(result, allow_insignificant=True)
    figure = plt.gcf()
    figure.suptitle(
        f"Mean rank over {len(outcome.cells)} cells (1 = best); bars join methods within the critical difference",
        y=1.15,
    )
    paths = [out / "critical_difference.png", out / "critical_difference.pdf"]
    for path in paths:
        figure.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(figure)
    return paths


# --------------------------------------------------------------------------------------------
# The leading comparison of every cell (what --seeds auto adds seeds for)
# --------------------------------------------------------------------------------------------
def leading_comparisons(values: CellValues, options: StatsOptions) -> pd.DataFrame:
    """Per selected cell: the best method by mean against the runner-up (or options.pair), the
    difference with its Welch t interval, the seeds each has, and whether it is resolved."""
    rows = []
    for cell, per in _selected(values, options).items():
        if options.pair:
            a, b = (method_name(m, "") for m in options.pair)
            if a not in per or b not in per:
                continue
        else:
            ranked = sorted(per, key=lambda m: -sum(per[m]) / len(per[m]))
            if len(ranked) < 2:
                continue
            a, b = ranked[:2]
        difference, low, high = difference_interval(per[a], per[b])
        rows.append(
            {
                "dataset": cell[0],
                "setting": cell[1],
                "condition": cell[2],
                "metric": cell[3],
                "method_a": a,
                "method_b": b,
                "n_a": len(per[a]),
                "n_b": len(per[b]),
                "difference": difference,
                "difference_low": low,
                "difference_high": high,
                "resolved": resolved(low, high, options.precision),
                "trial_keys_a": ";".join(values.keys.get(cell, {}).get(a, [])),
                "trial_keys_b": ";".join(values.keys.get(cell, {}).get(b, [])),
            }
        )
    return pd.DataFrame(rows)
