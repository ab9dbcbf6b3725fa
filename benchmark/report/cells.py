"""The generic cell machinery of the report's tables: locating stored trials in a table, and each
cell's mean, std and n over seeds with the paper's value beside it (the specifications it builds from
are in benchmark.report.specs, the trial labels in benchmark.report.labels).

Trials that differ in more than the seed are never averaged together: configuration fields that vary
within a dataset (epochs, input scaling, ...) become a "setting" label on the row, and hyper-parameters
that vary within a method become a variant label on its column. REPAIR's cell is the best of its
variants (T/R/C/S), chosen per cell on the test set as the paper did (on the validation score under a
validation selector); every variant's own numbers stay in the tidy frame (kind "repair_variant")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from debiasbench.benchmark.paper.axes import METHOD_LABELS, METRIC_LABELS
from debiasbench.benchmark.paper.protocol import protocol_departures
from debiasbench.benchmark.paper.tables import PAPER_VALUES_FROM
from debiasbench.benchmark.paper.values import paper_cell
from debiasbench.benchmark.report.labels import (
    _describe,
    _method_order,
    _method_variants,
    _natural,
    _num,
    _settings,
    _supervision,
)
from debiasbench.benchmark.report.latex import latex_escape
from debiasbench.benchmark.report.selection import Selection
from debiasbench.benchmark.report.specs import TIDY_COLUMNS, TIDY_TEXT_COLUMNS, ColumnSpec, RowSpec, TableResult, _Spec
from debiasbench.benchmark.report.statistics import t_interval
from debiasbench.benchmark.supervision import SUPERVISION_SYMBOLS


def _aggregate(values: list[float]) -> tuple[float, float, int]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan, 0
    array = np.asarray(clean, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    return float(array.mean()), std, len(array)


def _value_of(trial: pd.Series, key: str, class_names: dict[int, str]) -> float:
    if key.startswith("class:"):
        name = key.split(":", 1)[1]
        for index, stats in trial["classes"].items():
            if class_names.get(index) == name:
                return 100.0 * stats.get("accuracy", math.nan)
        return math.nan
    return 100.0 * _num(trial[key])


def _build(spec: _Spec, sel: Selection, class_names: dict[int, str] | None = None) -> TableResult:
    class_names = class_names or {}
    completed = sel.summaries.assign(_status="completed")
    candidates = pd.concat([completed, sel.failed.assign(_status="failed")], ignore_index=True)
    located = []
    for _, trial in candidates.iterrows():
        hit = spec.locate(trial)
        if hit is not None:
            located.append((trial, hit))
    frame = pd.DataFrame([t for t, _ in located]).reset_index(drop=True) if located else candidates.iloc[0:0].copy()
    frame["_row"] = [h[0] for _, h in located]
    frame["_group"] = [h[1] for _, h in located]
    frame["_setting"] = _settings(frame) if len(frame) else []
    frame["_variant"] = _method_variants(frame) if len(frame) else []
    if len(frame) and spec.method_axis == "row":
        frame["_row"] = [r + (f" [{v}]" if v else "") for r, v in zip(frame["_row"], frame["_variant"])]
    if len(frame) and spec.method_axis == "column":
        frame["_group"] = [g + (f" [{v}]" if v else "") for g, v in zip(frame["_group"], frame["_variant"])]

    # Rows: the paper's, once per setting seen for their dataset, then rows found only in the store.
    settings_by_dataset: dict[str, list[str]] = {}
    for dataset, setting in zip(frame.get("dataset", []), frame.get("_setting", [])):
        settings_by_dataset.setdefault(dataset, [])
        if setting not in settings_by_dataset[dataset]:
            settings_by_dataset[dataset].append(setting)
    row_keys: list[tuple[str, str, str]] = []
    for dataset, row in spec.paper_rows:
        for setting in sorted(settings_by_dataset.get(dataset, [""])):
            row_keys.append((dataset, row, setting))
    known = set(row_keys)
    extra = sorted(
        {(d, r, s) for d, r, s in zip(frame.get("dataset", []), frame.get("_row", []), frame.get("_setting", []))}
        - known,
        key=lambda k: (k[0], _natural(k[1]), k[2]),
    )
    for key in extra:  # keep a dataset's extra rows right after its paper rows
        positions = [i for i, k in enumerate(row_keys) if k[0] == key[0]]
        row_keys.insert(positions[-1] + 1 if positions else len(row_keys), key)
    any_setting = any(s for _, _, s in row_keys)
    rows = []
    for dataset, row, setting in row_keys:
        labels = spec.row_labels(dataset, row)
        latex = spec.row_latex(dataset, row) if spec.row_latex else tuple(latex_escape(x) for x in labels)
        if any_setting:
            labels, latex = (*labels, setting), (*latex, latex_escape(setting))
        rows.append(RowSpec("|".join((dataset, row, setting)), dataset, row, setting, labels, latex))

    columns = spec.columns if spec.columns is not None else _method_columns(spec, frame, sel)
    tidy = _cells(spec, rows, columns, frame, sel, class_names)
    used = frame[frame["_status"] == "completed"] if len(frame) else frame
    failed = [_describe(t) for _, t in frame[frame["_status"] == "failed"].iterrows()] if len(frame) else []
    row_headers = (*spec.row_headers, "Setting") if any_setting else spec.row_headers
    return TableResult(
        spec.number,
        spec.title,
        tidy,
        row_headers,
        rows,
        columns,
        spec.bold,
        spec.value_kind,
        failed=failed,
        trials_used=used,
    )


def _method_columns(spec: _Spec, frame: pd.DataFrame, sel: Selection) -> list[ColumnSpec]:
    groups = sorted(set(frame["_group"])) if len(frame) else []
    found = {g.split(" [", 1)[0] for g in groups}
    methods = _method_order(found if spec.extra_methods else set(), spec.methods)
    columns = []
    for metric in spec.metrics:
        block = METRIC_LABELS[metric] if len(spec.metrics) > 1 else ""
        for method in methods:
            variants = sorted({g for g in groups if g.split(" [", 1)[0] == method}, key=lambda g: (g != method, g))
            for group in variants or [method]:
                variant = group[len(method) + 2 : -1] if group != method else ""
                label = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
                supervision = _supervision(sel.summaries if len(sel.summaries) else sel.failed, method)
                columns.append(
                    ColumnSpec(
                        col_id=f"{metric}|{group}",
                        metric=metric,
                        column=method,
                        group=group,
                        value_key=metric,
                        block=block,
                        label=label,
                        latex_label=latex_escape(label),
                        marker=SUPERVISION_SYMBOLS.get(supervision, ""),
                        method=method,
                        method_variant=variant,
                    )
                )
    return columns


def _cells(
    spec: _Spec,
    rows: list[RowSpec],
    columns: list[ColumnSpec],
    frame: pd.DataFrame,
    sel: Selection,
    class_names: dict[int, str],
) -> pd.DataFrame:
    out = []
    by_row: dict[tuple[str, str, str], pd.DataFrame] = {}
    if len(frame):
        for key, part in frame.groupby(["dataset", "_row", "_setting"], sort=False):
            by_row[key] = part
    use_validation = sel.selector.split == "valid"
    for row in rows:
        part = by_row.get((row.dataset, row.row, row.setting), frame.iloc[0:0])
        computed: dict[str, dict] = {}
        for col in columns:
            if col.derived:
                continue
            trials = part if col.group is None else part[part["_group"] == col.group]
            done = trials[trials["_status"] == "completed"]
            n_failed = int((trials["_status"] == "failed").sum())
            base = {
                "table": spec.number,
                "row_id": row.row_id,
                "col_id": col.col_id,
                "dataset": row.dataset,
                "row": row.row,
                "setting": row.setting,
                "metric": col.metric,
                "column": col.column,
                "method": col.method or "",
                "method_variant": col.method_variant,
            }
            if col.method == "repair" and "hparams" in done and len(done):
                cell, variant_rows = _repair_cell(done, col, class_names, use_validation)
                out.extend({**base, **v, "kind": "repair_variant", "n_failed": 0} for v in variant_rows)
            else:
                cell = _cell_stats(done, col, class_names)
            cell = {**base, **cell, "kind": "cell", "n_failed": n_failed}
            computed[col.col_id] = cell
            out.append(cell)
        for col in columns:
            if col.derived:
                cell = _relative_drop(row, col, computed)
                out.append(cell)
    tidy = pd.DataFrame(out)
    if tidy.empty:
        return tidy
    source = PAPER_VALUES_FROM.get(spec.number, {})
    paper = [
        paper_cell(source.get(m, spec.number), d, r, m, c)
        for d, r, m, c in tidy[["dataset", "row", "metric", "column"]].itertuples(index=False)
    ]
    tidy["paper_mean"] = [p[0] if p else math.nan for p in paper]
    tidy["paper_std"] = [p[1] if p and p[1] is not None else math.nan for p in paper]
    tidy["difference"] = tidy["mean"] - tidy["paper_mean"]
    order = list(TIDY_COLUMNS)
    for name in order:
        if name not in tidy:
            tidy[name] = "" if name in TIDY_TEXT_COLUMNS else math.nan
    tidy["departures"] = tidy["departures"].fillna("").astype(str)
    # Trials off the paper's protocol are no reproduction: the paper's value stays for reference,
    # but no difference is computed, so nothing is flagged against it.
    tidy.loc[tidy["departures"] != "", "difference"] = math.nan
    tidy["selector"] = sel.selector.name
    tidy["protocol"] = sel.protocol
    return tidy[order]


def _cell_stats(done: pd.DataFrame, col: ColumnSpec, class_names: dict[int, str]) -> dict[str, Any]:
    done = done.sort_values("trial_seed", kind="mergesort") if "trial_seed" in done else done  # seeds in order
    values = [_value_of(t, col.value_key, class_names) for _, t in done.iterrows()]
    mean, std, n = _aggregate(values)
    kept = [t for (_, t), v in zip(done.iterrows(), values) if not math.isnan(v)]
    ci_low, ci_high = t_interval(values)
    return {
        "mean": mean,
        "std": std,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "n": n,
        "departures": trial_departures(kept),
        "seeds": ";".join(str(int(t["trial_seed"])) for t in kept),
        "epochs": ";".join(str(int(t["epoch"])) for t in kept),
        "trial_keys": ";".join(t["trial_key"] for t in kept),
    }


def trial_departures(trials: list[pd.Series]) -> str:
    """'; '-joined departures from the paper's protocol of any of the trials ('' for none)."""
    found: dict[str, None] = {}
    for t in trials:
        epochs = t.get("epochs")
        epochs = int(epochs) if epochs is not None and not pd.isna(epochs) else None
        cfg = t.get("cfg")
        defaults = cfg.get("method_defaults") if isinstance(cfg, dict) else None
        for text in protocol_departures(t["dataset"], t["method"], epochs, t["params"], t["hparams"], defaults):
            found[text] = None
    return "; ".join(found)


def _repair_cell(
    done: pd.DataFrame, col: ColumnSpec, class_names: dict[int, str], use_validation: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """REPAIR's cell: the best variant by the cell's own test mean (the paper's choice) or, under a
    validation selector, by the mean validation score; plus every variant's own numbers."""
    variants = [str(h.get("variant", "")) for h in done["hparams"]]
    stats = []
    for variant in sorted(set(variants)):
        part = done[[v == variant for v in variants]]
        cell = _cell_stats(part, col, class_names)
        score = float(np.nanmean(part["score"])) if use_validation and part["score"].notna().any() else cell["mean"]
        stats.append(({**cell, "repair_variant": variant}, score))
    ranked = [s for s in stats if not math.isnan(s[1])]
    best = max(ranked, key=lambda s: s[1])[0] if ranked else stats[0][0]
    return dict(best), [s[0] for s in stats]


def _relative_drop(row: RowSpec, col: ColumnSpec, computed: dict[str, dict]) -> dict[str, Any]:
    biased = computed.get("unbiased|biased_train", {})
    unbiased = computed.get("unbiased|unbiased_train", {})
    mean = math.nan
    if biased.get("n") and unbiased.get("n") and unbiased["mean"]:
        mean = 100.0 * (biased["mean"] - unbiased["mean"]) / unbiased["mean"]
    n = min(biased.get("n", 0), unbiased.get("n", 0))
    return {
        "table": 1,
        "row_id": row.row_id,
        "col_id": col.col_id,
        "dataset": row.dataset,
        "row": row.row,
        "setting": row.setting,
        "metric": col.metric,
        "column": col.column,
        "method": "vanilla",
        "method_variant": "",
        "kind": "cell",
        "mean": mean,
        "std": math.nan,
        "n": n if not math.isnan(mean) else 0,
        "n_failed": biased.get("n_failed", 0) + unbiased.get("n_failed", 0),
        "seeds": "",
        "epochs": "",
        "trial_keys": ";".join(x for x in (biased.get("trial_keys", ""), unbiased.get("trial_keys", "")) if x),
    }
