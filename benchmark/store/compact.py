"""A compact copy of a result store: only the rows the paper's tables and figures read, so a
reference result set ships inside the repository (a few MB for a whole dataset's share of the
paper grid) and the report regenerates every table from it in seconds.

Kept: every evaluation row except per-group cells (subset "group") before the final epoch, every
training-loss row (Figure 2), the epoch timings and the methods' diagnostics. Dropped: per-sample
predictions, and per-group accuracies of intermediate epochs (the final epoch's are kept, so the
per-group view of a trial still works). Records are rewritten through the store's own write path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq

from debiasbench.benchmark.store.schema import _META_KEY, _META_STATUS, METRIC_FIELDS, RUN_INFO, TrialRecord
from debiasbench.benchmark.store.store import ResultStore


@dataclass
class CompactReport:
    written: list[str] = field(default_factory=list)
    rows_before: int = 0
    rows_after: int = 0


def compact_store(source: str, into: str, statuses: tuple[str, ...] = ("completed", "failed")) -> CompactReport:
    """Copy the trials of `source` with the given statuses into `into`, keeping only the rows the
    tables and figures need (see the module docstring)."""
    src, dst = ResultStore(source), ResultStore(into)
    src.require_exists()  # before anything is created at the destination
    dst.ensure_writable(option="--into")
    report = CompactReport()
    for path, meta in src.valid_files().items():
        status = meta[_META_STATUS].decode()
        if status not in statuses:
            continue
        table = pq.read_table(path, filesystem=src.fs)
        report.rows_before += table.num_rows
        last = pc.max(table["epoch"]).as_py()
        if status == "completed" and last is not None:
            keep = pc.or_(pc.not_equal(table["subset"], "group"), pc.equal(table["epoch"], last))
            table = table.filter(pc.fill_null(keep, True))
        report.rows_after += table.num_rows
        first = table.slice(0, 1).to_pylist()[0]
        metrics = {name: table[name].to_pylist() for name in METRIC_FIELDS} if status == "completed" else {}
        key = meta[_META_KEY].decode()
        dst.write_trial(
            TrialRecord(
                trial=json.loads(first["config"]),
                key=key,
                status=status,
                metrics=metrics,
                error=first["error"],
                info={name: first.get(name) for name in RUN_INFO},  # raw_data: absent in old files
            )
        )
        report.written.append(key)
    return report
