"""One trial key, one file: the rule for two files of a store that hold the same trial key (a hand
copy, a `cp` instead of `store merge`), shared by the report, the runner and merge
(docs/faults.md). Identical copies (the same results; run-specific columns such as timings may
differ): one is read, with a warning naming both. Differing copies: a conflict naming both and the
command that resolves it; nothing is chosen silently."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from debiasbench.benchmark.raw_data import differ
from debiasbench.benchmark.store.schema import _META_KEY, _META_RAW, StoreError

if TYPE_CHECKING:
    from debiasbench.benchmark.store.store import ResultStore

Metadata = dict[bytes, bytes]

# Columns that legitimately differ between two runs of the same trial.
RUN_SPECIFIC = (
    "wall_time_s",
    "seconds_per_epoch",
    "peak_memory_mb",
    "device",
    "hostname",
    "cpu",
    "ray_node_id",
    "finished_at",
    "code_version",
    "torch_version",
    "cuda_version",
)


class DuplicateTrialError(StoreError):
    """Two files of one store hold the same trial key with different results."""


def _without_recorded_defaults(config: str | None) -> str | None:
    """A configuration without `method_defaults`: a record of the registry (tools/record_defaults.py
    adds it to older trials), not of the experiment, so one copy may have it and the other not."""
    if not config:
        return config
    fields = json.loads(config)
    fields.pop("method_defaults", None)
    return json.dumps(fields, sort_keys=True)


def comparable(table: pa.Table) -> pd.DataFrame:
    """A trial's rows without what legitimately differs between two runs (timings, host, versions)."""
    frame = table.to_pandas()
    # raw_data is compared on its own (an unknown fingerprint proves nothing): see same_results, merge.
    dropped = [c for c in (*RUN_SPECIFIC, "raw_data") if c in frame]
    frame = frame[frame["metric"] != "seconds"].drop(columns=dropped)
    if "config" in frame:  # one JSON text per trial, repeated on its rows: normalise each once
        frame["config"] = frame["config"].map({c: _without_recorded_defaults(c) for c in frame["config"].unique()})
    return frame.sort_values(
        ["epoch", "role", "split", "subset", "target", "bias", "metric"], na_position="first", ignore_index=True
    )


def raw_data_of(table: pa.Table) -> str | None:
    """The fingerprint of the raw data a trial file was trained on (None: unknown)."""
    value = (table.schema.metadata or {}).get(_META_RAW)
    return value.decode() if value else None


def cpu_of(table: pa.Table) -> str | None:
    """The CPU a trial file was trained on (None: not recorded, written before the column existed)."""
    if "cpu" not in table.column_names or len(table) == 0:
        return None
    return table.column("cpu")[0].as_py()


def cpu_note(one: pa.Table, other: pa.Table) -> str:
    """Why two copies of one trial may hold different results: they ran on different CPUs, whose
    vector kernels round differently (docs/protocol.md); "" when that is not known to be the case."""
    first, second = cpu_of(one), cpu_of(other)
    if not first or not second or first == second:
        return ""
    return (
        f" (they ran on different CPUs, {first} and {second}: one seed is bit-reproducible on one CPU only, "
        "docs/protocol.md)"
    )


def difference(store: ResultStore, first: str, second: str) -> str | None:
    """How two files of one trial differ ("with different results", "trained on different raw data"),
    or None when they hold the same results from the same (or unknown) raw data."""
    one, other = store.read_file(first), store.read_file(second)
    if differ(raw_data_of(one), raw_data_of(other)):
        return "trained on different raw data"
    return None if comparable(one).equals(comparable(other)) else "with different results" + cpu_note(one, other)


def conflict_line(key: str, first: str, second: str, store: str, how: str = "with different results") -> str:
    return (
        f"trial {key} is held by two files {how}, {first} and {second}; keep one: move the "
        "other into a directory of its own (OTHER/trials/) and run "
        f"`python -m debiasbench.benchmark.store merge OTHER --into {store}`, which keeps the copy already in "
        f"{store} and reports the conflict"
    )


def one_file_per_key(store: ResultStore, files: dict[str, Metadata]) -> tuple[dict[str, Metadata], list[str]]:
    """(the files to read, one per trial key; the conflicts, one line each). Of identical copies the
    file named `<key>.parquet` (else the first by name) is kept, with a warning naming both."""
    by_key: dict[str, list[str]] = {}
    for path in sorted(files):
        by_key.setdefault(files[path][_META_KEY].decode(), []).append(path)
    kept: dict[str, Metadata] = {}
    conflicts: list[str] = []
    for key, paths in by_key.items():
        paths.sort(key=lambda p: (not p.endswith(f"/{key}.parquet"), p))
        first = paths[0]
        kept[first] = files[first]
        for other in paths[1:]:
            how = difference(store, first, other)
            if how is None:
                warnings.warn(
                    f"trial {key} is held by two identical files, {first} and {other}; reading {first} only "
                    f"(delete {other}: `python -m debiasbench.benchmark.store merge` copies a store without "
                    "duplicates)",
                    stacklevel=3,
                )
            else:
                conflicts.append(conflict_line(key, first, other, store.location, how))
    return kept, conflicts


def unique_files(store: ResultStore, files: dict[str, Metadata]) -> dict[str, Metadata]:
    """One file per trial key; DuplicateTrialError (the first conflict, one line) if copies differ."""
    kept, conflicts = one_file_per_key(store, files)
    if conflicts:
        more = f" ({len(conflicts) - 1} more such trial(s))" if len(conflicts) > 1 else ""
        raise DuplicateTrialError(conflicts[0] + more)
    return kept
