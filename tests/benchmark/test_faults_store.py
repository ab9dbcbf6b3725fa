"""Fault tests for the result store (ISSUE 13, failure 4 and the store's share of 5 and 8): a trial
file whose data pages are damaged behind an intact footer, files written before checksums,
malformed metadata, a full disk, and mistyped store paths."""

import types
import warnings
from pathlib import Path

import faultkit
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_kit import syn as synthetic

from debiasbench.benchmark.experiments.planning import plan
from debiasbench.benchmark.store import DamagedFileError, ResultStore, StoreWriteError, TrialRecord
from debiasbench.benchmark.store.checksummed_parquet import verify_parquet_bytes
from debiasbench.benchmark.store.schema import _META_CHECKSUM


def _store_with_two_trials(tmp_path):
    store = ResultStore(tmp_path / "results")
    store.ensure_writable()
    good = synthetic.simple(store, synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4}), (0.30, 0.25))
    bad = synthetic.simple(store, synthetic.trial("cmnist", "lff", {"ratio": 99.0, "difficulty": 4}), (0.60, 0.55))
    return store, good, bad, tmp_path / "results" / "trials" / f"{bad}.parquet"


def _damage_pages(path: Path) -> None:
    """Damage the first page of the value column, leaving the footer (the metadata) intact."""
    faultkit.flip(path, faultkit.parquet_column_offset(path, "value"), 24, value=b"\xff" * 24)


def test_damaged_data_pages_behind_an_intact_footer_count_as_absent_and_are_rerun(tmp_path):
    store, good, bad, path = _store_with_two_trials(tmp_path)
    _damage_pages(path)
    # The failure as reported: the footer still says "completed" and a metadata-only scan trusts it,
    # while reading the rows fails inside pyarrow without naming the file.
    assert pq.read_metadata(path).metadata[b"debiasbench.status"] == b"completed"
    with pytest.raises((OSError, pa.ArrowException)):
        pq.read_table(path)

    with pytest.warns(UserWarning, match=rf"damaged trial file .*{bad}\.parquet.*rerun"):
        finished = store.finished_keys()
    assert finished == {good}
    with pytest.warns(UserWarning, match=bad):  # the runner's plan: the damaged trial is run again
        todo, done = plan([types.SimpleNamespace(key=good), types.SimpleNamespace(key=bad)], store)
    assert [t.key for t in todo] == [bad] and [t.key for t in done] == [good]


def test_the_report_skips_a_damaged_file_with_a_warning_naming_it(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    store, good, bad, path = _store_with_two_trials(tmp_path)
    _damage_pages(path)
    with pytest.warns(UserWarning, match=rf"{bad}\.parquet"):
        code = main([str(store.root), "--tables", "2", "--no-figures", "--out", str(tmp_path / "report")])
    assert code == 0
    assert "1 completed trial(s) evaluated" in capsys.readouterr().out


def test_any_damaged_byte_of_the_data_pages_is_caught(tmp_path):
    store, _, bad, path = _store_with_two_trials(tmp_path)
    pristine = path.read_bytes()
    metadata = pq.read_metadata(path).metadata
    assert metadata[_META_CHECKSUM].startswith(b"sha256:")
    start, end = faultkit.parquet_data_region(path)
    for offset in range(start, end, max(1, (end - start) // 40)):
        damaged = bytearray(pristine)
        damaged[offset] ^= 0x01  # a single flipped bit
        assert verify_parquet_bytes(bytes(damaged), metadata) is not None, offset
    assert verify_parquet_bytes(pristine, metadata) is None


def test_a_store_written_before_checksums_is_verified_once_then_stamped(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    record = TrialRecord(
        trial=synthetic.trial("cmnist", "vanilla", {"ratio": 95.0}),
        key="old",
        status="completed",
        metrics={
            "epoch": [1],
            "role": ["main"],
            "split": ["test"],
            "subset": ["all"],
            "target": [None],
            "bias": [None],
            "metric": ["accuracy"],
            "value": [0.5],
        },
    )
    legacy = tmp_path / "trials" / "old.parquet"
    pq.write_table(store._trial_table(record), legacy, compression="zstd")  # the pre-checksum writer
    undecodable = tmp_path / "trials" / "older.parquet"
    pq.write_table(store._trial_table(TrialRecord(**{**record.__dict__, "key": "older"})), undecodable)
    _damage_pages(undecodable)
    assert _META_CHECKSUM not in pq.read_metadata(legacy).metadata

    with pytest.warns(UserWarning, match="older.parquet: it has no checksum and does not decode"):
        assert store.completed_keys() == {"old"}
    assert pq.read_metadata(legacy).metadata[_META_CHECKSUM].startswith(b"sha256:")  # stamped
    with pytest.warns(UserWarning, match="older.parquet"):
        assert store.read()["value"].tolist() == [0.5]  # same content


def test_malformed_metadata_is_skipped_with_a_warning_not_a_traceback(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    table = pa.table({"x": [1]})
    pq.write_table(
        table.replace_schema_metadata({b"debiasbench.schema_version": b"one"}), tmp_path / "trials" / "version.parquet"
    )
    pq.write_table(
        table.replace_schema_metadata({b"debiasbench.schema_version": b"1", b"debiasbench.status": b"completed"}),
        tmp_path / "trials" / "nokey.parquet",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.statuses() == {}
    messages = " ".join(str(w.message) for w in caught)
    assert "version.parquet: malformed schema version" in messages
    assert "nokey.parquet: its metadata lacks debiasbench.trial_key" in messages


def test_damaged_predictions_are_refused_naming_the_file(tmp_path):
    store = ResultStore(tmp_path)
    store.write_trial(
        TrialRecord(
            trial=synthetic.trial("cmnist", "vanilla", {}),
            key="k",
            status="completed",
            predictions={
                "role": ["main"] * 200,
                "index": list(range(200)),
                "target": [1] * 200,
                "bias": [2] * 200,
                "prediction": list(range(200)),
            },
        )
    )
    path = tmp_path / "predictions" / "k.parquet"
    faultkit.flip(path, faultkit.parquet_column_offset(path, "prediction") + 8)
    with pytest.raises(DamagedFileError, match=r"predictions/k\.parquet is damaged"):
        store.predictions("k")
    with pytest.raises(Exception, match="no predictions stored for trial other"):
        store.predictions("other")


def _big_record(rows: int) -> TrialRecord:
    import random

    rng = random.Random(0)
    return TrialRecord(
        trial=synthetic.trial("cmnist", "vanilla", {}),
        key="big",
        status="completed",
        metrics={
            "epoch": [i // 100 for i in range(rows)],
            "role": ["main"] * rows,
            "split": ["test"] * rows,
            "subset": ["group"] * rows,
            "target": [i % 10 for i in range(rows)],
            "bias": [i % 7 for i in range(rows)],
            "metric": ["accuracy"] * rows,
            "value": [rng.random() for _ in range(rows)],
        },
    )


def test_a_full_disk_gives_one_line_with_the_file_cause_and_fix_and_no_temp_file(tmp_path, monkeypatch):
    with faultkit.tiny_filesystem(tmp_path, 512) as tiny:
        root = tiny if tiny is not None else tmp_path / "sim"
        store = ResultStore(root / "results")
        store.ensure_writable()
        if tiny is not None:
            faultkit.fill(tiny, leave_bytes=8 << 10)  # a real tmpfs, nearly full
        else:
            monkeypatch.setattr("os.fsync", faultkit.enospc)  # no mount here: simulate ENOSPC at the write
        with pytest.raises(StoreWriteError) as error:
            store.write_trial(_big_record(20_000))
        message = str(error.value)
        assert f"{store.root}/trials/big.parquet" in message and "the disk is full" in message
        assert "--results" in message and "\n" not in message
        assert not [p for p in (root / "results" / "trials").iterdir() if p.name.endswith(".tmp")]
        assert isinstance(error.value, OSError)
        print("real tmpfs" if tiny is not None else "simulated ENOSPC (no mount permitted)")


def test_report_and_merge_of_a_missing_store_are_errors_not_empty_results(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main as report_main
    from debiasbench.benchmark.store.__main__ import main as store_main

    missing = tmp_path / "resluts"  # a typo
    assert report_main([str(missing)]) == 2
    assert "no result store at" in capsys.readouterr().err and not missing.exists()
    assert store_main(["merge", str(missing), "--into", str(tmp_path / "merged")]) == 2
    assert "no result store at" in capsys.readouterr().out


def test_a_report_build_hashes_each_file_once_and_a_driver_on_every_scan(tmp_path, monkeypatch):
    import debiasbench.benchmark.store.trial_files as trial_files
    from debiasbench.benchmark.report.build import build_report
    from debiasbench.benchmark.store import verified_once

    store, good, bad, bad_path = _store_with_two_trials(tmp_path)
    hashed = []
    real = trial_files.verify_parquet_bytes
    monkeypatch.setattr(trial_files, "verify_parquet_bytes", lambda data, meta: hashed.append(1) or real(data, meta))
    for _ in range(3):
        store.completed_keys()
    assert len(hashed) == 6  # outside a report: every scan verifies every file
    hashed.clear()
    build_report(str(tmp_path / "results"), tmp_path / "report")
    assert len(hashed) == 2  # tables, diagnostics and provenance scan the store; each file hashed once
    hashed.clear()
    with verified_once():
        store.completed_keys()
        store.completed_keys()
    assert len(hashed) == 2  # the second scan in the block trusts the first
    _damage_pages(bad_path)
    with pytest.warns(UserWarning, match="damaged"):
        assert store.completed_keys() == {good}  # outside the block, damage in place is always caught
