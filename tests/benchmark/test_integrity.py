"""benchmark/integrity.py: checksums as "<algorithm>:<hex digest>", and the one-line disk-error
messages that the store, the dataset cache and the checkpoints print (one per errno family)."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from debiasbench.benchmark import integrity
from debiasbench.benchmark.integrity import (
    ChecksumError,
    checksum_bytes,
    checksum_chunks,
    checksum_file,
    checksum_stream,
    disk_error_message,
    free_bytes,
    os_errno,
)

# SHA-256 of b"abc" (FIPS 180-2, appendix B.1).
ABC = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
GIB = 1 << 30


def test_checksums_name_their_algorithm_and_agree_across_inputs(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "CHUNK_BYTES", 2)  # force several chunks
    assert checksum_bytes(b"abc") == ABC
    assert checksum_chunks([b"a", b"bc"]) == ABC
    assert checksum_stream(io.BytesIO(b"abc")) == ABC
    (tmp_path / "f").write_bytes(b"abc")
    assert checksum_file(tmp_path / "f") == ABC
    # A reader recomputes with the algorithm that wrote the checksum.
    assert checksum_bytes(b"abc", like="md5:0") == "md5:900150983cd24fb0d6963f7d28e17f72"


def test_an_unknown_algorithm_is_named():
    with pytest.raises(ChecksumError, match="unknown checksum algorithm 'nope'"):
        checksum_bytes(b"abc", like="nope:00")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EIO, "I/O error"), errno.EIO),
        (RuntimeError("IOError: No space left on device"), errno.ENOSPC),
        (RuntimeError("write failed: [Errno 13] something"), errno.EACCES),
        (RuntimeError("open: Permission denied"), errno.EACCES),
        (RuntimeError("Read-only file system"), errno.EROFS),
        (RuntimeError("Operation not permitted"), errno.EPERM),
        (RuntimeError("something else"), None),
    ],
)
def test_errno_from_the_attribute_or_the_message(error, expected):
    assert os_errno(error) == expected


def test_free_bytes_looks_at_the_nearest_existing_parent(tmp_path):
    assert free_bytes(tmp_path / "not" / "yet" / "there") == free_bytes(tmp_path) > 0


@pytest.fixture
def five_gib_free(monkeypatch):
    monkeypatch.setattr(integrity, "free_bytes", lambda path: 5 * GIB)


def test_disk_full_names_the_free_space_in_readable_units(five_gib_free):
    message = disk_error_message(
        OSError(errno.ENOSPC, "No space left on device"), "/r/store/a.parquet", "the trial file", "pass --results"
    )
    assert message == (
        "cannot write the trial file /r/store/a.parquet: the disk is full (5.0 GB free on the file system of "
        "/r/store); free space there, or pass --results"
    )


@pytest.mark.parametrize(
    ("free", "text"),
    [
        (512, "512 B"),
        (1536, "1.5 KB"),
        (1023 << 10, "1023.0 KB"),
        (3 * (1 << 20), "3.0 MB"),
        (5 * GIB, "5.0 GB"),
        (2048 * GIB, "2.0 TB"),
    ],
)
def test_free_space_units(monkeypatch, free, text):
    monkeypatch.setattr(integrity, "free_bytes", lambda path: free)
    message = disk_error_message(OSError(errno.EDQUOT, "Disk quota exceeded"), "/r/x", "it", "fix")
    assert f"({text} free on the file system of /r)" in message


def test_unknown_free_space_says_so(monkeypatch):
    monkeypatch.setattr(integrity, "free_bytes", lambda path: None)
    message = disk_error_message(OSError(errno.ENOSPC, "full"), "/r/x", "it", "fix")
    assert "the disk is full (unknown free on the file system of /r)" in message


@pytest.mark.parametrize(
    ("number", "cause"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "operation not permitted"),
        (errno.EROFS, "read-only file system"),
    ],
)
def test_permission_denied_says_to_make_the_folder_writable(five_gib_free, number, cause):
    message = disk_error_message(OSError(number, "x"), Path("/r/cache/a.npz"), "the cache file", "pass --cache-dir")
    assert (
        message == f"cannot write the cache file /r/cache/a.npz: {cause}; make /r/cache writable, or pass --cache-dir"
    )


def test_another_errno_gives_its_own_cause_and_only_the_fix(five_gib_free):
    message = disk_error_message(OSError(errno.EIO, "I/O error"), "/r/x", "the checkpoint", "retry")
    assert message == "cannot write the checkpoint /r/x: Input/output error; retry"


def test_an_error_without_errno_gives_its_first_line(five_gib_free):
    message = disk_error_message(ValueError("bad thing.\nmore detail"), "/r/x", "it", "retry")
    assert message == "cannot write it /r/x: bad thing; retry"
    empty = disk_error_message(ValueError(""), "/r/x", "it", "retry")
    assert empty == "cannot write it /r/x: ValueError; retry"


def test_numpys_short_write_counts_as_a_full_disk(five_gib_free):
    error = OSError("100 requested and 40 written")
    assert "the disk is full" in disk_error_message(error, "/r/x", "it", "fix")
    assert "the disk is full" not in disk_error_message(OSError("100 requested"), "/r/x", "it", "fix")


def test_no_errno_and_under_a_mebibyte_free_counts_as_a_full_disk(monkeypatch):
    monkeypatch.setattr(integrity, "free_bytes", lambda path: (1 << 20) - 1)
    assert "the disk is full" in disk_error_message(ValueError("write failed"), "/r/x", "it", "fix")
    monkeypatch.setattr(integrity, "free_bytes", lambda path: 1 << 20)
    assert "the disk is full" not in disk_error_message(ValueError("write failed"), "/r/x", "it", "fix")


def test_the_free_space_is_read_where_the_file_goes(monkeypatch):
    asked = []
    monkeypatch.setattr(integrity, "free_bytes", lambda path: asked.append(str(path)) or 5 * GIB)
    disk_error_message(OSError(errno.ENOSPC, "full"), "/r/store/a.parquet", "it", "fix")
    assert asked == ["/r/store/a.parquet"]


def test_a_known_errno_wins_over_a_message_that_mentions_written_bytes(five_gib_free):
    message = disk_error_message(OSError(errno.EIO, "3 bytes written"), "/r/x", "it", "retry")
    assert message == "cannot write it /r/x: Input/output error; retry"
