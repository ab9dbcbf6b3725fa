"""Checksummed Parquet bytes (docs/faults.md): a file's footer carries a checksum of everything
before it (the magic and every data page), so a reader detects a file changed or damaged after
it was written. Pure functions over bytes; the store does the reading and atomic writing."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from debiasbench.benchmark.integrity import checksum_bytes
from debiasbench.benchmark.store.schema import _META_CHECKSUM, StoreError


def first_line(error: BaseException) -> str:
    """The first line of an error's message (pyarrow's run to many), or its type when empty."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _to_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _footer_start(data: bytes) -> int:
    """Offset of the Parquet footer (FileMetaData): everything before it is the magic and the
    column chunks, i.e. every data page."""
    if len(data) < 12 or data[-4:] != b"PAR1" or data[:4] != b"PAR1":
        raise ValueError("not a Parquet file (missing PAR1 magic)")
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    if start < 4:
        raise ValueError("footer length out of range")
    return start


def parquet_bytes(table: pa.Table) -> bytes:
    """The Parquet file of `table` whose footer metadata carries the checksum of its data pages.

    The file is serialised twice in memory: once to learn the bytes before the footer, then with
    their checksum added to the footer's key-value metadata, which lives only in the footer, so
    the bytes before it are the same both times (checked)."""
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != _META_CHECKSUM}
    first = _to_parquet(table.replace_schema_metadata(metadata))
    start = _footer_start(first)
    checksum = checksum_bytes(memoryview(first)[:start])
    second = _to_parquet(table.replace_schema_metadata({**metadata, _META_CHECKSUM: checksum.encode()}))
    if second[:start] != first[:start]:
        raise StoreError("the Parquet writer produced different data pages for the same table; cannot checksum it")
    return second


def verify_parquet_bytes(data: bytes, metadata: Mapping[bytes, bytes]) -> str | None:
    """None if `data` (a whole Parquet file) matches the checksum in `metadata`; else what is wrong.
    A file without a checksum (written before checksums existed) is decoded in full instead."""
    recorded = metadata.get(_META_CHECKSUM)
    if recorded is None:
        try:
            pq.read_table(pa.BufferReader(data))
        except Exception as error:
            return f"it has no checksum and does not decode ({first_line(error)})"
        return None
    try:
        actual = checksum_bytes(memoryview(data)[: _footer_start(data)], like=recorded.decode())
    except Exception as error:
        return f"its checksum cannot be verified ({first_line(error)})"
    if actual != recorded.decode():
        return (
            "its data pages do not match the checksum in its footer (the file was changed or damaged after it "
            "was written)"
        )
    return None
