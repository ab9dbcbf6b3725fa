"""Tables 1-10 of the paper as pure functions of a selection (torch-free). Which trials fill a
table comes from its specification in `benchmark.paper.tables`, the same one the grids derive
their trials from."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pandas as pd

from debiasbench.benchmark.paper.axes import (
    BAR_CLASSES,
    CELEBA_BIAS,
    CELEBA_LABELS,
    CELEBA_TARGETS,
    DATASET_LABELS,
    EXTENDED_TABLE,
    MALIGNANT,
    METHOD_LABELS,
    PAPER_METHODS,
    difficulty_row,
    ratio_row,
)
from debiasbench.benchmark.paper.tables import ALL_TABLES, PAPER_TABLES, PaperTable
from debiasbench.benchmark.paper.values import paper_cell
from debiasbench.benchmark.report.bar import bar_class_names, bar_counts
from debiasbench.benchmark.report.cells import _build
from debiasbench.benchmark.report.labels import (
    _difficulty,
    _is_main_direction,
    _method_order,
    _ratio,
    _supervision,
    _target,
)
from debiasbench.benchmark.report.latex import LATEX_MARKERS, dataset_latex, latex_escape
from debiasbench.benchmark.report.loading import ReportError
from debiasbench.benchmark.report.selection import Selection
from debiasbench.benchmark.report.specs import ColumnSpec, RowSpec, TableResult, _Spec
from debiasbench.benchmark.supervision import SUPERVISION_SYMBOLS


def _controlled_labels(dataset: str, row: str) -> tuple[str, ...]:
    return (DATASET_LABELS.get(dataset, dataset), row)


def _controlled_latex(dataset: str, row: str) -> tuple[str, ...]:
    return (dataset_latex(dataset), latex_escape(row))


def _locator(
    datasets: tuple[str, ...],
    methods: tuple[str, ...],
    extra: bool,
    keep: Callable[[str, dict], bool],
    row_of: Callable[[str, dict], str],
):
    def locate(trial: pd.Series) -> tuple[str, str] | None:
        dataset, method, params = trial["dataset"], trial["method"], trial["params"]
        if dataset not in datasets or not (method in methods or (extra and method not in PAPER_METHODS)):
            return None
        if not keep(dataset, params):
            return None
        return row_of(dataset, params), method

    return locate


def _in_axes(table: PaperTable, params: dict) -> bool:
    """Whether a trial's ratio and difficulty are ones the table's specification covers."""
    return _ratio(params) in {ratio_row(r) for r in table.ratios} and _difficulty(params) in {
        difficulty_row(d) for d in table.difficulties
    }


def table_1(sel: Selection) -> TableResult:
    table = PAPER_TABLES[1]

    def locate(trial: pd.Series) -> tuple[str, str] | None:
        dataset, params = trial["dataset"], trial["params"]
        if trial["method"] not in table.methods or dataset not in table.datasets:
            return None
        unbiased_train = bool(params.get("unbiased_train", False))
        # An unbiased training set has no ratio (resolution stores it as 10%): only the difficulty counts.
        if _difficulty(params) not in {difficulty_row(d) for d in table.difficulties}:
            return None
        if not unbiased_train and not _in_axes(table, params):
            return None
        target = _target(dataset, params)
        pair = MALIGNANT[dataset]
        if target not in pair:
            return None
        bias = pair[1] if target == pair[0] else pair[0]
        return f"{target}/{bias}", "unbiased_train" if params.get("unbiased_train", False) else "biased_train"

    rows = [(d, r) for d in table.datasets for r in (f"{MALIGNANT[d][1]}/{MALIGNANT[d][0]}", "/".join(MALIGNANT[d]))]
    columns = [
        ColumnSpec(
            "unbiased|biased_train",
            "unbiased",
            "biased_train",
            "biased_train",
            "unbiased",
            "",
            "Accuracy",
            "Accuracy",
            method="vanilla",
        ),
        ColumnSpec(
            "unbiased|unbiased_train",
            "unbiased",
            "unbiased_train",
            "unbiased_train",
            "unbiased",
            "",
            "Accuracy*",
            "Accuracy$^*$",
            method="vanilla",
        ),
        ColumnSpec(
            "relative_drop|relative_drop",
            "relative_drop",
            "relative_drop",
            None,
            "",
            "",
            "Relative drop",
            "Relative drop",
            derived=True,
        ),
    ]

    def labels(dataset: str, row: str) -> tuple[str, ...]:
        target, bias = row.split("/")
        return (DATASET_LABELS.get(dataset, dataset), target.title(), bias.title())

    def latex(dataset: str, row: str) -> tuple[str, ...]:
        return (dataset_latex(dataset), *(latex_escape(x) for x in labels(dataset, row)[1:]))

    spec = _Spec(
        1,
        table.title,
        ("Dataset", "Target", "Bias"),
        rows,
        labels,
        locate,
        method_axis=None,
        bold=None,
        columns=columns,
        row_latex=latex,
    )
    return _build(spec, sel)


def _axis_table(number: int, sel: Selection) -> TableResult:
    """Tables whose rows are a dataset's ratios (2, 3, 10), difficulties (8, 9) or the dataset alone (4)."""
    table = ALL_TABLES[number]
    if table.rows == "ratio":
        paper_rows = [(d, ratio_row(r)) for d in table.datasets for r in table.ratios]
        row_of, headers = (lambda d, p: _ratio(p)), ("Dataset", "Ratio (%)")
        labels, latex = _controlled_labels, _controlled_latex
    elif table.rows == "difficulty":
        paper_rows = [(d, difficulty_row(x)) for d in table.datasets for x in table.difficulties]
        row_of, headers = (lambda d, p: _difficulty(p)), ("Dataset", "Difficulty")
        labels, latex = _controlled_labels, _controlled_latex
    else:  # one row per dataset at the table's single ratio and difficulty
        only = ratio_row(table.ratios[0])
        paper_rows = [(d, only) for d in table.datasets]
        row_of, headers = (lambda d, p: only), ("Dataset",)
        labels, latex = (lambda d, r: (DATASET_LABELS.get(d, d),)), (lambda d, r: (dataset_latex(d),))
    # A ratio table covers every ratio at the table's difficulty; a difficulty table every
    # difficulty at its ratio: the other axis is fixed by the specification.
    keep = lambda d, p: _in_axes(table, p) and _is_main_direction(d, p)  # noqa: E731
    spec = _Spec(
        number,
        table.title,
        headers,
        paper_rows,
        labels,
        _locator(table.datasets, table.methods, table.extra_methods, keep, row_of),
        metrics=table.metrics,
        methods=table.methods,
        extra_methods=table.extra_methods,
        row_latex=latex,
    )
    return _build(spec, sel)


def _celeba_label(name: str) -> str:
    return CELEBA_LABELS.get(name, name)


def table_5(sel: Selection) -> TableResult:
    table = PAPER_TABLES[5]

    def locate(trial: pd.Series) -> tuple[str, str] | None:
        method, params = trial["method"], trial["params"]
        if trial["dataset"] not in table.datasets or not (method in table.methods or method not in PAPER_METHODS):
            return None
        return f"{params.get('target', CELEBA_TARGETS[0])}/{params.get('bias', CELEBA_BIAS)}", method

    spec = _Spec(
        5,
        table.title,
        ("Target attribute", "Bias"),
        [(d, f"{t}/{CELEBA_BIAS}") for d in table.datasets for t in CELEBA_TARGETS],
        lambda d, r: tuple(_celeba_label(x) for x in r.split("/", 1)),
        locate,
        metrics=table.metrics,
        methods=table.methods,
        extra_methods=table.extra_methods,
    )
    return _build(spec, sel)


def table_6(sel: Selection, class_names: dict[int, str], class_note: str = "") -> TableResult:
    table = PAPER_TABLES[6]
    methods = table.methods
    names = list(BAR_CLASSES) + sorted(set(class_names.values()) - set(BAR_CLASSES))

    def locate(trial: pd.Series) -> tuple[str, str] | None:
        method = trial["method"]
        if trial["dataset"] not in table.datasets or not (method in methods or method not in PAPER_METHODS):
            return None
        return method, method

    found = {
        m
        for frame in (sel.summaries, sel.failed)
        if len(frame)
        for m in frame.loc[frame["dataset"] == "bar", "method"]
        if m not in PAPER_METHODS
    }
    order = _method_order(found, methods)
    supervision_frame = sel.summaries if len(sel.summaries) else sel.failed

    def labels(dataset: str, row: str) -> tuple[str, ...]:
        method, _, variant = row.partition(" [")
        marker = SUPERVISION_SYMBOLS.get(_supervision(supervision_frame, method), "")
        return (f"{METHOD_LABELS.get(method, method)}{' [' + variant if variant else ''} {marker}".strip(),)

    def latex(dataset: str, row: str) -> tuple[str, ...]:
        method, _, variant = row.partition(" [")
        symbol = LATEX_MARKERS.get(SUPERVISION_SYMBOLS.get(_supervision(supervision_frame, method), ""), "")
        text = latex_escape(METHOD_LABELS.get(method, method) + (" [" + variant if variant else ""))
        return (f"{text} {symbol}".strip(),)

    columns = [
        ColumnSpec(
            f"accuracy|{name}", "accuracy", name, None, f"class:{name}", "", name.title(), latex_escape(name.title())
        )
        for name in names
    ]
    columns.append(ColumnSpec("accuracy|average", "accuracy", "average", None, "unbiased", "", "Average", "Average"))
    spec = _Spec(
        6,
        table.title,
        ("Method",),
        [("bar", m) for m in order],
        labels,
        locate,
        method_axis="row",
        bold="column",
        columns=columns,
        row_latex=latex,
    )
    result = _build(spec, sel, class_names)
    if class_note:
        result.notes.append(class_note)
    return result


def table_7(data_root: str | os.PathLike | None) -> TableResult:
    try:
        counts, path = bar_counts(data_root)
    except ReportError as error:
        return TableResult(
            7,
            "BAR: number of images per class",
            pd.DataFrame(),
            ("Split",),
            [],
            [],
            None,
            "count",
            missing_reason=str(error),
        )
    names = list(BAR_CLASSES) + sorted({n for split in counts.values() for n in split} - set(BAR_CLASSES))
    columns = [ColumnSpec(f"count|{n}", "count", n, None, n, "", n.title(), latex_escape(n.title())) for n in names]
    columns.append(ColumnSpec("count|total", "count", "total", None, "total", "", "Total", "Total"))
    rows = [
        RowSpec(f"bar|{s}||", "bar", s, "", (label,), (label,))
        for s, label in (("train", "Training"), ("test", "Evaluation"))
    ]
    out = []
    for row in rows:
        split = counts[row.row]
        for col in columns:
            value = float(sum(split.values())) if col.column == "total" else float(split.get(col.column, 0))
            paper = paper_cell(7, "bar", row.row, "count", col.column)
            out.append(
                {
                    "table": 7,
                    "dataset": "bar",
                    "row": row.row,
                    "setting": "",
                    "metric": "count",
                    "column": col.column,
                    "method": "",
                    "method_variant": "",
                    "repair_variant": "",
                    "kind": "cell",
                    "mean": value,
                    "std": math.nan,
                    "n": 1,
                    "n_failed": 0,
                    "paper_mean": paper[0] if paper else math.nan,
                    "paper_std": math.nan,
                    "difference": value - paper[0] if paper else math.nan,
                    "seeds": "",
                    "epochs": "",
                    "selector": "",
                    "protocol": "",
                    "trial_keys": "",
                    "row_id": row.row_id,
                    "col_id": col.col_id,
                }
            )
    result = TableResult(7, PAPER_TABLES[7].title, pd.DataFrame(out), ("Split",), rows, columns, None, "count")
    result.notes.append(f"computed from {path}")
    return result


def build_table(number: int, sel: Selection, data_root: str | os.PathLike | None = None) -> TableResult:
    """One paper table from a selection (Table 7 reads the BAR metadata under the data root)."""
    if number == 7:
        return table_7(data_root)
    if number == 6:
        test_counts = None
        try:
            test_counts = bar_counts(data_root)[0]["test"]
        except ReportError:
            pass  # the paper's published counts identify the classes just as well
        names, note = bar_class_names(sel.summaries, test_counts)
        return table_6(sel, names, note)
    if number not in ALL_TABLES:
        raise ReportError(
            f"unknown table {number}; the paper has tables 1-10, and {EXTENDED_TABLE} is the extended comparison"
        )
    return table_1(sel) if number == 1 else table_5(sel) if number == 5 else _axis_table(number, sel)
