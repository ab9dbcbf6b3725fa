"""An on-disk cache of generated arrays, keyed by a hash of the generation parameters.

Each entry is a directory of .npy files plus meta.json, built in a temporary directory and
renamed into place, so an interrupted generation never leaves an entry a later run would trust.
Arrays load with allow_pickle=False (the cache directory is not trusted with code).

meta.json records every array's shape, dtype and a checksum of its bytes ("sha256:<hex>",
written when the entry is built). Every load recomputes the checksums, so pixels or labels
damaged after the build (header intact) are caught: the entry is rebuilt with a warning naming the
array. Entries written before checksums existed are verified once by a full read and then
stamped with their checksums (see docs/faults.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from debiasbench.benchmark.integrity import checksum_bytes, disk_error_message
from debiasbench.benchmark.raw_data import differ, short

log = logging.getLogger(__name__)


RAW_CHANGED = "generated from other raw data"


class CacheWriteError(OSError):
    """A cache entry could not be written (disk full, permissions); the message names the fix."""


def cache_key(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(params), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def array_checksum(array: np.ndarray, like: str | None = None) -> str:
    """Checksum of an array's bytes in C order (a memory map is hashed page by page, not copied)."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return checksum_bytes(memoryview(flat), like=like)


def check_entry(
    entry: Path,
    mmap_mode: str | None = None,
    label_ranges: Mapping[str, int] | None = None,
    raw: str | None = None,
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """(arrays, None) for a complete, verified entry; (None, None) if there is none; (None, what is
    wrong) for an entry that is damaged, incomplete, holds a label outside `label_ranges` (array
    name -> number of values), or was generated from raw data whose fingerprint differs from `raw`.
    Entries without checksums (written before they existed) are read in full and, if readable and
    in range, stamped with their checksums (and `raw`, their raw data being unknown)."""
    meta_file = entry / "meta.json"
    if not meta_file.is_file():
        return None, ("meta.json is missing (an incomplete entry)" if entry.exists() else None)
    try:
        meta = json.loads(meta_file.read_text())
        specs = meta["arrays"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"meta.json is unreadable ({error})"
    arrays: dict[str, np.ndarray] = {}
    stamps: dict[str, str] = {}
    for name, spec in specs.items():
        path = entry / f"{name}.npy"
        try:
            legacy = "checksum" not in spec
            # A full read for an entry without checksums: a truncated file fails here.
            array = np.load(path, mmap_mode=None if legacy and mmap_mode is None else mmap_mode, allow_pickle=False)
            if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                return None, (
                    f"{path.name} has shape {list(array.shape)} {array.dtype}, meta.json says "
                    f"{spec['shape']} {spec['dtype']}"
                )
            actual = array_checksum(array, like=None if legacy else spec["checksum"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            return None, f"{path.name} is unreadable ({error})"
        if legacy:
            stamps[name] = actual
        elif actual != spec["checksum"]:
            return None, f"{path.name} does not match its checksum (its bytes changed after the entry was built)"
        arrays[name] = array
    # A label out of range decodes and may even carry a checksum (stamped before this check existed).
    problem = label_problem(arrays, label_ranges)
    if problem is not None:
        return None, problem
    recorded = meta.get("raw_data")
    if differ(recorded, raw):
        return None, f"{RAW_CHANGED} (fingerprint {short(recorded)}, the raw data's is now {short(raw)})"
    if stamps or (raw and not recorded):
        _stamp(meta_file, meta, stamps, raw)
    return arrays, None


def label_problem(arrays: Mapping[str, np.ndarray], label_ranges: Mapping[str, int] | None) -> str | None:
    """What is wrong with the label and bias arrays named in `label_ranges` (name -> number of
    values), or None when every value lies in 0..n-1."""
    for name, count in (label_ranges or {}).items():
        values = arrays.get(name)
        if values is None or not len(values):
            continue
        low, high = int(np.min(values)), int(np.max(values))
        if low < 0 or high >= count:
            bad = low if low < 0 else high
            return f"{name}.npy holds the value {bad}, outside 0..{count - 1} (the entry is damaged)"
    return None


def _stamp(meta_file: Path, meta: dict, checksums: Mapping[str, str], raw: str | None = None) -> None:
    """Record checksums (and the raw data's fingerprint) in an entry written before they existed
    (best effort: a read-only cache is verified by a full read again next time)."""
    for name, checksum in checksums.items():
        meta["arrays"][name]["checksum"] = checksum
    if raw and not meta.get("raw_data"):
        meta["raw_data"] = raw
    tmp = meta_file.with_name(f".meta.json.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, meta_file)
        log.info("stamped cache entry %s with checksums (it had none)", meta_file.parent)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        log.debug("could not stamp %s (%s)", meta_file, error)


def read_entry(entry: Path, mmap_mode: str | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of a complete, verified entry, or None if it is absent or damaged (with a
    warning naming what is wrong). `mmap_mode="c"` maps the files copy-on-write (for arrays too
    large to read into memory); they are still checksummed, page by page."""
    arrays, problem = check_entry(entry, mmap_mode)
    if problem is not None:
        log.warning("dataset cache entry %s is damaged: %s", entry, problem)
    return arrays


def _add_checksums(entry_dir: Path, known: Mapping[str, str] | None = None) -> None:
    """Fill in the checksum of every array meta.json lists (computed from the written files
    unless `known` has it), so entries written by any builder carry checksums."""
    meta_file = entry_dir / "meta.json"
    if not meta_file.is_file():
        return
    meta = json.loads(meta_file.read_text())
    specs = meta.get("arrays") if isinstance(meta, dict) else None
    if not isinstance(specs, dict) or all("checksum" in spec for spec in specs.values()):
        return
    for name, spec in specs.items():
        if "checksum" not in spec:
            spec["checksum"] = (known or {}).get(name) or array_checksum(
                np.load(entry_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            )
    meta_file.write_text(json.dumps(meta, indent=1, default=str))


@contextlib.contextmanager
def atomic_entry(entry: Path) -> Iterator[Path]:
    """A temporary directory beside `entry` to write into; renamed to `entry` when the block
    completes (after the checksum of every array listed in meta.json is recorded) and removed if
    it fails, so a half-written entry is never visible. A failed write (disk full, permissions)
    raises CacheWriteError naming the entry and the fix."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError as error:
        raise _write_error(error, entry) from error
    try:
        yield tmp
        _add_checksums(tmp)
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another process finished the same entry first; theirs is equivalent.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, (CacheWriteError, FileNotFoundError)):
            raise _write_error(error, entry) from error
        raise


def _write_error(error: OSError, entry: Path) -> CacheWriteError:
    return CacheWriteError(
        disk_error_message(
            error, entry, "dataset cache entry", "point --cache-dir (or DEBIAS_CACHE_DIR) at a disk with space"
        )
    )


def load_or_build(
    cache_dir: Path,
    family: str,
    params: Mapping[str, Any],
    build: Callable[[], dict[str, np.ndarray]],
    label_ranges: Mapping[str, int] | None = None,
    raw: str | None = None,
) -> dict[str, np.ndarray]:
    """Return the cached arrays for (family, params), building and caching them if absent,
    incomplete, damaged, out of range (`label_ranges`: array name -> number of values) or
    generated from other raw data than `raw` (its fingerprint); such an entry is rebuilt with a
    warning naming what was wrong."""
    entry = Path(cache_dir) / family / cache_key(params)
    arrays, problem = check_entry(entry, label_ranges=label_ranges, raw=raw)
    if arrays is not None:
        return arrays
    if entry.exists():
        if problem and problem.startswith(RAW_CHANGED):
            log.warning("dataset cache entry %s was %s; regenerating it", entry, problem)
        else:
            log.warning(
                "dataset cache entry %s is damaged or incomplete (%s); rebuilding it", entry, problem or "unreadable"
            )
        shutil.rmtree(entry, ignore_errors=True)

    arrays = build()
    problem = label_problem(arrays, label_ranges)
    if problem is not None:  # the raw data itself is bad: nothing to cache, nothing to train on
        raise ValueError(
            f"dataset {family} generated from the raw data gives bad labels ({problem.split(' (')[0]}); "
            f"the raw files are damaged: replace them (see docs/data.md), cache entry {entry} was not written"
        )
    with atomic_entry(entry) as tmp:
        meta = {"params": dict(params), "arrays": {}, "raw_data": raw}
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            meta["arrays"][name] = {
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "checksum": array_checksum(array),
            }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    return arrays
