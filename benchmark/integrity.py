"""Content checksums and disk-error messages shared by the result store, the dataset cache and the
training checkpoints. Torch- and numpy-free (the ground floor of benchmark/).

A checksum is stored as the text "<algorithm>:<hex digest>", so a reader recomputes it with the
algorithm that wrote it. Everything this version writes uses SHA-256 from hashlib: no extra
dependency, hardware-accelerated on current x86 and ARM CPUs (about 1.1 GB/s on the 2-core test
machine), and strong enough that damage never goes unnoticed by chance. The threat is damaged
bytes (a bad disk, a truncated copy, a stray write), not an attacker who can also rewrite the
checksum; untrusted *code* is kept out separately (allow_pickle=False, weights_only=True).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

ALGORITHM = "sha256"
CHUNK_BYTES = 16 << 20  # hashing granularity for files and large arrays


class ChecksumError(ValueError):
    """Content does not match its recorded checksum (the message names the file)."""


def _hasher(checksum: str | None = None) -> hashlib._Hash:
    algorithm = ALGORITHM if checksum is None else checksum.partition(":")[0]
    if algorithm not in hashlib.algorithms_available:
        raise ChecksumError(f"unknown checksum algorithm {algorithm!r} in {checksum!r}")
    return hashlib.new(algorithm)


def _finish(hasher: hashlib._Hash) -> str:
    return f"{hasher.name}:{hasher.hexdigest()}"


def checksum_chunks(chunks: Iterable[bytes | memoryview], like: str | None = None) -> str:
    """The checksum of the concatenated chunks (with the algorithm of `like`, else SHA-256)."""
    hasher = _hasher(like)
    for chunk in chunks:
        hasher.update(chunk)
    return _finish(hasher)


def checksum_bytes(data: bytes | bytearray | memoryview, like: str | None = None) -> str:
    return checksum_chunks(_slices(memoryview(data).cast("B")), like)


def _slices(view: memoryview) -> Iterable[memoryview]:
    for start in range(0, len(view), CHUNK_BYTES):
        yield view[start : start + CHUNK_BYTES]


def checksum_stream(stream: BinaryIO, like: str | None = None) -> str:
    """The checksum of everything left in a binary stream, read in chunks."""
    return checksum_chunks(iter(lambda: stream.read(CHUNK_BYTES), b""), like)


def checksum_file(path: str | os.PathLike, like: str | None = None) -> str:
    with open(path, "rb") as stream:
        return checksum_stream(stream, like)


# -- disk errors ------------------------------------------------------------------------------

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def os_errno(error: BaseException) -> int | None:
    """The errno of an OSError, also when a library only put "[Errno N]" into the message."""
    number = getattr(error, "errno", None)
    if isinstance(number, int):
        return number
    text = str(error)
    for candidate, name in (
        (errno.ENOSPC, "No space left on device"),
        (errno.EACCES, "Permission denied"),
        (errno.EROFS, "Read-only file system"),
        (errno.EPERM, "Operation not permitted"),
    ):
        if name in text or f"[Errno {candidate}]" in text:
            return candidate
    return None


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing parent), if known."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def disk_error_message(error: BaseException, path: str | os.PathLike, what: str, fix: str) -> str:
    """One line naming the file, the cause and the fix for an OSError raised while writing `what`.

    `fix` is the advice for the location (e.g. "pass --results on a larger disk"); the cause decides
    which advice comes first."""
    number = os_errno(error)
    text = str(error)
    if number is None and "requested and" in text and "written" in text:
        number = errno.ENOSPC  # numpy's short write ("N requested and M written"): the disk filled up
    free = free_bytes(path)
    if number is None and free is not None and free < 1 << 20:
        number = errno.ENOSPC  # no errno, but nothing left on that file system
    if number in _FULL:
        cause = f"the disk is full ({_size(free)} free on the file system of {Path(path).parent})"
        advice = f"free space there, or {fix}"
    elif number in _DENIED:
        cause = os.strerror(number).lower()
        advice = f"make {Path(path).parent} writable, or {fix}"
    else:
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cause = (os.strerror(number) if number else text).rstrip(".")
        advice = fix
    return f"cannot write {what} {path}: {cause}; {advice}"
