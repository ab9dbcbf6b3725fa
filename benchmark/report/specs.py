"""What a report table is made of: the specification of a table (_Spec) and of its rows and columns,
and the built table (TableResult) that render, figures and the page read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

MISSING = "—"


@dataclass
class RowSpec:
    row_id: str
    dataset: str
    row: str  # the paper's row address (see benchmark.paper.values)
    setting: str
    labels: tuple[str, ...]
    latex_labels: tuple[str, ...]


@dataclass
class ColumnSpec:
    col_id: str
    metric: str
    column: str  # the paper's column address
    group: str | None  # which located trials fill it (a method, a train-set kind; None: all in the row)
    value_key: str  # summary field, or "class:<name>"
    block: str  # header group (e.g. "Unbiased"); "" for none
    label: str
    latex_label: str
    marker: str = ""  # supervision symbol
    method: str | None = None
    method_variant: str = ""
    derived: bool = False  # computed from other cells of the row (Table 1's relative drop)


@dataclass
class TableResult:
    number: int
    title: str
    tidy: pd.DataFrame
    row_headers: tuple[str, ...]
    rows: list[RowSpec]
    columns: list[ColumnSpec]
    bold: str | None  # "row": best within a row and block; "column": best within a column; None
    value_kind: str = "percent"  # "percent", "count" or "drop"
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    trials_used: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing_reason: str = ""  # why a table has no data at all
    stem: str = ""  # file stem and heading where the number names no paper table (comparison tables)
    label: str = ""

    @property
    def cells(self) -> pd.DataFrame:
        return self.tidy[self.tidy["kind"] != "repair_variant"] if len(self.tidy) else self.tidy

    @property
    def fillable(self) -> bool:
        return bool(len(self.tidy)) and bool((self.cells["n"] > 0).any())

    @property
    def missing_cells(self) -> list[tuple[str, str, bool]]:
        """(row text, column text, whether a failed trial is why) of every cell without data."""
        cells = self.cells
        if not len(cells):
            return []
        row_text = {r.row_id: " / ".join(x for x in r.labels if x) for r in self.rows}
        col_text = {c.col_id: (f"{c.block}: " if c.block else "") + c.label for c in self.columns}
        return [
            (row_text.get(r, r), col_text.get(c, c), bool(f))
            for r, c, f in cells[cells["n"] == 0][["row_id", "col_id", "n_failed"]].itertuples(index=False)
        ]


@dataclass
class _Spec:
    number: int
    title: str
    row_headers: tuple[str, ...]
    paper_rows: list[tuple[str, str]]  # (dataset, row) in the paper's order
    row_labels: Callable[[str, str], tuple[str, ...]]
    locate: Callable[[pd.Series], tuple[str, str] | None]  # trial -> (row, group) for its dataset
    metrics: tuple[str, ...] = ("unbiased",)
    methods: tuple[str, ...] = ()  # method columns (method_axis "column") or rows ("row")
    method_axis: str | None = "column"
    extra_methods: bool = False
    bold: str | None = "row"
    columns: list[ColumnSpec] | None = None  # fixed columns (tables 1 and 6)
    value_kind: str = "percent"
    row_latex: Callable[[str, str], tuple[str, ...]] | None = None


# The tidy CSV of every table (tableN.csv), in column order; written by cells, read by the page.
TIDY_COLUMNS = (
    "table",
    "dataset",
    "row",
    "setting",
    "metric",
    "column",
    "method",
    "method_variant",
    "repair_variant",
    "kind",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "n_failed",
    "paper_mean",
    "paper_std",
    "difference",
    "seeds",
    "epochs",
    "selector",
    "protocol",
    "trial_keys",
    "row_id",
    "col_id",
    "departures",
)
TIDY_NUMBER_COLUMNS = (
    "table",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "n_failed",
    "paper_mean",
    "paper_std",
    "difference",
)
TIDY_TEXT_COLUMNS = tuple(c for c in TIDY_COLUMNS if c not in TIDY_NUMBER_COLUMNS)
