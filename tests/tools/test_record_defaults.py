"""Migrating a store after the configuration gained a field: tools/record_defaults.py adds the
registered method defaults to trials stored without them (keys, rows and run information kept),
and benchmark/store/rewrite.py, which it and tools/rekey_trials.py share, keeps every row."""

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq

from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.store.rewrite import rewrite_config, stored_config
from debiasbench.tools.record_defaults import main, record_defaults
from debiasbench.tools.rekey_trials import rekey

_spec = importlib.util.spec_from_file_location(
    "report_synthetic", Path(__file__).parents[1] / "fixtures" / "report_golden" / "synthetic.py"
)
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _old_store(tmp_path, **trials):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    keys = {}
    for name, (method, hparams) in trials.items():
        rows = syn.Rows()
        rows.evaluation(1, "main", "test", 0.5)
        rows.evaluation(2, "main", "test", 0.6)
        config = syn.trial("cmnist", method, {"ratio": 99.5, "difficulty": 4}, hparams=hparams)
        keys[name] = syn.write(store, config, rows)
    return store, keys


def _rows(store, key):
    return pq.read_table(Path(store.root) / "trials" / f"{key}.parquet").drop(["config"]).to_pylist()


def test_defaults_are_recorded_and_nothing_else_changes(tmp_path, capsys):
    store, keys = _old_store(
        tmp_path, dis=("disent", {"lr": 0.01}), odd=("disent", {"no_such_field": 1}), plain=("vanilla", {})
    )
    before = _rows(store, keys["dis"])
    assert main([str(store.root), "--dry-run"]) == 0
    assert "would record the method defaults of 2 trial(s)" in capsys.readouterr().out
    assert "method_defaults" not in stored_config(store, str(Path(store.root) / "trials" / f"{keys['dis']}.parquet"))

    report = record_defaults(str(store.root))
    assert sorted(report.recorded) == sorted([keys["dis"], keys["plain"]])
    assert report.other_code == [f"{keys['odd']} (disent: ['no_such_field'])"]
    config = stored_config(store, str(Path(store.root) / "trials" / f"{keys['dis']}.parquet"))
    assert config["method_defaults"]["lr"] is None and config["method_hparams"] == {"lr": 0.01}
    assert _rows(store, keys["dis"]) == before  # same key, rows, status and run information
    assert set(ResultStore(store.root).statuses().values()) == {"completed"}
    again = record_defaults(str(store.root))  # idempotent, also for a method without hyper-parameters ({})
    assert again.recorded == [] and again.already == 2


def test_an_unknown_method_is_listed_not_guessed(tmp_path, capsys):
    store, keys = _old_store(tmp_path, mine=("my_plugin_method", {}))
    assert main([str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "unknown method (pass --plugin)" in out and f"{keys['mine']} (my_plugin_method)" in out


def test_a_rewrite_under_a_new_key_moves_the_whole_record(tmp_path):
    store, keys = _old_store(tmp_path, a=("vanilla", {}))
    path = str(Path(store.root) / "trials" / f"{keys['a']}.parquet")
    before = _rows(store, keys["a"])
    config = {**stored_config(store, path), "note": "x"}
    assert rewrite_config(store, path, config, key="0" * 20) == "0" * 20
    assert not (Path(store.root) / "trials" / f"{keys['a']}.parquet").exists()
    after = _rows(store, "0" * 20)
    assert [{k: v for k, v in r.items() if k != "trial_key"} for r in after] == [
        {k: v for k, v in r.items() if k != "trial_key"} for r in before
    ]
    assert (
        json.loads(pq.read_table(Path(store.root) / "trials" / ("0" * 20 + ".parquet")).column("config")[0].as_py())[
            "note"
        ]
        == "x"
    )


def test_rekeying_gives_a_trial_the_key_its_new_hyper_parameter_resolves_to(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    from debiasbench.benchmark.experiments.resolve import resolve_trial
    from debiasbench.benchmark.trial import TrialConfig

    today = resolve_trial(TrialConfig("cmnist", "learned_mixin", {"ratio": 95.0}))
    old = json.loads(today.to_json())
    old["method_hparams"].pop("bias_smoothing")  # as stored before the hyper-parameter existed
    rows = syn.Rows()
    rows.evaluation(1, "main", "test", 0.5)
    old_key = syn.write(store, old, rows, key="1" * 20)
    moved = rekey(str(store.root), "learned_mixin", "bias_smoothing", today.method_hparams["bias_smoothing"])
    assert moved == [(old_key, today.key)]
    assert ResultStore(store.root).statuses() == {today.key: "completed"}


def test_a_missing_store_is_a_line_that_names_it(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and "nowhere" in out


def test_a_missing_plugin_is_a_line_that_names_it(tmp_path, capsys):
    store, _ = _old_store(tmp_path, a=("vanilla", {}))
    assert main([str(store.root), "--plugin", "no_such_module_here"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("error: ") and "no_such_module_here" in out
