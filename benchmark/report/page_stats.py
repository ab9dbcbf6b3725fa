"""The report page's comparison tables (comparison_*.csv) and statistics (ranking.csv, pairwise.csv,
resolution.csv, critical_difference.png), read from the report directory (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from debiasbench.benchmark.report.comparison import COMPARISON_LABELS
from debiasbench.benchmark.report.page_format import fmt_value
from debiasbench.benchmark.report.page_sections import data_uri
from debiasbench.benchmark.report.page_tables import table_view
from debiasbench.benchmark.report.stats_files import STATS_NOTE
from debiasbench.benchmark.report.stats_report import method_name


def _caption(md: Path) -> tuple[str, str]:
    """(heading, caption) of a comparison table's Markdown."""
    if not md.is_file():
        return "", ""
    lines = [line.strip() for line in md.read_text(encoding="utf-8").splitlines()]
    caption = next((line for line in lines[1:] if line and not line.startswith(("#", "|"))), "")
    return caption.split(":", 1)[1].split(".", 1)[0].strip() if ":" in caption else "", caption


def comparison_views(report_dir: Path) -> list[dict[str, Any]]:
    """Each comparison_*.csv as the page's table view: condition and method as row labels."""
    views = []
    for path in sorted(report_dir.glob("comparison_*.csv")):
        view = table_view(report_dir, 0, path)
        title, caption = _caption(path.with_suffix(".md"))
        view.update(anchor=path.stem, label=f"Comparison table: {title}" if title else path.stem, caption=caption)
        if view["empty"]:
            views.append(view)
            continue
        tidy = pd.read_csv(path, dtype=str, keep_default_na=False)
        first = tidy.drop_duplicates("row_id").set_index("row_id")
        with_condition = any(first["row"] != "")
        headers = (["Condition"] if with_condition else []) + ["Method"]
        for row in view["rows"]:
            record = first.loc[row["row_id"]]
            method = method_name(record["method"], record["method_variant"])
            row["labels"] = ([record["row"]] if with_condition else []) + [method]
        for variant in view["variants"]:
            record = first.loc[variant["row_id"]]
            variant["labels"] = ([record["row"]] if with_condition else []) + [record["method"]]
        columns = list(dict.fromkeys(tidy.loc[tidy["kind"] == "cell", "col_id"]))
        # A class column is headed by the user's class name as written (the template escapes it).
        names = [
            c.split("|", 1)[1] if c.startswith("class|") else COMPARISON_LABELS.get(c.split("|")[0]) for c in columns
        ]
        rest = view["headers"][view["n_labels"] :]
        view["headers"] = headers + [name if name is not None else label for name, label in zip(names, rest)]
        view["variant_headers"] = headers + view["variant_headers"][view["n_labels"] :]
        view["n_labels"] = len(headers)
        views.append(view)
    return views


def _pair(a: float, b: float) -> str:
    return f"[{fmt_value(a)}, {fmt_value(b)}]" if fmt_value(a) else "—"


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    out = []
    for record in frame[columns].to_dict("records"):
        out.append([(fmt_value(v) or "—") if isinstance(v, float) else str(v) for v in record.values()])
    return out


def statistics_view(report_dir: Path) -> dict[str, Any] | None:
    ranking, pairwise, resolution = (report_dir / f"{n}.csv" for n in ("ranking", "pairwise", "resolution"))
    selection = report_dir / "selection.csv"
    if not (ranking.is_file() or pairwise.is_file() or selection.is_file()):
        return None
    view: dict[str, Any] = {"note": STATS_NOTE + ".", "ranking": [], "pairwise": [], "resolution": []}
    view.update(_selection(selection))
    view["ranking_text"] = _ranking_text(report_dir / "report.md")
    if ranking.is_file():
        frame = pd.read_csv(ranking)
        frame["interval"] = [_pair(lo, hi) for lo, hi in zip(frame["rank_low"], frame["rank_high"])]
        view["ranking"] = _rows(frame, ["method", "cells", "mean_rank", "interval"])
        view["ranking_headers"] = ["Method", "Cells", "Mean rank", "95% interval"]
    png = report_dir / "critical_difference.png"
    view["cd_image"] = data_uri(png) if png.is_file() else ""
    if pairwise.is_file():
        frame = pd.read_csv(pairwise)
        frame = frame[frame["scope"] == "aggregate"].sort_values("difference", ascending=False)
        frame["diff_ci"] = [_pair(a, b) for a, b in zip(frame["difference_low"], frame["difference_high"])]
        frame["p_ci"] = [_pair(a, b) for a, b in zip(frame["p_a_better_low"], frame["p_a_better_high"])]
        frame["resolved"] = ["yes" if str(r) == "True" else "no" for r in frame["resolved"]]
        columns = ["method_a", "method_b", "difference", "diff_ci", "p_a_better", "p_ci", "cells", "resolved"]
        view["pairwise"] = _rows(frame, columns)
        view["pairwise_headers"] = ["A", "B", "A − B", "95% interval", "P(A > B)", "95% interval", "Cells", "Resolved"]
    if resolution.is_file():
        frame = pd.read_csv(resolution)
        frame["ci"] = [_pair(a, b) for a, b in zip(frame["difference_low"], frame["difference_high"])]
        frame["seeds"] = [f"{a} / {b}" for a, b in zip(frame["n_a"], frame["n_b"])]
        frame["resolved"] = ["yes" if str(r) == "True" else "no" for r in frame["resolved"]]
        columns = ["dataset", "condition", "metric", "method_a", "method_b", "difference", "ci", "seeds", "resolved"]
        frame["method_a"] = frame["method_a"] + " vs " + frame["method_b"]
        view["resolution"] = _rows(frame, [c for c in columns if c != "method_b"])
        view["resolution_headers"] = [
            "Dataset",
            "Condition",
            "Metric",
            "Comparison",
            "A − B",
            "95% interval",
            "Seeds",
            "Resolved",
        ]
    return view


def _ranking_text(report_md: Path) -> str:
    if not report_md.is_file():
        return ""
    for line in report_md.read_text(encoding="utf-8").splitlines():
        if line.startswith("Ranking (ranking.csv)"):
            return line
    return ""


def _selection(path: Path) -> dict[str, Any]:
    """selection.csv as rows (cell, method) x selectors, each "mean [interval] (#rank)"."""
    if not path.is_file():
        return {"selection": [], "selection_headers": [], "selection_caption": ""}
    from debiasbench.benchmark.report.selection_compare import CAPTION, SELECTOR_HEADERS, SELECTOR_ORDER

    frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in ("ci_low", "ci_high", "std")})
    rows = []
    for (condition, method), part in frame.groupby(["condition", "method"], sort=False):
        by = part.set_index("selector")
        cells = []
        for selector in SELECTOR_ORDER:
            if selector not in by.index:
                cells.append("—")
                continue
            r = by.loc[selector]
            cells.append(f"{fmt_value(r['mean'])} {_pair(r['ci_low'], r['ci_high'])} (#{float(r['rank']):g})")
        symbol = str(part["supervision"].iloc[0]) if "supervision" in part else ""
        rows.append([f"{part['dataset'].iloc[0]} {condition}".strip(), f"{method} {symbol}".strip(), *cells])
    metric = str(frame["metric"].iloc[0]) if len(frame) else "unbiased"
    return {
        "selection": rows,
        "selection_headers": ["Cell", "Method", *(SELECTOR_HEADERS[s] for s in SELECTOR_ORDER)],
        "selection_caption": CAPTION.format(metric=metric),
    }
