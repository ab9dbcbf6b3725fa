"""One static, self-contained HTML page of a written report: RESULTS/report/index.html (torch-free).

    python -m benchmark.report.provenance REPORT_DIR [--results RESULTS]

`write_index_html(report_dir, provenance)` reads only what the report already wrote into its
directory (tableN.csv and tableN.md, figures/figure{2,4}.png, groups_*_matrix.csv with their heatmap
PNGs, diagnostics.csv, failed_trials.csv) and renders templates/index.html.j2 with Jinja2
(autoescaping on). The page needs no server and no network: PNGs are embedded as data URIs, the
few lines of table-sorting JavaScript are inline, and a Content-Security-Policy forbids any fetch.

Per table cell it shows our mean ± std and n, the paper's mean ± std and the difference. The best
value is marked per row (per column for Table 6; Tables 1 and 7 have no best), as the report's
bold does. A cell is flagged when |ours - paper| > 2 SE with SE = max(std/sqrt(n), paper std/sqrt(3)):
the paper's ± is read as its std over its 3 seeds; a side without a std drops out, a cell with
neither is not tested. Missing cells are those with n = 0 in tableN.csv ("failed" when a failed
trial is why). `provenance_from_store(results)` gathers the page's provenance from a result store.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.paper.axes import DATASET_LABELS, EXTENDED_TABLE, METHOD_LABELS, METRIC_LABELS, table_label, table_stem
from benchmark.report.compare import PAPER_SEEDS, SE_FACTOR, beyond_standard_errors, standard_error

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "index.html.j2"
PAGE = "index.html"
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
PROVENANCE_LABELS = {
    "results": "Result store",
    "code_version": "Code version",
    "torch_version": "torch",
    "cuda_version": "CUDA",
    "device": "Devices",
    "hostname": "Hosts",
    "selection_protocol": "Selection protocols",
    "status": "Trials per status",
    "trials": "Trials",
    "finished_at": "Finished (first, last)",
}
SE_RULE = (
    f"A cell is highlighted when |ours − paper| > {SE_FACTOR:g} SE, with SE the larger of our standard "
    f"error (std/√n over our seeds) and the paper's (its ± read as the std over its {PAPER_SEEDS} seeds, "
    f"so ±/√{PAPER_SEEDS}). A side without a std (n = 1, or no ± in the paper) drops out; a cell where "
    "neither has one is not tested."
)


# --------------------------------------------------------------------------------------------
# Numbers and cells
# --------------------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_value(value: Any, metric: str = "") -> str:
    """A mean or paper value as printed on the page (and in the report): 2 decimals, counts whole."""
    if not _finite(value):
        return ""
    if metric == "count":
        return f"{int(round(float(value)))}"
    return f"{float(value):.2f}"


def fmt_diff(value: Any) -> str:
    return f"{float(value):+.2f}" if _finite(value) else ""


def beyond_2se(cell: Mapping[str, Any]) -> tuple[bool | None, float]:
    """(whether |difference| > 2 SE, the SE used); None where no SE or no paper value exists."""
    if not _finite(cell.get("difference")):
        return None, math.nan
    paper = float(cell["paper_std"]) / math.sqrt(PAPER_SEEDS) if _finite(cell.get("paper_std")) else math.nan
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


# --------------------------------------------------------------------------------------------
# Reading the report directory
# --------------------------------------------------------------------------------------------
_TEXT_COLUMNS = (
    "dataset",
    "row",
    "setting",
    "metric",
    "column",
    "method",
    "method_variant",
    "repair_variant",
    "kind",
    "seeds",
    "epochs",
    "selector",
    "protocol",
    "trial_keys",
    "row_id",
    "col_id",
)


def read_table_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        dtype={c: str for c in _TEXT_COLUMNS},
        keep_default_na=False,
        na_values={c: [""] for c in ("mean", "std", "n", "n_failed", "paper_mean", "paper_std", "difference")},
    )
    for column in ("mean", "std", "n", "n_failed", "paper_mean", "paper_std", "difference"):
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


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
    if n <= 0 or not _finite(cell["mean"]):
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
        std=fmt_value(cell["std"]) if _finite(cell["std"]) else "",
        variant=str(cell.get("repair_variant") or ""),
        paper=fmt_value(cell["paper_mean"], metric),
        paper_std=fmt_value(cell["paper_std"]),
        diff=fmt_diff(cell["difference"]),
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


def _table_view(report_dir: Path, number: int, path: Path) -> dict[str, Any]:
    tidy = read_table_csv(path)
    view: dict[str, Any] = {
        "number": number,
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


def _failed_view(report_dir: Path) -> list[dict[str, str]]:
    path = report_dir / "failed_trials.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = []
    for record in frame.to_dict("records"):
        error = str(record.get("error", "")).strip()
        lines = [line for line in error.splitlines() if line.strip()]
        out.append(
            {
                **{k: str(v) for k, v in record.items()},
                "last_error": lines[-1] if lines else "no error text",
                "error": error,
            }
        )
    return out


def _groups_view(report_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(report_dir.glob("groups_*_matrix.csv")):
        name = path.name[: -len("_matrix.csv")]
        matrix = pd.read_csv(path, index_col=0)
        heatmap = report_dir / f"{name}.png"
        summary = report_dir / f"{name}.md"
        text = summary.read_text(encoding="utf-8") if summary.is_file() else ""
        description = next(
            (line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "|"))), ""
        )
        out.append(
            {
                "name": name,
                "file": path.name,
                "columns": [str(c) for c in matrix.columns],
                "index_name": str(matrix.index.name or "target"),
                "rows": [
                    {"label": str(index), "values": [fmt_value(v) for v in values]}
                    for index, values in zip(matrix.index, matrix.to_numpy())
                ],
                "image": _data_uri(heatmap) if heatmap.is_file() else "",
                "summary": text,
                "description": description,
            }
        )
    return out


def _diagnostics_view(report_dir: Path) -> dict[str, Any] | None:
    path = report_dir / "diagnostics.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(
        path,
        dtype={
            "dataset_params": str,
            "method_hparams": str,
            "trial_key": str,
            "method": str,
            "dataset": str,
            "metric": str,
        },
        keep_default_na=False,
    )
    if frame.empty:
        return None
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    last = frame[frame["epoch"] == frame.groupby("trial_key")["epoch"].transform("max")]
    keys = ["dataset", "dataset_params", "method", "method_hparams", "metric"]
    summary = last.groupby(keys, sort=True)["value"].agg(mean="mean", std="std", n="count").reset_index()
    rows = [
        {
            "cells": [
                r["dataset"],
                r["dataset_params"],
                METHOD_LABELS.get(r["method"], r["method"]),
                r["method_hparams"],
                r["metric"],
            ],
            "mean": f"{r['mean']:.4g}" if _finite(r["mean"]) else "",
            "std": f"{r['std']:.4g}" if _finite(r["std"]) else "",
            "n": int(r["n"]),
        }
        for r in summary.to_dict("records")
    ]
    return {
        "rows": rows,
        "file": path.name,
        "trials": int(frame["trial_key"].nunique()),
        "epochs": int(frame["epoch"].max()) if len(frame) else 0,
    }


def _provenance_view(provenance: Mapping[str, Any] | None) -> list[dict[str, str]]:
    if not provenance:
        return []
    out = []
    for key, value in provenance.items():
        if isinstance(value, Mapping):
            text = ", ".join(f"{k} ({v})" if not isinstance(v, str) else f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple, set)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        out.append({"label": PROVENANCE_LABELS.get(key, key), "text": text or "unknown"})
    return out


def page_context(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the template shows, read from the report directory."""
    report_dir = Path(report_dir)
    tables = [_table_view(report_dir, number, path) for number, path in table_files(report_dir)]
    figures = []
    for number in (2, 4):
        png = report_dir / "figures" / f"figure{number}.png"
        figures.append(
            {"number": number, "image": _data_uri(png) if png.is_file() else "", "file": f"figures/figure{number}.png"}
        )
    files = sorted(
        p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*") if p.is_file() and p.name != PAGE
    )
    return {
        "title": "DebiasBench report",
        "report_dir": str(report_dir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tables": tables,
        "missing_total": sum(len(t["missing"]) for t in tables),
        "failed": _failed_view(report_dir),
        "figures": figures,
        "groups": _groups_view(report_dir),
        "diagnostics": _diagnostics_view(report_dir),
        "provenance": _provenance_view(provenance),
        "se_rule": SE_RULE,
        "files": files,
    }


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> str:
    return _environment().get_template(TEMPLATE).render(**page_context(Path(report_dir), provenance))


def write_index_html(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write report_dir/index.html from the files the report wrote there; returns its path.
    `provenance`: e.g. provenance_from_store(RESULTS); None leaves that section saying so."""
    report_dir = Path(report_dir)
    page = report_dir / PAGE
    text = render_page(report_dir, provenance)
    tmp = page.with_name(f".{PAGE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)
    return page
