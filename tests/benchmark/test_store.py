import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from debiasbench.benchmark.store import (
    SCHEMA_VERSION,
    ResultStore,
    StoreNotWritableError,
    StoreVersionError,
    TrialRecord,
)

TRIAL = {
    "dataset": "cmnist",
    "method": "lff",
    "supervision": "none",
    "predictor_role": "debiased",
    "dataset_params": {"ratio": 99.5},
    "method_hparams": {"q": 0.7},
    "trial_seed": 0,
    "data_seed": 0,
    "hparams_seed": 0,
    "epochs": 2,
    "protocol": "paper",
}
METRICS = {
    "epoch": [1, 2],
    "role": ["debiased"] * 2,
    "split": ["test"] * 2,
    "subset": ["all"] * 2,
    "target": [None, None],
    "bias": [None, None],
    "metric": ["accuracy"] * 2,
    "value": [0.4, 0.6],
}


def test_write_read_roundtrip_and_completed_keys(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.write_trial(
        TrialRecord(
            trial=TRIAL,
            key="k1",
            status="completed",
            metrics=METRICS,
            info={"wall_time_s": 3.0},
            predictions={"role": ["debiased"], "index": [0], "target": [1], "bias": [2], "prediction": [1]},
        )
    )
    store.write_trial(TrialRecord(trial=TRIAL, key="k2", status="failed", error="boom"))
    assert store.completed_keys() == {"k1"}
    frame = store.read()
    assert len(frame) == 3
    assert frame[frame.trial_key == "k1"]["value"].tolist() == [0.4, 0.6]
    assert frame[frame.trial_key == "k2"]["error"].item() == "boom"
    assert set(store.trials()["status"]) == {"completed", "failed"}
    assert store.predictions("k1")["prediction"].tolist() == [1]
    assert not [p for p in (tmp_path / "trials").iterdir() if p.name.startswith(".")]  # no temp files left


def test_foreign_and_corrupt_files_are_skipped_with_a_warning(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.write_trial(TrialRecord(trial=TRIAL, key="good", status="completed", metrics=METRICS))
    pq.write_table(pa.table({"x": [1]}), tmp_path / "trials" / "foreign.parquet")
    (tmp_path / "trials" / "corrupt.parquet").write_bytes(b"PAR1 not really")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = store.completed_keys()
        frame = store.read()
    assert keys == {"good"} and set(frame.trial_key) == {"good"}
    messages = " ".join(str(w.message) for w in caught)
    assert "foreign" in messages and "unreadable" in messages


def test_unknown_schema_version_is_rejected(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    table = pa.table({"x": [1]}).replace_schema_metadata(
        {b"debiasbench.schema_version": str(SCHEMA_VERSION + 1).encode()}
    )
    pq.write_table(table, tmp_path / "trials" / "future.parquet")
    with pytest.raises(StoreVersionError, match="schema version"):
        store.read()


def test_unwritable_results_path_names_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreNotWritableError, match="--results"):
        ResultStore(blocker / "results").ensure_writable()


def test_file_uri_works(tmp_path):
    store = ResultStore(f"file://{tmp_path}/store")
    store.ensure_writable()
    store.write_trial(TrialRecord(trial=TRIAL, key="k", status="completed", metrics=METRICS))
    assert ResultStore(tmp_path / "store").completed_keys() == {"k"}


def test_merge_drops_duplicates_reports_conflicts_and_upgrades_failures(tmp_path):
    from debiasbench.benchmark.store import merge_stores

    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    for store in (a, b):
        store.ensure_writable()
    a.write_trial(TrialRecord(trial=TRIAL, key="same", status="completed", metrics=METRICS, info={"hostname": "a"}))
    b.write_trial(TrialRecord(trial=TRIAL, key="same", status="completed", metrics=METRICS, info={"hostname": "b"}))
    a.write_trial(TrialRecord(trial=TRIAL, key="clash", status="completed", metrics=METRICS))
    b.write_trial(TrialRecord(trial=TRIAL, key="clash", status="completed", metrics={**METRICS, "value": [0.1, 0.2]}))
    a.write_trial(TrialRecord(trial=TRIAL, key="retry", status="failed", error="oom"))
    b.write_trial(TrialRecord(trial=TRIAL, key="retry", status="completed", metrics=METRICS))
    b.write_trial(TrialRecord(trial=TRIAL, key="only_b", status="completed", metrics=METRICS))

    report = merge_stores([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "c"))

    assert report.duplicates == ["same"] and report.conflicts == ["clash"] and report.upgraded == ["retry"]
    merged = ResultStore(tmp_path / "c")
    assert merged.completed_keys() == {"same", "clash", "retry", "only_b"}
    clash = merged.read().query("trial_key == 'clash'")["value"].tolist()
    assert clash == [0.4, 0.6]  # the first copy is kept, not silently overwritten


def test_merge_sees_a_copy_with_recorded_method_defaults_as_the_same_trial(tmp_path):
    """tools/record_defaults.py adds `method_defaults` to one copy; the results are the same."""
    from debiasbench.benchmark.store import merge_stores

    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    a.write_trial(
        TrialRecord(trial={**TRIAL, "method_defaults": {"q": 0.7}}, key="k", status="completed", metrics=METRICS)
    )
    b.write_trial(TrialRecord(trial=TRIAL, key="k", status="completed", metrics=METRICS))
    b.write_trial(TrialRecord(trial={**TRIAL, "epochs": 3}, key="other", status="completed", metrics=METRICS))
    a.write_trial(TrialRecord(trial=TRIAL, key="other", status="completed", metrics=METRICS))
    report = merge_stores([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "c"))
    assert report.duplicates == ["k"] and report.conflicts == ["other"]  # any other field still counts


def test_partial_records_are_unfinished_until_marked_stopped(tmp_path):
    store = ResultStore(tmp_path)
    store.ensure_writable()
    store.write_trial(TrialRecord(trial=TRIAL, key="k1", status="partial", metrics=METRICS))
    assert store.keys_with_status("partial") == {"k1"} and store.finished_keys() == set()
    store.set_status("k1", "stopped")
    assert store.finished_keys() == {"k1"} and store.keys_with_status("partial") == set()
    frame = store.read()
    assert set(frame["status"]) == {"stopped"} and frame["value"].tolist() == [0.4, 0.6]  # metrics untouched
    assert not [p for p in (tmp_path / "trials").iterdir() if p.name.startswith(".")]


def test_merge_replaces_a_partial_record_with_a_finished_one(tmp_path):
    ResultStore(tmp_path / "a").write_trial(TrialRecord(trial=TRIAL, key="k1", status="partial", metrics=METRICS))
    ResultStore(tmp_path / "b").write_trial(TrialRecord(trial=TRIAL, key="k1", status="completed", metrics=METRICS))
    from debiasbench.benchmark.store import merge_stores

    report = merge_stores([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "into"))
    assert report.copied == ["k1"] and report.upgraded == ["k1"]
    assert ResultStore(tmp_path / "into").completed_keys() == {"k1"}


def test_merge_names_the_two_cpus_of_a_trial_whose_copies_differ(tmp_path):
    """One seed is bit-reproducible on one CPU only: a conflict between copies run on different CPUs
    says so, and copies on the same CPU (or unrecorded ones) get no such excuse."""
    from debiasbench.benchmark.store import merge_stores

    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    other = {**METRICS, "value": [0.4, 0.61]}
    a.write_trial(TrialRecord(trial=TRIAL, key="cpus", status="completed", metrics=METRICS, info={"cpu": "X, AVX2"}))
    b.write_trial(TrialRecord(trial=TRIAL, key="cpus", status="completed", metrics=other, info={"cpu": "Y, AVX512"}))
    a.write_trial(TrialRecord(trial=TRIAL, key="one", status="completed", metrics=METRICS, info={"cpu": "X, AVX2"}))
    b.write_trial(TrialRecord(trial=TRIAL, key="one", status="completed", metrics=other, info={"cpu": "X, AVX2"}))
    a.write_trial(TrialRecord(trial=TRIAL, key="same", status="completed", metrics=METRICS, info={"cpu": "X, AVX2"}))
    b.write_trial(TrialRecord(trial=TRIAL, key="same", status="completed", metrics=METRICS, info={"cpu": "Y, AVX512"}))

    report = merge_stores([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "c"))

    assert sorted(report.conflicts) == ["cpus", "one"] and report.duplicates == ["same"]  # the CPU is run-specific
    (cpus,) = [line for line in report.conflict_lines if line.startswith("trial cpus")]
    (one,) = [line for line in report.conflict_lines if line.startswith("trial one")]
    assert "they ran on different CPUs, Y, AVX512 and X, AVX2" in cpus and "docs/protocol.md" in cpus
    assert "CPUs" not in one


def test_a_trial_file_written_before_the_cpu_column_reads_as_unknown_cpu(tmp_path):
    from debiasbench.benchmark.report.provenance import provenance_from_store

    store = ResultStore(tmp_path / "store")
    store.write_trial(TrialRecord(trial=TRIAL, key="new", status="completed", metrics=METRICS, info={"cpu": "X, AVX2"}))
    store.write_trial(TrialRecord(trial=TRIAL, key="old", status="completed", metrics=METRICS))
    path = tmp_path / "store" / "trials" / "old.parquet"
    old = pq.read_table(path)
    store._atomic_write(old.drop_columns(["cpu"]).replace_schema_metadata(old.schema.metadata), "trials", "old.parquet")
    assert "cpu" not in pq.read_schema(path).names

    trials = ResultStore(tmp_path / "store").trials().set_index("trial_key")
    assert trials.loc["new", "cpu"] == "X, AVX2" and pd.isna(trials.loc["old", "cpu"])
    assert provenance_from_store(tmp_path / "store")["cpu"] == {"X, AVX2": 1, "unknown": 1}


def test_a_reader_meeting_two_differing_copies_from_two_cpus_names_both(tmp_path):
    import shutil

    from debiasbench.benchmark.store import StoreError

    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    a.write_trial(TrialRecord(trial=TRIAL, key="k", status="completed", metrics=METRICS, info={"cpu": "X, AVX2"}))
    other = {**METRICS, "value": [0.4, 0.61]}
    b.write_trial(TrialRecord(trial=TRIAL, key="k", status="completed", metrics=other, info={"cpu": "Y, AVX512"}))
    shutil.copy(tmp_path / "b" / "trials" / "k.parquet", tmp_path / "a" / "trials" / "k (copy).parquet")
    with pytest.raises(StoreError, match=r"different results \(they ran on different CPUs, X, AVX2 and Y, AVX512"):
        ResultStore(tmp_path / "a").read()
