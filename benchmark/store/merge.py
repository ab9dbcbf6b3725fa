"""Merging result stores made on different machines into one (duplicates dropped, conflicts reported)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from benchmark.store.schema import _META_KEY, _META_STATUS
from benchmark.store.store import ResultStore

# Columns that legitimately differ between two runs of the same trial.
_RUN_SPECIFIC = (
    "wall_time_s",
    "seconds_per_epoch",
    "peak_memory_mb",
    "device",
    "hostname",
    "ray_node_id",
    "finished_at",
    "code_version",
    "torch_version",
    "cuda_version",
)


def _comparable(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame = frame[frame["metric"] != "seconds"].drop(columns=[c for c in _RUN_SPECIFIC if c in frame])
    return frame.sort_values(
        ["epoch", "role", "split", "subset", "target", "bias", "metric"], na_position="first", ignore_index=True
    )


@dataclass
class MergeReport:
    copied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # same key, same results: dropped
    conflicts: list[str] = field(default_factory=list)  # same key, different results: first kept
    upgraded: list[str] = field(default_factory=list)  # a failed/partial record replaced by a finished one


def merge_stores(sources: list[str], into: str) -> MergeReport:
    """Merge result stores into `into` (which may already hold trials). A key seen again with the
    same results is dropped; with different results it is a conflict: the first copy is kept and
    the key reported; a failed or partial record is replaced by a finished one. Nothing is
    overwritten silently."""
    stores = [ResultStore(location) for location in sources]
    for source in stores:
        source.require_exists()  # a mistyped source is an error, not "copied 0"
    target = ResultStore(into)
    target.ensure_writable()
    report = MergeReport()
    present: dict[str, tuple[str, str]] = {}  # key -> (status, path) already in the target
    for path, meta in target.valid_files().items():
        present[meta[_META_KEY].decode()] = (meta[_META_STATUS].decode(), path)
    for source in stores:
        for path, meta in source.valid_files().items():
            key, status = meta[_META_KEY].decode(), meta[_META_STATUS].decode()
            table = source.read_file(path)
            if key in present:
                old_status, old_path = present[key]
                if old_status in ("failed", "partial") and status in ("completed", "stopped"):
                    report.upgraded.append(key)
                elif _comparable(table).equals(_comparable(target.read_file(old_path))):
                    report.duplicates.append(key)
                    continue
                else:
                    report.conflicts.append(key)
                    continue
            else:
                report.copied.append(key)
            prediction = source._path("predictions", f"{key}.parquet")
            if source.fs.get_file_info(prediction).type == pafs.FileType.File:
                target._atomic_write(source.read_file(prediction), "predictions", f"{key}.parquet")
            target._atomic_write(table, "trials", f"{key}.parquet")
            present[key] = (status, target._path("trials", f"{key}.parquet"))
    return report
