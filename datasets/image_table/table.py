"""Reading the attribute table (CSV or Parquet, read from its bytes so its digest keys the cache)
and turning its columns into class indices; every problem names the row (and CSV line)."""

from __future__ import annotations

import difflib
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from debiasbench.datasets.image_table.errors import ImageTableError

TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass
class Table:
    frame: Any  # pandas.DataFrame
    path: Path
    kind: str  # "csv" or "parquet"
    digest: str  # sha256 of the file's bytes

    def row(self, i: int) -> str:
        """How a message names data row i (0-based): 1-based, plus the CSV line."""
        return f"{self.path.name} row {i + 1}" + (f" (line {i + 2})" if self.kind == "csv" else "")

    def column(self, name: str, parameter: str) -> list:
        if name not in self.frame.columns:
            columns = [str(c) for c in self.frame.columns]
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ImageTableError(
                f"the table {self.path} has no column {name!r} (parameter {parameter}).{hint} Its columns are: "
                f"{', '.join(repr(c) for c in columns)}; set {parameter}= to one of them"
            )
        return self.frame[name].tolist()


def read_table(path: Path) -> Table:
    import pandas as pd

    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ImageTableError(
            f"the table {path} has the extension {path.suffix!r}; write it as CSV (.csv) or Parquet (.parquet or .pq)"
        )
    data = path.read_bytes()
    try:
        if kind == "csv":
            # Every cell as text (no type guessing, no NaN for empty cells): values are parsed below.
            frame = pd.read_csv(
                io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True
            )
            frame.columns = [str(c).strip() for c in frame.columns]
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except (ValueError, OSError) as error:
        raise ImageTableError(
            f"cannot read the table {path} as {kind.upper()}: {error}. It must be a {kind.upper()} "
            "file with one header row naming the columns"
        ) from None
    if len(frame) == 0:
        raise ImageTableError(f"the table {path} has no rows; add one row per image")
    return Table(frame=frame.reset_index(drop=True), path=path, kind=kind, digest=hashlib.sha256(data).hexdigest())


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_integer(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    return None


def encode_attribute(table: Table, column: str, parameter: str) -> tuple[np.ndarray, list[str]]:
    """Class indices (int64) of a column and the class names: the distinct values in sorted order,
    numeric when every value is an integer (so 2 comes before 10), text otherwise."""
    values = table.column(column, parameter)
    for i, value in enumerate(values):
        if _missing(value):
            raise ImageTableError(
                f"{table.row(i)}: the {parameter} column {column!r} is empty; give every row a "
                "value (or remove the row)"
            )
    integers = [_as_integer(v) for v in values]
    if all(v is not None for v in integers):
        keys: list = integers
    else:
        keys = [v.strip() if isinstance(v, str) else str(v) for v in values]
    classes = sorted(set(keys))
    index = {k: c for c, k in enumerate(classes)}
    return np.array([index[k] for k in keys], dtype=np.int64), [str(k) for k in classes]
