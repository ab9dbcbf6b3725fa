"""tools/rerun_trial.py: a stored trial retrained on the same CPU reproduces to the last bit; a stored
value that differs is found at its epoch; bad input is one line and exit 2."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.experiments.worker import run_one_trial
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.tools.rerun_trial import main


@pytest.fixture
def stored(tmp_path, toy_plugin):
    trial = resolve_trial(TrialConfig("toy", "vanilla", epochs=3))
    spec = {
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
    run_one_trial(trial, spec)
    return tmp_path / "r", trial.key


def _args(tmp_path, store, key, *more):
    return [str(store), key, "--data-root", str(tmp_path), "--cache-dir", str(tmp_path / "c"), *more]


def test_a_trial_rerun_on_the_same_cpu_is_identical(tmp_path, stored, capsys):
    store, key = stored
    assert main(_args(tmp_path, store, key, "--epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "identical to the last bit over 2 epoch(s)" in out and out.count(" same") == 2


def test_a_stored_value_that_differs_is_found_at_its_epoch(tmp_path, stored, capsys):
    store, key = stored
    path = store / "trials" / f"{key}.parquet"
    table = pq.read_table(path)
    rows = table.to_pydict()
    for i, (epoch, split, subset, metric) in enumerate(
        zip(rows["epoch"], rows["split"], rows["subset"], rows["metric"])
    ):
        if (epoch, split, subset, metric) == (2, "test", "all", "accuracy"):
            rows["value"][i] += 1e-12  # one last-bit-sized change
    changed = pa.table(rows, schema=table.schema).replace_schema_metadata(table.schema.metadata)
    ResultStore(store)._atomic_write(changed, "trials", f"{key}.parquet")
    assert main(_args(tmp_path, store, key)) == 1
    out = capsys.readouterr().out
    assert "first difference at epoch 2" in out and out.count("DIFFERS") == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path, stored, capsys):
    store, key = stored
    assert main(_args(tmp_path, store, "nokey")) == 2
    assert "no trial 'nokey'" in capsys.readouterr().out
    assert main(_args(tmp_path, tmp_path / "missing", key)) == 2
    assert "no result store" in capsys.readouterr().out
    assert main(_args(tmp_path, store, key, "--epochs", "0")) == 2
    assert "--epochs" in capsys.readouterr().out
