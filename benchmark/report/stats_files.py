"""Writing the comparison tables and the statistics of a report (torch-free): comparison_*.{csv,tex,md},
pairwise.csv, ranking.csv, resolution.csv and critical_difference.{png,pdf}; returns report.md's lines."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.report.comparison import comparison_tables
from debiasbench.benchmark.report.render import render_csv, render_latex, render_markdown
from debiasbench.benchmark.report.selection import Selection
from debiasbench.benchmark.report.stats_report import (
    MIN_FRIEDMAN_CELLS,
    StatsOptions,
    cell_values,
    critical_difference_figure,
    leading_comparisons,
    pairwise,
    ranking,
)

STATS_NOTE = (
    "Intervals are 95%: per cell a Student t interval over seeds; a difference of two methods in a cell "
    "Welch's t interval; across cells a stratified bootstrap (seeds resampled within each cell, 2000 "
    "resamples, percentile interval). P(A > B): the share of seed pairs where A is higher (ties half). "
    "A comparison is resolved when its interval excludes 0"
)


def _fmt(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.2f}"


def write_statistics(
    sel: Selection, out: Path, options: StatsOptions, data_root: str | os.PathLike | None
) -> list[str]:
    tables = comparison_tables(sel, data_root)
    lines: list[str] = []
    for stem, table in tables:
        markdown = render_markdown(table, sel, show_paper=False)
        (out / f"{stem}.md").write_text(markdown + "\n", encoding="utf-8")
        (out / f"{stem}.tex").write_text(render_latex(table, sel), encoding="utf-8")
        (out / f"{stem}.csv").write_text(render_csv(table), encoding="utf-8")
        lines += ["", markdown]
    if not tables:
        return lines
    values = cell_values([t for _, t in tables], sel.summaries)
    note = STATS_NOTE + (f" or lies within ±{options.precision:g} points." if options.precision else ".")
    lines += ["", "### Which method is best, and how sure", "", note]

    leading = leading_comparisons(values, options)
    if len(leading):
        leading.to_csv(out / "resolution.csv", index=False)
        lines += ["", "Leading comparison per cell (best against runner-up; seeds; resolved):", ""]
        for r in leading.itertuples(index=False):
            where = " / ".join(x for x in (r.dataset, r.setting, r.condition, r.metric) if x)
            lines.append(
                f"- {where}: {r.method_a} − {r.method_b} = {_fmt(r.difference)} "
                f"[{_fmt(r.difference_low)}, {_fmt(r.difference_high)}], n = {r.n_a} and {r.n_b}: "
                + ("resolved" if r.resolved else "NOT resolved")
            )

    pairs = pairwise(values, options)
    if len(pairs):
        pairs.to_csv(out / "pairwise.csv", index=False)
        aggregate = pairs[pairs["scope"] == "aggregate"].sort_values("difference", ascending=False)
        lines += [
            "",
            f"Pairwise over the selected cells (pairwise.csv; metrics {', '.join(options.metrics)}): "
            "difference A − B in points [interval], P(A > B) [interval], cells:",
            "",
            "| A | B | A − B | P(A > B) | cells | resolved |",
            "|---|---|---:|---:|---:|:---:|",
        ]
        for r in aggregate.itertuples(index=False):
            lines.append(
                f"| {_md(r.method_a)} | {_md(r.method_b)} | {_fmt(r.difference)} [{_fmt(r.difference_low)}, "
                f"{_fmt(r.difference_high)}] | {r.p_a_better:.2f} [{r.p_a_better_low:.2f}, {r.p_a_better_high:.2f}] "
                f"| {r.cells} | {'yes' if r.resolved else 'no'} |"
            )

    outcome = ranking(values, options)
    if len(outcome.table):
        outcome.table.to_csv(out / "ranking.csv", index=False)
        lines += [
            "",
            f"Ranking (ranking.csv): mean rank over {len(outcome.cells)} shared cell(s) (1 = best), "
            "[95% stratified-bootstrap interval]. " + outcome.test + ".",
            "",
            "| method | cells | mean rank |",
            "|---|---:|---:|",
        ]
        for r in outcome.table.itertuples(index=False):
            lines.append(f"| {_md(r.method)} | {r.cells} | {r.mean_rank:.2f} [{r.rank_low:.2f}, {r.rank_high:.2f}] |")
        if outcome.dropped:
            lines += [
                "",
                f"Left out of the ranking to share at least {MIN_FRIEDMAN_CELLS} cells: "
                + ", ".join(outcome.dropped)
                + " (they are in pairwise.csv; --rank-methods chooses the ranked methods).",
            ]
        figures = critical_difference_figure(outcome, out)
        if figures:
            lines += ["", "Critical-difference diagram: " + ", ".join(str(p) for p in figures)]
    return lines


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")
