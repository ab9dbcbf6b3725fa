"""Fault tests for raw data replaced under a store (ISSUE 29, item 0): trial keys do not record which
raw data a trial was trained on, so the fingerprint of the raw data (benchmark/raw_data.py) is
stored beside every key. A rerun on other raw data (the partial CIFAR-10 copy, then the full one; a
folder replaced in place) trains the trial again and says why; the report and merge never pool
trials trained on different raw data; stores written before fingerprints stay readable."""

import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_kit import syn as synthetic

from debiasbench.benchmark.experiments.planning import plan
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.experiments.worker import run_one_trial
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.raw_data import fingerprint
from debiasbench.benchmark.store import METRIC_FIELDS, ResultStore, StoreError, TrialRecord
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS, DataPaths

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy_with_raw_file(toy_plugin, tmp_path, monkeypatch):
    """The toy dataset, declaring one raw file under the data root (as CIFAR-10's batches are)."""
    load_plugins([toy_plugin])
    toy = DATASETS.get("toy")
    monkeypatch.setattr(toy, "raw_paths", classmethod(lambda cls, params, paths: [paths.data_root / "raw.bin"]))
    (tmp_path / "raw.bin").write_bytes(b"5,085 images of a partial copy")
    return resolve_trial(TrialConfig("toy", "vanilla", epochs=1))


def _env(tmp_path):
    return {
        "results": str(tmp_path / "r"),
        "data_root": str(tmp_path),
        "cache_dir": str(tmp_path / "c"),
        "device": "cpu",
        "cpus_per_trial": 1,
        "mixed_precision": False,
        "channels_last": False,
        "code_version": "test",
        "scheduler": None,
    }


def test_a_trial_stored_from_other_raw_data_is_trained_again_and_says_why(tmp_path, toy_with_raw_file, caplog):
    trial = toy_with_raw_file
    run_one_trial(trial, _env(tmp_path))
    store, paths = ResultStore(tmp_path / "r"), DataPaths(tmp_path, tmp_path / "c")
    recorded = store.trials()["raw_data"].tolist()
    assert recorded == [fingerprint([tmp_path / "raw.bin"])] and recorded[0].startswith("raw-v1:")
    assert store.finished()[trial.key] == ("completed", recorded[0])  # beside the key, not in it
    assert plan([trial], store, paths) == ([], [trial])  # the same raw data: complete

    (tmp_path / "raw.bin").write_bytes(b"50,000 images of the full dataset")  # replaced in place
    with caplog.at_level(logging.WARNING, logger="debiasbench.benchmark.experiments.planning"):
        todo, done = plan([trial], store, paths)
    assert todo == [trial] and done == []
    assert f"training {trial.key}" in caplog.text and "stored from other raw data" in caplog.text
    assert str(tmp_path) in caplog.text


def test_unknown_raw_data_on_either_side_proves_nothing(tmp_path, toy_with_raw_file):
    trial = toy_with_raw_file
    store = ResultStore(tmp_path / "r")
    store.ensure_writable()
    store.write_trial(
        TrialRecord(trial=trial.__dict__ | {"protocol": trial.protocol}, key=trial.key, status="completed")
    )
    paths = DataPaths(tmp_path, tmp_path / "c")
    assert store.finished()[trial.key] == ("completed", None)  # written before fingerprints: unknown
    assert plan([trial], store, paths)[1] == [trial]
    (tmp_path / "raw.bin").unlink()  # no raw data here: nothing to compare with
    assert plan([trial], store, paths)[1] == [trial]


def _trial(store, seed, raw, value):
    config = synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4}, seed=seed)
    key = synthetic.simple(store, config, (value, value - 0.1))
    if raw is not None:  # rewrite the record with the fingerprint a worker would have stored
        table = store.read_file(str(Path(store.root) / "trials" / f"{key}.parquet"))
        metrics = {name: table[name].to_pylist() for name in METRIC_FIELDS}
        store.write_trial(
            TrialRecord(trial=config, key=key, status="completed", metrics=metrics, info={"raw_data": raw})
        )
    return key


def _table2(tmp_path, store):
    from debiasbench.benchmark.report.cli import main

    assert main([str(store.root), "--tables", "2", "--no-figures", "--out", str(tmp_path / "report")]) == 0
    tidy = pd.read_csv(tmp_path / "report" / "table2.csv")
    cells = tidy[(tidy["method"] == "vanilla") & (tidy["row"].astype(str) == "99.0")]
    return cells[cells["n"] > 0]  # the cells the store fills (a metric it lacks stays empty)


def test_the_report_never_pools_trials_trained_on_different_raw_data(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.ensure_writable()
    _trial(store, 0, "raw-v1:aaaaaaaa0000", 0.30)
    _trial(store, 1, "raw-v1:bbbbbbbb0000", 0.50)
    cells = _table2(tmp_path, store)
    assert sorted(cells["n"]) == [1, 1]  # two rows, one per raw data: never one mean of both
    assert {s for s in cells["setting"]} == {"raw data=aaaaaaaa", "raw data=bbbbbbbb"}


def test_a_trial_of_unknown_raw_data_pools_with_the_one_known(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.ensure_writable()
    _trial(store, 0, None, 0.30)  # written before fingerprints
    _trial(store, 1, "raw-v1:aaaaaaaa0000", 0.50)
    cells = _table2(tmp_path, store)
    assert cells["n"].tolist() == [2]


def test_merge_keeps_trials_of_different_raw_data_apart_and_says_so(tmp_path):
    first, second = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    for store, raw in ((first, "raw-v1:aaaaaaaa0000"), (second, "raw-v1:bbbbbbbb0000")):
        store.ensure_writable()
        key = _trial(store, 0, raw, 0.30)  # identical numbers, other raw data
    result = subprocess.run(
        [sys.executable, "-m", "debiasbench.benchmark.store", "merge", str(tmp_path / "a"), str(tmp_path / "b")]
        + ["--into", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 conflict(s)" in result.stdout
    assert f"trial {key}:" in result.stdout and "other raw data (fingerprint bbbbbbbb)" in result.stdout
    assert ResultStore(tmp_path / "c").finished()[key] == ("completed", "raw-v1:aaaaaaaa0000")


def test_a_shipped_store_without_fingerprints_reads_as_unknown(tmp_path):
    from debiasbench.benchmark.report.loading import load_store

    # cmnist_random was shipped before fingerprints existed (later sets mix old and new trials).
    store = ResultStore(REPO / "results" / "reference" / "cmnist_random")
    assert set(raw for _, raw in store.finished().values()) == {None}
    assert load_store(store.location).trials["raw_data"].isna().all()


def test_merge_treats_an_unknown_fingerprint_as_no_difference(tmp_path):
    from debiasbench.benchmark.store.__main__ import main

    for name, raw in (("a", None), ("b", "raw-v1:aaaaaaaa0000")):  # a store from before, a rerun since
        store = ResultStore(tmp_path / name)
        store.ensure_writable()
        _trial(store, 0, raw, 0.30)  # the same numbers (a deterministic rerun)
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--into", str(tmp_path / "c")]) == 0


def test_two_files_of_one_key_trained_on_different_raw_data_are_a_conflict_in_one_store(tmp_path):
    store = ResultStore(tmp_path / "s")
    store.ensure_writable()
    key = _trial(store, 0, "raw-v1:aaaaaaaa0000", 0.30)
    other = ResultStore(tmp_path / "o")
    other.ensure_writable()
    _trial(other, 0, "raw-v1:bbbbbbbb0000", 0.30)
    (Path(store.root) / "trials" / "copy.parquet").write_bytes(
        (tmp_path / "o" / "trials" / f"{key}.parquet").read_bytes()
    )
    with pytest.raises(StoreError, match=f"trial {key} is held by two files trained on different raw data"):
        store.finished()
