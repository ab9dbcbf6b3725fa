"""A comparison table for any store (torch-free): one per dataset and setting, methods as rows,
unbiased / bias-aligned / bias-conflicting / worst-group accuracy as columns (per-class accuracy
where the dataset has no bias labels), mean ± std, 95% t interval and n over seeds. It needs no
paper table, so own-data trials (`--grid user --datasets image_table`) get one too; the report's
statistics (pairwise.csv, ranking.csv) are computed on these cells.

Rows: the table axes that vary within the dataset (ratio, difficulty, target, ...) as a condition,
then each method (hyper-parameters that vary within a method as a variant label). REPAIR is the
best of its variants as in the paper's tables (chosen on the test set under the paper's selector;
the caption says so)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.paper.axes import DATASET_LABELS, METHOD_LABELS
from debiasbench.benchmark.report.cells import _cell_stats, _repair_cell
from debiasbench.benchmark.report.labels import (
    _TABLE_PARAMS,
    _method_order,
    _method_variants,
    _settings,
    _varying_label,
)
from debiasbench.benchmark.report.latex import latex_escape, markdown_escape
from debiasbench.benchmark.report.selection import Selection
from debiasbench.benchmark.report.specs import TIDY_COLUMNS, ColumnSpec, RowSpec, TableResult

COMPARISON_METRICS = ("unbiased", "aligned", "conflicting", "worst_group")
COMPARISON_LABELS = {
    "unbiased": "Unbiased",
    "aligned": "Bias-aligned",
    "conflicting": "Bias-conflicting",
    "worst_group": "Worst-group",
}
COMPARISON_TITLE = "comparison of methods"


def comparison_stem(dataset: str, index: int) -> str:
    """File stem: comparison_<dataset> (suffixed _2, _3, ... for further settings of the dataset)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)
    return f"comparison_{safe}" + (f"_{index + 1}" if index else "")


def _conditions(frame: pd.DataFrame) -> list[str]:
    """Per trial, 'ratio=95.0, ...' of the table axes that vary among the trials of its dataset."""
    out = [""] * len(frame)
    for _, index in frame.groupby("dataset").indices.items():
        records = [{k: v for k, v in frame.iloc[i]["params"].items() if k in _TABLE_PARAMS} for i in index]
        for i, label in zip(index, _varying_label(records)):
            out[i] = label
    return out


def read_class_names(dataset: str, params: dict, data_root: str | os.PathLike | None) -> dict[int, str]:
    """The class names of an image_table trial, read as the dataset reads them: the target column's
    distinct values in sorted order (numerically when all are integers). {} when the table cannot be
    read (the caller then prints "class i")."""
    if dataset != "image_table" or not params.get("table") or not params.get("target"):
        return {}
    root = Path(data_root or os.environ.get("DEBIAS_DATA_ROOT") or "data")
    folder = Path(str(params.get("root", "")))
    folder = folder if folder.is_absolute() else root / folder
    base = folder if folder.is_dir() else folder.parent
    path = base / str(params["table"])
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        values = table[str(params["target"])].dropna()
    except (OSError, KeyError, ValueError):
        return {}
    texts = [str(v).strip() for v in values]
    try:
        keys: list = sorted({int(t) for t in texts})
    except ValueError:
        keys = sorted(set(texts))
    return {i: str(k) for i, k in enumerate(keys)}


def _class_names(frame: pd.DataFrame, data_root: str | os.PathLike | None) -> dict[int, str]:
    names: dict[int, str] = {}
    for _, trial in frame.iterrows():
        names = names or read_class_names(trial["dataset"], trial["params"], data_root)
    indices = sorted({int(i) for classes in frame["classes"] for i in classes})
    return {i: names.get(i, f"class {i}") for i in indices}


def comparison_tables(sel: Selection, data_root: str | os.PathLike | None = None) -> list[tuple[str, TableResult]]:
    """(file stem, table) per dataset and setting of the selection's completed trials."""
    frame = sel.summaries
    if not len(frame):
        return []
    frame = frame.assign(
        _setting=_settings(frame), _variant=_method_variants(frame), _condition=_conditions(frame)
    ).reset_index(drop=True)
    out = []
    for dataset in sorted(set(frame["dataset"])):
        part = frame[frame["dataset"] == dataset]
        for index, setting in enumerate(sorted(set(part["_setting"]))):
            trials = part[part["_setting"] == setting]
            table = _table(dataset, setting, trials, sel, data_root)
            table.stem = comparison_stem(dataset, index)
            table.label = "Comparison table"
            out.append((table.stem, table))
    return out


def _table(
    dataset: str, setting: str, trials: pd.DataFrame, sel: Selection, data_root: str | os.PathLike | None
) -> TableResult:
    has_bias = trials[["aligned", "conflicting"]].notna().to_numpy().any()
    metrics = [m for m in COMPARISON_METRICS if trials[m].notna().any()] if has_bias else ["unbiased"]
    class_names = {} if has_bias else _class_names(trials, data_root)
    columns = [ColumnSpec(f"{m}|{m}", m, m, None, m, "", COMPARISON_LABELS[m], COMPARISON_LABELS[m]) for m in metrics]
    columns += [
        ColumnSpec(
            f"class|{name}",
            "class",
            name,
            None,
            f"class:{name}",
            "Per class",
            markdown_escape(name),
            latex_escape(name),
        )
        for name in class_names.values()
    ]
    methods = _method_order(set(trials["method"]), ())
    with_condition = any(trials["_condition"])
    rows, tidy = [], []
    conditions = sorted(set(trials["_condition"]), key=_condition_key)
    for condition in conditions:
        at = trials[trials["_condition"] == condition]
        for method in methods:
            for variant in sorted(set(at.loc[at["method"] == method, "_variant"])):
                done = at[(at["method"] == method) & (at["_variant"] == variant)]
                label = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
                labels = ((condition,) if with_condition else ()) + (label,)
                row_id = "|".join((dataset, condition, setting, method, variant))
                rows.append(
                    RowSpec(row_id, dataset, condition, setting, labels, tuple(latex_escape(x) for x in labels))
                )
                for col in columns:
                    tidy += _cells(row_id, dataset, condition, setting, method, variant, col, done, class_names, sel)
    frame = pd.DataFrame(tidy)
    for name in TIDY_COLUMNS:
        if name not in frame:
            frame[name] = math.nan if name in ("paper_mean", "paper_std", "difference") else ""
    title = f"{DATASET_LABELS.get(dataset, dataset)}: {COMPARISON_TITLE}" + (f" ({setting})" if setting else "")
    result = TableResult(
        0,
        title,
        frame[list(TIDY_COLUMNS)],
        (("Condition",) if with_condition else ()) + ("Method",),
        rows,
        columns,
        "column",
        trials_used=trials,
    )
    if not has_bias:
        result.notes.append("no bias labels: per-class accuracy instead of aligned/conflicting/worst-group")
    return result


def _condition_key(text: str) -> tuple:
    numbers = [float(x) for x in re.findall(r"=(-?\d+(?:\.\d+)?)", text)]
    return (numbers, text)


def _cells(
    row_id: str,
    dataset: str,
    condition: str,
    setting: str,
    method: str,
    variant: str,
    col: ColumnSpec,
    done: pd.DataFrame,
    class_names: dict[int, str],
    sel: Selection,
) -> list[dict]:
    base = {
        "table": 0,
        "row_id": row_id,
        "col_id": col.col_id,
        "dataset": dataset,
        "row": condition,
        "setting": setting,
        "metric": col.metric,
        "column": col.column,
        "method": method,
        "method_variant": variant,
        "n_failed": 0,
        "selector": sel.selector.name,
        "protocol": sel.protocol,
    }
    if method == "repair" and len(done):
        cell, variant_rows = _repair_cell(done, col, class_names, sel.selector.split == "valid")
        return [{**base, **cell, "kind": "cell"}] + [{**base, **v, "kind": "repair_variant"} for v in variant_rows]
    return [{**base, **_cell_stats(done, col, class_names), "kind": "cell"}]
