"""Merging result stores made on different machines into one (duplicates dropped, conflicts reported)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow.fs as pafs

from debiasbench.benchmark.raw_data import differ, short
from debiasbench.benchmark.store.duplicates import comparable, cpu_note, one_file_per_key, raw_data_of
from debiasbench.benchmark.store.schema import _META_KEY, _META_STATUS
from debiasbench.benchmark.store.store import ResultStore


@dataclass
class MergeReport:
    copied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # same key, same results: dropped
    conflicts: list[str] = field(default_factory=list)  # same key, different results: first kept
    # One line per conflict: the key, both files, and why (other raw data, or other results).
    conflict_lines: list[str] = field(default_factory=list)
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
    target.ensure_writable(option="--into")
    report = MergeReport()
    present: dict[str, tuple[str, str]] = {}  # key -> (status, path) already in the target
    files, conflicts = one_file_per_key(target, target.valid_files())  # two files, one key: merge's rule
    report.conflict_lines += conflicts
    for path, meta in files.items():
        present[meta[_META_KEY].decode()] = (meta[_META_STATUS].decode(), path)
    for source in stores:
        for path, meta in source.valid_files().items():  # a source's own duplicates meet the rule below
            key, status = meta[_META_KEY].decode(), meta[_META_STATUS].decode()
            table = source.read_file(path)
            if key in present:
                old_status, old_path = present[key]
                old_table = target.read_file(old_path)
                old_raw, new_raw = raw_data_of(old_table), raw_data_of(table)
                if old_status in ("failed", "partial") and status in ("completed", "stopped"):
                    report.upgraded.append(key)
                elif differ(old_raw, new_raw):
                    # Never pooled: one key, one file, and these were trained on different raw data.
                    report.conflicts.append(key)
                    report.conflict_lines.append(
                        f"trial {key}: {path} was trained on other raw data (fingerprint {short(new_raw)}) than "
                        f"{old_path} ({short(old_raw)}); kept {old_path}. Merge the other into a store of its own "
                        "to keep both"
                    )
                    continue
                elif comparable(table).equals(comparable(old_table)):
                    report.duplicates.append(key)
                    continue
                else:
                    report.conflicts.append(key)
                    report.conflict_lines.append(
                        f"trial {key}: {path} and {old_path} hold different results{cpu_note(table, old_table)}; "
                        f"kept {old_path}"
                    )
                    continue
            else:
                report.copied.append(key)
            prediction = source._path("predictions", f"{key}.parquet")
            if source.fs.get_file_info(prediction).type == pafs.FileType.File:
                target._atomic_write(source.read_file(prediction), "predictions", f"{key}.parquet")
            target._atomic_write(table, "trials", f"{key}.parquet")
            present[key] = (status, target._path("trials", f"{key}.parquet"))
    return report
