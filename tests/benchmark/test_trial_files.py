"""benchmark/store/trial_files.py: what makes a trial file's bytes trustworthy, checked on files
written here by hand (foreign, malformed, a newer schema, damaged) and by the store itself."""

from __future__ import annotations

import io

import faultkit
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_kit import syn as synthetic

from debiasbench.benchmark.store import SCHEMA_VERSION, ResultStore, StoreVersionError
from debiasbench.benchmark.store.trial_files import inspect_trial_bytes


def parquet_with(metadata: dict[bytes, bytes]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2]}).replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()


def test_foreign_malformed_and_unreadable_files_are_skipped_with_a_reason() -> None:
    assert inspect_trial_bytes("a.parquet", parquet_with({}))[1].startswith("skipping foreign Parquet file a.parquet")
    malformed = parquet_with({b"debiasbench.schema_version": b"one"})
    assert "malformed schema version" in inspect_trial_bytes("b.parquet", malformed)[1]
    lacking = parquet_with({b"debiasbench.schema_version": str(SCHEMA_VERSION).encode()})
    assert "lacks debiasbench.trial_key and debiasbench.status" in inspect_trial_bytes("c.parquet", lacking)[1]
    assert "unreadable" in inspect_trial_bytes("d.parquet", b"not parquet at all")[1]


def test_a_newer_schema_is_an_error_not_a_silent_skip() -> None:
    newer = parquet_with({b"debiasbench.schema_version": str(SCHEMA_VERSION + 1).encode()})
    with pytest.raises(StoreVersionError, match="re-run those trials into a new results directory"):
        inspect_trial_bytes("e.parquet", newer)


def test_a_file_without_checksum_is_returned_decoded_for_stamping() -> None:
    old = parquet_with(
        {
            b"debiasbench.schema_version": str(SCHEMA_VERSION).encode(),
            b"debiasbench.trial_key": b"k",
            b"debiasbench.status": b"completed",
        }
    )
    metadata, problem, table = inspect_trial_bytes("f.parquet", old)
    assert problem is None and metadata[b"debiasbench.trial_key"] == b"k"
    assert table is not None and table.column("x").to_pylist() == [1, 2]


def test_a_checksummed_file_passes_until_its_data_pages_change(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.ensure_writable()
    key = synthetic.simple(store, synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4}), (0.3, 0.2))
    path = tmp_path / "trials" / f"{key}.parquet"
    metadata, problem, table = inspect_trial_bytes(str(path), path.read_bytes())
    assert problem is None and table is None and metadata[b"debiasbench.trial_key"] == key.encode()
    faultkit.flip(path, faultkit.parquet_column_offset(path, "value"), 24, value=b"\xff" * 24)
    metadata, problem, _ = inspect_trial_bytes(str(path), path.read_bytes())
    assert metadata is None and problem.startswith(f"skipping damaged trial file {path}")
