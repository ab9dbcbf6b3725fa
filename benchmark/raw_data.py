"""Fingerprints of the raw data a dataset is generated from (docs/faults.md#raw-data). Torch- and
numpy-free (the ground floor): datasets say which raw files they read, the driver and the workers
compute the fingerprint, the dataset cache records it in every entry and the store beside every
trial key, and the report and merge read it, so results from other raw data (a partial CIFAR-10, a
folder replaced in place) are never counted as complete nor pooled with the others.

A fingerprint is cheap, not a full content hash: per file its name, its size and the SHA-256 of its
bytes (of its first, middle and last MiB when it is larger than SMALL_FILE_BYTES); per folder the
sorted names of every file in it, plus name, size and content of up to SAMPLE_FILES files spread
over that listing. Trial keys do not include it (the paper's keys are pinned), so it is stored as
"raw-v1:<hex>" beside them; a stored value of None means "unknown" (written before fingerprints).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

PREFIX = "raw-v1:"
SMALL_FILE_BYTES = 8 << 20  # index files (labels, attribute tables, CIFAR batches) are hashed in full
PIECE_BYTES = 1 << 20
SAMPLE_FILES = 16

_MEMO: dict[tuple, str] = {}


def _file_digest(path: Path, size: int, hasher: hashlib._Hash) -> None:
    with open(path, "rb") as handle:
        if size <= SMALL_FILE_BYTES:
            for block in iter(lambda: handle.read(PIECE_BYTES), b""):
                hasher.update(block)
            return
        for offset in (0, size // 2, max(0, size - PIECE_BYTES)):
            handle.seek(offset)
            hasher.update(handle.read(PIECE_BYTES))


def _folder_files(folder: Path) -> list[str]:
    names = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(base, folder)
        names += [name if rel == "." else f"{rel}/{name}" for name in files if not name.startswith(".")]
    return sorted(names)


def _stamp(paths: list[Path]) -> tuple:
    """What the memo is keyed by: each path with its size and modification time."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def fingerprint(paths: Iterable[str | os.PathLike]) -> str | None:
    """The fingerprint of raw files and folders (see the module doc), or None when one is absent.
    Memoised per process while every path's size and modification time are unchanged."""
    paths = [Path(p) for p in paths]
    if not paths or not all(p.exists() for p in paths):
        return None
    stamp = _stamp(paths)
    if stamp in _MEMO:
        return _MEMO[stamp]
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(f"\0{path.name}\0".encode())
        if path.is_dir():
            names = _folder_files(path)
            hasher.update(("\n".join(names) + f"\n{len(names)}").encode())
            step = max(1, len(names) // SAMPLE_FILES)
            for name in names[::step][:SAMPLE_FILES]:
                file = path / name
                size = file.stat().st_size
                hasher.update(f"{name}:{size}".encode())
                _file_digest(file, size, hasher)
        else:
            size = path.stat().st_size
            hasher.update(str(size).encode())
            _file_digest(path, size, hasher)
    _MEMO[stamp] = PREFIX + hasher.hexdigest()[:20]
    return _MEMO[stamp]


def short(value: str | None) -> str:
    """A fingerprint as messages show it: its first 8 hex digits, or "unknown"."""
    return value[len(PREFIX) :][:8] if value and value.startswith(PREFIX) else (value or "unknown")[:12]


def differ(stored: str | None, current: str | None) -> bool:
    """Whether two fingerprints prove different raw data (an unknown one proves nothing)."""
    return bool(stored) and bool(current) and stored != current
