"""An on-disk cache of generated arrays, keyed by a hash of the generation parameters.

Each entry is a directory of .npy files plus meta.json, built in a temporary directory and
renamed into place, so an interrupted generation never leaves an entry a later run would trust.
Arrays load with allow_pickle=False (the cache directory is not trusted with code).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

log = logging.getLogger(__name__)


def cache_key(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(params), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read_entry(entry: Path, mmap_mode: str | None = None) -> dict[str, np.ndarray] | None:
    """The arrays of a complete entry, or None if it is absent or corrupt. `mmap_mode="c"` maps
    the files copy-on-write (for arrays too large to read into memory)."""
    meta_file = entry / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        arrays = {}
        for name, spec in meta["arrays"].items():
            array = np.load(entry / f"{name}.npy", mmap_mode=mmap_mode, allow_pickle=False)
            if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                return None
            arrays[name] = array
        return arrays
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def atomic_entry(entry: Path) -> Iterator[Path]:
    """A temporary directory beside `entry` to write into; renamed to `entry` when the block
    completes and removed if it fails, so a half-written entry is never visible."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another process finished the same entry first; theirs is equivalent.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_or_build(
    cache_dir: Path,
    family: str,
    params: Mapping[str, Any],
    build: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Return the cached arrays for (family, params), building and caching them if absent or corrupt."""
    entry = Path(cache_dir) / family / cache_key(params)
    arrays = read_entry(entry)
    if arrays is not None:
        return arrays
    if entry.exists():
        log.warning("cache entry %s is corrupt or incomplete; regenerating it", entry)
        shutil.rmtree(entry, ignore_errors=True)

    arrays = build()
    with atomic_entry(entry) as tmp:
        meta = {"params": dict(params), "arrays": {}}
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            meta["arrays"][name] = {"shape": list(array.shape), "dtype": str(array.dtype)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    return arrays
