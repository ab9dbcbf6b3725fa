"""Whether a stored trial file can be trusted (docs/faults.md): its debiasbench metadata, schema
version and footer checksum, checked from the file's bytes; and `verified_once()`, the memo that
lets one report build hash each file once. Torch-free, no I/O of its own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from debiasbench.benchmark.store.checksummed_parquet import first_line, verify_parquet_bytes
from debiasbench.benchmark.store.schema import (
    _META_CHECKSUM,
    _META_KEY,
    _META_STATUS,
    _META_VERSION,
    SCHEMA_VERSION,
    StoreVersionError,
)

Metadata = dict[bytes, bytes]

# Inside `verified_once()` (one report build, which scans the store for its tables, diagnostics and
# provenance), a local trial file already verified is not hashed again while its (path, size,
# mtime_ns, inode) is unchanged. Off elsewhere: a long-running driver re-verifies on every scan, so
# a file damaged in place is caught even where the file system's timestamps are coarse.
_VERIFIED: dict[tuple[str, int, int, int], Metadata] | None = None


@contextlib.contextmanager
def verified_once() -> Iterator[None]:
    """Verify each local trial file at most once within the block (nested blocks share it)."""
    global _VERIFIED
    outer = _VERIFIED
    _VERIFIED = {} if outer is None else outer
    try:
        yield
    finally:
        _VERIFIED = outer


def _identity(path: str, stat: os.stat_result) -> tuple[str, int, int, int]:
    return (path, stat.st_size, stat.st_mtime_ns, stat.st_ino)


def recall(path: str, stat: os.stat_result | None) -> Metadata | None:
    """The metadata of a file already verified inside `verified_once()` and unchanged since."""
    if stat is None or _VERIFIED is None:
        return None
    return _VERIFIED.get(_identity(path, stat))


def remember(path: str, stat: os.stat_result | None, metadata: Metadata) -> None:
    if stat is not None and _VERIFIED is not None:
        _VERIFIED[_identity(path, stat)] = metadata


def odd_entries(trials_dir: str) -> list[str]:
    """Warnings for what a local `trials/` holds under a trial file's name but cannot be one: a
    directory or a symbolic link to nothing (a listing of files alone skips them silently)."""
    try:
        entries = list(os.scandir(trials_dir))
    except OSError:
        return []
    odd = []
    for entry in entries:
        if entry.name.endswith(".parquet") and not entry.name.startswith(".") and not entry.is_file():
            if entry.is_symlink() and not os.path.exists(entry.path):
                what = "a symbolic link to nothing"
            else:
                what = "a directory, not a file" if entry.is_dir() else "not a regular file"
            odd.append(
                f"skipping {entry.path}: {what}, so it holds no trial; remove it (its trial, if any, counts as "
                "absent and a run reruns it)"
            )
    return odd


def unreadable(path: str, error: BaseException) -> str:
    return (
        f"skipping unreadable Parquet file {path} ({first_line(error)}); it counts as absent, so a run reruns its trial"
    )


def inspect_trial_bytes(path: str, data: bytes) -> tuple[Metadata | None, str | None, pa.Table | None]:
    """Check one trial file's bytes. Returns (metadata, None, None) for a file whose checksum holds;
    (metadata, None, table) for a file written before checksums existed that decodes in full (the
    caller may stamp it); (None, the warning, None) for an unreadable, foreign, malformed or damaged
    file. A newer schema version raises StoreVersionError: skipping it would silently drop results."""
    try:
        metadata = dict(pq.read_metadata(pa.BufferReader(data)).metadata or {})
    except Exception as error:
        return None, unreadable(path, error), None
    if _META_VERSION not in metadata:
        return None, f"skipping foreign Parquet file {path}: it was not written by debiasbench", None
    try:
        version = int(metadata[_META_VERSION])
    except ValueError:
        return (
            None,
            (
                f"skipping {path}: malformed schema version {metadata[_META_VERSION][:40]!r} in its "
                "metadata (the file is damaged or was not written by debiasbench)"
            ),
            None,
        )
    if version != SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path} has result-store schema version {version}, but this debiasbench reads "
            f"version {SCHEMA_VERSION}; use a debiasbench release that matches the store, or "
            "re-run those trials into a new results directory"
        )
    missing = [k.decode() for k in (_META_KEY, _META_STATUS) if not metadata.get(k)]
    if missing:
        return (
            None,
            (
                f"skipping {path}: its metadata lacks {' and '.join(missing)} (the file is damaged or was "
                "not written by debiasbench)"
            ),
            None,
        )
    damaged = (
        f"skipping damaged trial file {path}: {{}}; it counts as absent, so a run reruns its trial (and "
        "replaces the file)"
    )
    if _META_CHECKSUM in metadata:
        problem = verify_parquet_bytes(data, metadata)
        return (None, damaged.format(problem), None) if problem else (metadata, None, None)
    try:  # written before checksums: a full decode is the check
        table = pq.read_table(pa.BufferReader(data))
    except Exception as error:
        return None, damaged.format(f"it has no checksum and does not decode ({first_line(error)})"), None
    return metadata, None, table
