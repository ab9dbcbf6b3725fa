"""Why a table cell differs from the paper: a hand-kept CSV that the results page reads, so every
cell beyond 2 standard errors of the paper carries its verdict and a link to the measurement.

One line per explanation, in any order: a cell takes the most specific line that matches it (a
line naming table and row beats one naming the table, which beats one for the column anywhere).

    table,row,column,verdict,link,summary
    *,*,group_dro,explained,results.md#...,its best epoch matches the paper: early stopping
    2,99,repair,open,results.md#...,stage-1 convergence does not close it at 99%

`table` is a table number or `*`; `row` the table's row (a ratio such as 99 or 99.5, a difficulty,
`color/digit`) or `*`, and only with a table; `column` the report's column key (`lff`, `group_dro`,
`biased_train`, ...); `verdict` one of VERDICTS; `link` where the measurement is written up, relative
to the page; `summary` one sentence.
The file is checked line by line, and a bad line is an error that names it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

FIELDS = ("table", "row", "column", "verdict", "link", "summary")
# explained: a measured cause; partly explained: a measurement bounds or accounts for part of the
# gap; open: no cause found yet (the summary says what was ruled out).
VERDICTS = ("explained", "partly explained", "open")


@dataclass(frozen=True)
class Explanation:
    table: int | None  # None: any table
    row: str | None  # None: any row
    column: str
    verdict: str
    link: str
    summary: str

    def matches(self, table: int, row: object, column: str) -> bool:
        return (
            self.column == column
            and (self.table is None or self.table == table)
            and (self.row is None or _canonical_row(self.row) == _canonical_row(str(row)))
        )

    @property
    def specificity(self) -> int:
        return (self.table is not None) + (self.row is not None)


def _canonical_row(row: str | None) -> object:
    """Rows compare as numbers where they are numbers (99 is 99.0), else as text."""
    try:
        return float(row) if row is not None else None
    except ValueError:
        return row


def load_explanations(path: str | Path) -> list[Explanation]:
    """Read and check the CSV; raise ValueError naming the file, line and fix on the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such explanations file; pass a CSV with the columns {','.join(FIELDS)}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise ValueError(f"{path}: the header must be {','.join(FIELDS)}, got {','.join(reader.fieldnames or [])}")
        explanations, seen = [], {}
        for line in reader:
            item = _parse(path, reader.line_num, line)
            where = (item.table, _canonical_row(item.row), item.column)
            if where in seen:
                raise ValueError(
                    f"{path}:{reader.line_num}: the same cells as line {seen[where]}; keep one of the two lines"
                )
            seen[where] = reader.line_num
            explanations.append(item)
    return explanations


def _parse(path: Path, number: int, line: dict) -> Explanation:
    if None in line or any(line.get(name) is None for name in FIELDS):
        raise ValueError(
            f"{path}:{number}: expected the {len(FIELDS)} fields {','.join(FIELDS)}; quote a summary with commas"
        )
    values = {name: line[name].strip() for name in FIELDS}
    table = None
    if values["table"] != "*":
        if not values["table"].isdigit():
            raise ValueError(f"{path}:{number}: table must be a table number or *, got {values['table']!r}")
        table = int(values["table"])
    if values["verdict"] not in VERDICTS:
        raise ValueError(f"{path}:{number}: verdict must be one of {', '.join(VERDICTS)}, got {values['verdict']!r}")
    for name in ("row", "column", "link", "summary"):
        if not values[name]:
            raise ValueError(f"{path}:{number}: {name} is empty")
    if table is None and values["row"] != "*":
        # A row means a ratio in one table and a difficulty in another.
        raise ValueError(f"{path}:{number}: a row needs its table; give the table number or make the row *")
    return Explanation(
        table=table,
        row=None if values["row"] == "*" else values["row"],
        column=values["column"],
        verdict=values["verdict"],
        link=values["link"],
        summary=values["summary"],
    )


def explain(explanations: list[Explanation], table: int, row: object, column: str) -> Explanation | None:
    """The most specific explanation of one cell, or None."""
    found = [item for item in explanations if item.matches(table, row, column)]
    return max(found, key=lambda item: item.specificity) if found else None
