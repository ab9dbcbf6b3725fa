"""Fault injection for the fault tests (tests/benchmark/test_faults_*.py, tests/datasets/
test_cache_integrity.py): damaging bytes in place, and a tiny file system to fill.

`tiny_filesystem` mounts a real tmpfs of the given size where the test machine allows it (root,
mount permitted); elsewhere it yields None and the tests simulate ENOSPC by monkeypatching the
write (each test says which path it took).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path


def flip(path: Path, offset: int, count: int = 1, value: bytes | None = None) -> None:
    """Overwrite `count` bytes at `offset` in place (inverted, or with `value`), size unchanged."""
    data = bytearray(path.read_bytes())
    patch = value if value is not None else bytes(b ^ 0xFF for b in data[offset : offset + count])
    data[offset : offset + len(patch)] = patch
    path.write_bytes(bytes(data))


def parquet_column_offset(path: Path, column: str) -> int:
    """Offset of the first page (dictionary or data) of `column` in row group 0."""
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    for j in range(metadata.num_columns):
        chunk = metadata.row_group(0).column(j)
        if chunk.path_in_schema == column:
            return chunk.dictionary_page_offset or chunk.data_page_offset
    raise KeyError(column)


def parquet_data_region(path: Path) -> tuple[int, int]:
    """[start, end) of the bytes between the leading magic and the footer (every data page)."""
    data = path.read_bytes()
    return 4, len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tiny_filesystem(base: Path, size_kb: int) -> Iterator[Path | None]:
    """A real tmpfs of `size_kb` KiB mounted under `base`, or None where mounting is not allowed."""
    mountpoint = base / f"tiny-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir(parents=True)
    mounted = False
    if _can_mount():
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mountpoint)], capture_output=True, text=True
        )
        mounted = result.returncode == 0
    try:
        yield mountpoint if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def fill(mountpoint: Path, leave_bytes: int) -> None:
    """Fill a file system until about `leave_bytes` are free."""
    free = shutil.disk_usage(mountpoint).free
    with open(mountpoint / "filler", "wb") as handle:
        try:
            handle.write(b"\0" * max(0, free - leave_bytes))
        except OSError:
            pass


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def largest_tensor_span(zip_bytes: bytes) -> tuple[int, int]:
    """(offset, size) of the raw bytes of the largest tensor storage in a torch.save archive
    (stored uncompressed, so damage there leaves the zip structure intact)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    local = info.header_offset
    name_len = int.from_bytes(zip_bytes[local + 26 : local + 28], "little")
    extra_len = int.from_bytes(zip_bytes[local + 28 : local + 30], "little")
    return local + 30 + name_len + extra_len, info.file_size


def checkpoint_payload_offset(path: Path) -> int:
    """Where torch.save's archive starts in a checkpoint file (after the checksum header, if any)."""
    data = path.read_bytes()
    if data.startswith(b"DEBIASBENCH-CHECKPOINT"):
        return data.index(b"\n", data.index(b"\n") + 1) + 1
    return 0
