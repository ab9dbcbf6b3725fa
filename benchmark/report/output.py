"""Writing the report's files: each atomically (a temporary file beside it, renamed into place), so a
full disk never leaves a 0-byte `table2.md` behind, and every failure as one line naming the report
folder, the cause and `--out` (a read-only store or a full disk is not a failure to read the store)."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from debiasbench.benchmark.integrity import disk_error_message
from debiasbench.benchmark.report.loading import ReportError

# Errors that mean "cannot write here" (disk full, quota, read-only, permissions), not damaged input.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_FIX = "write the report to another folder with --out DIR (python -m debiasbench.benchmark.report STORE --out DIR)"


class ReportWriteError(ReportError):
    """A report file could not be written (disk full, read-only store); the message names the fix."""


def write_error(error: OSError, path: Path) -> ReportWriteError:
    return ReportWriteError(disk_error_message(error, path, "report file", _FIX))


def ensure_dir(folder: Path) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportWriteError(disk_error_message(error, Path(folder), "report folder", _FIX)) from None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds and
    removed when it fails (an OSError becomes a ReportWriteError naming `path` and --out)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, OSError):
            raise write_error(error, path) from None
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())  # a full disk shows here at the latest, before the rename


def write_csv(frame: Any, path: Path, **options: Any) -> None:
    """A DataFrame as CSV (pandas' to_csv options), atomically."""
    write_text(path, frame.to_csv(**options))
