"""The report page's tables: each tableN.csv (with the caption from tableN.md) read into the rows,
cells, missing cells and REPAIR variants the template shows (torch-free)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from debiasbench.benchmark.paper.axes import (
    DATASET_LABELS,
    EXTENDED_TABLE,
    METHOD_LABELS,
    METRIC_LABELS,
    table_label,
    table_stem,
)
from debiasbench.benchmark.report.compare import SE_FACTOR
from debiasbench.benchmark.report.page_format import best_cells, beyond_2se, finite, fmt_diff, fmt_value
from debiasbench.benchmark.report.specs import TIDY_TEXT_COLUMNS

# How the report marks the best value (benchmark.tables: TableResult.bold): per row and metric block,
# per column for Table 6 (BAR, methods as rows), none for Table 1 (one method) and Table 7 (counts).
BEST_RULE = {1: None, 6: "column", 7: None}
COLUMN_LABELS = {"biased_train": "Accuracy", "unbiased_train": "Accuracy*"}  # Table 1, as in the paper
ROW_HEADERS = {
    1: "Target / bias",
    2: "Ratio (%)",
    3: "Ratio (%)",
    4: "Ratio (%)",
    5: "Target / bias",
    6: "Method",
    7: "Split",
    8: "Difficulty",
    9: "Difficulty",
    10: "Ratio (%)",
    EXTENDED_TABLE: "Ratio (%)",
}


def read_table_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        dtype={c: str for c in TIDY_TEXT_COLUMNS},
        keep_default_na=False,
        na_values={
            c: [""]
            for c in ("mean", "std", "ci_low", "ci_high", "n", "n_failed", "paper_mean", "paper_std", "difference")
        },
    )
    for column in ("mean", "std", "ci_low", "ci_high", "n", "n_failed", "paper_mean", "paper_std", "difference"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("n", "n_failed"):
        if column in frame:
            frame[column] = frame[column].fillna(0).astype(int)
    return frame


def table_files(report_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in report_dir.glob("table*.csv"):
        suffix = path.stem[len("table") :]
        if suffix.isdigit():
            found.append((int(suffix), path))
        elif path.stem == table_stem(EXTENDED_TABLE):
            found.append((EXTENDED_TABLE, path))
    return sorted(found)


def _caption(report_dir: Path, number: int) -> str:
    """The caption the report wrote into tableN.md (the line after the heading), or ''."""
    path = report_dir / f"{table_stem(number)}.md"
    if not path.is_file():
        return ""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines[1:]:
        if line and not line.startswith(("#", "|")):
            return line
    return ""


def _row_labels(cell: Mapping[str, Any], number: int) -> list[str]:
    dataset, row = str(cell["dataset"]), str(cell["row"])
    if number == 6:  # BAR: methods as rows, "method [variant]"
        method, _, variant = row.partition(" [")
        row = METHOD_LABELS.get(method, method) + (f" [{variant}" if variant else "")
    return [DATASET_LABELS.get(dataset, dataset), row, str(cell.get("setting", ""))]


def _column_label(cell: Mapping[str, Any], several_metrics: bool) -> str:
    column, metric = str(cell["column"]), str(cell["metric"])
    if column in COLUMN_LABELS:
        label = COLUMN_LABELS[column]
    elif column == metric:
        label = METRIC_LABELS.get(metric, metric)
    elif cell.get("method"):
        label = METHOD_LABELS.get(column, column)
    else:  # a class (Tables 6 and 7) or a total
        label = column.title()
    if cell.get("method_variant"):
        label += f" [{cell['method_variant']}]"
    if several_metrics and column != metric:
        label = f"{METRIC_LABELS.get(metric, metric)}: {label}"
    return label


def _cell_view(cell: Mapping[str, Any], best: bool) -> dict[str, Any]:
    metric = str(cell["metric"])
    n, n_failed = int(cell["n"]), int(cell.get("n_failed", 0))
    view: dict[str, Any] = {
        "row_id": cell["row_id"],
        "col_id": cell["col_id"],
        "n": n,
        "n_failed": n_failed,
        "best": False,
        "beyond": None,
        "sort": "",
    }
    if n <= 0 or not finite(cell["mean"]):
        view["state"] = "failed" if n_failed else "missing"
        return view
    beyond, se = beyond_2se(cell)
    view.update(
        state="ok",
        best=best,
        beyond=beyond,
        sort=repr(float(cell["mean"])),
        mean=fmt_value(cell["mean"], metric),
        unit="%" if metric == "relative_drop" else "",
        std=fmt_value(cell["std"]) if finite(cell["std"]) else "",
        ci=f"[{fmt_value(cell['ci_low'])}, {fmt_value(cell['ci_high'])}]"
        if finite(cell.get("ci_low")) and finite(cell.get("ci_high"))
        else "",
        variant=str(cell.get("repair_variant") or ""),
        paper=fmt_value(cell["paper_mean"], metric),
        paper_std=fmt_value(cell["paper_std"]),
        diff=fmt_diff(cell["difference"])
        or ("not comparable: off the paper's protocol" if cell.get("departures") else ""),
        se=f"{SE_FACTOR:g} SE = {SE_FACTOR * se:.2f}" if beyond is not None else "no SE on either side",
        title="; ".join(
            x
            for x in (
                f"seeds {cell['seeds']}" if cell.get("seeds") else "",
                f"epochs {cell['epochs']}" if cell.get("epochs") else "",
                f"{n_failed} failed" if n_failed else "",
                f"trials {cell['trial_keys']}" if cell.get("trial_keys") else "",
            )
            if x
        ),
    )
    return view


def table_view(report_dir: Path, number: int, path: Path) -> dict[str, Any]:
    tidy = read_table_csv(path)
    view: dict[str, Any] = {
        "number": number,
        "anchor": f"table{number}",
        "label": table_label(number),
        "caption": _caption(report_dir, number),
        "file": path.name,
        "rows": [],
        "headers": [],
        "missing": [],
        "variants": [],
        "empty": tidy.empty,
    }
    if tidy.empty:
        return view
    cells = tidy[tidy["kind"] == "cell"]
    columns = list(dict.fromkeys(cells["col_id"]))
    rows = list(dict.fromkeys(cells["row_id"]))
    first_of_col = {c: cells[cells["col_id"] == c].iloc[0] for c in columns}
    several = len({m for m in cells["metric"] if m != "relative_drop"}) > 1
    col_labels = {c: _column_label(first_of_col[c], several) for c in columns}
    with_setting = any(cells["setting"].astype(str) != "")
    label_headers = ["Dataset", ROW_HEADERS.get(number, "Row")] + (["Setting"] if with_setting else [])
    view["headers"] = label_headers + [col_labels[c] for c in columns]
    view["n_labels"] = len(label_headers)
    best = best_cells(cells, BEST_RULE.get(number, "row"))
    lookup = {(r, c): cell for r, c, cell in zip(cells["row_id"], cells["col_id"], cells.to_dict("records"))}
    counts = Counter()
    for row_id in rows:
        some = next(cell for (r, _), cell in lookup.items() if r == row_id)
        labels = _row_labels(some, number)[: len(label_headers)]
        out = []
        for col_id in columns:
            cell = lookup.get((row_id, col_id))
            if cell is None:
                out.append(
                    {
                        "row_id": row_id,
                        "col_id": col_id,
                        "state": "missing",
                        "n": 0,
                        "n_failed": 0,
                        "sort": "",
                        "best": False,
                        "beyond": None,
                    }
                )
                continue
            shown = _cell_view(cell, (row_id, col_id) in best)
            counts[shown["state"]] += 1
            counts["beyond"] += shown["beyond"] is True
            counts["best"] += shown["best"]
            if shown["state"] != "ok":
                view["missing"].append(
                    {
                        "row": " / ".join(x for x in labels if x),
                        "column": col_labels[col_id],
                        "failed": shown["state"] == "failed",
                        "n_failed": shown["n_failed"],
                    }
                )
            out.append(shown)
        view["rows"].append({"row_id": row_id, "labels": labels, "cells": out})
    view["counts"] = {
        "cells": len(lookup),
        "filled": counts["ok"],
        "missing": counts["missing"],
        "failed": counts["failed"],
        "beyond": counts["beyond"],
        "best": counts["best"],
    }
    view["selectors"] = sorted({s for s in tidy["selector"] if s})
    view["protocols"] = sorted({p for p in tidy["protocol"] if p})
    variants = tidy[tidy["kind"] == "repair_variant"]
    for record in variants.to_dict("records"):
        labels = _row_labels(record, number)[: len(label_headers)]
        beyond, _ = beyond_2se(record)
        view["variants"].append(
            {
                "labels": labels,
                "column": col_labels.get(record["col_id"], record["col_id"]),
                "variant": record["repair_variant"],
                "row_id": record["row_id"],
                "col_id": record["col_id"],
                "mean": fmt_value(record["mean"], record["metric"]),
                "std": fmt_value(record["std"]),
                "n": int(record["n"]),
                "paper": fmt_value(record["paper_mean"], record["metric"]),
                "diff": fmt_diff(record["difference"]),
                "beyond": beyond,
                "chosen": any(
                    c.get("repair_variant") == record["repair_variant"]
                    for (r, k), c in lookup.items()
                    if r == record["row_id"] and k == record["col_id"]
                ),
            }
        )
    view["variant_headers"] = label_headers + ["Column", "Variant", "Mean", "Std", "n", "Paper", "Δ"]
    return view
