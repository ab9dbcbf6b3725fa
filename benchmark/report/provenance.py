"""The store's provenance for the report page (code versions, torch, devices, hosts, trials per
status), and `python -m debiasbench.benchmark.report.provenance REPORT_DIR` to (re)write a report's index.html."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from debiasbench.benchmark.report.page import write_index_html
from debiasbench.benchmark.store import ResultStore

_PROVENANCE_FIELDS = (
    "code_version",
    "torch_version",
    "cuda_version",
    "device",
    "hostname",
    "cpu",  # absent from files written before it was recorded: "unknown"
    "selection_protocol",
    "finished_at",
)


def provenance_from_store(results: str | Path) -> dict[str, Any]:
    """The page's provenance from a result store: per field the distinct values with their number
    of trials (code version, torch, CUDA, devices, hosts, protocols), trials per status, and the
    first and last finish time. Reads one row per trial file; never writes."""
    import pyarrow.parquet as pq

    store = ResultStore(results)
    values: dict[str, Counter] = {name: Counter() for name in _PROVENANCE_FIELDS}
    statuses: Counter = Counter()
    finished = []
    for path in store.unique_files():
        with store.fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = [name for name in ("status", *_PROVENANCE_FIELDS) if name in parquet.schema_arrow.names]
            row = next(parquet.iter_batches(batch_size=1, columns=present)).to_pylist()[0]
        statuses[row.get("status") or "unknown"] += 1
        for name in _PROVENANCE_FIELDS:
            if name == "finished_at":
                if row.get(name):
                    finished.append(row[name])
                continue
            values[name][row.get(name) or "unknown"] += 1
    out: dict[str, Any] = {
        "results": str(results),
        "trials": sum(statuses.values()),
        "status": dict(sorted(statuses.items())),
    }
    for name in _PROVENANCE_FIELDS[:-1]:
        out[name] = dict(values[name].most_common())
    if finished:
        out["finished_at"] = [min(finished), max(finished)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.benchmark.report.provenance",
        description="Write REPORT_DIR/index.html from a written report.",
    )
    parser.add_argument("report_dir", type=Path, help="the report's output directory (RESULTS/report)")
    parser.add_argument(
        "--results",
        help="result store for the provenance section (default: the report directory's parent if it holds trials/)",
    )
    args = parser.parse_args(argv)
    if not args.report_dir.is_dir():
        print(
            f"error: {args.report_dir} is not a directory; run python -m debiasbench.benchmark.report first",
            file=sys.stderr,
        )
        return 2
    results = args.results
    if results is None and (args.report_dir.resolve().parent / "trials").is_dir():
        results = str(args.report_dir.resolve().parent)
    provenance = provenance_from_store(results) if results else None
    print(write_index_html(args.report_dir, provenance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
