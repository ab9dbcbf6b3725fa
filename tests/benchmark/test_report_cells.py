"""benchmark/report/cells.py on small stores: rows in the paper's order whatever the store's order,
trials that differ in a setting kept apart (each averaged over its own seeds), failed trials
counted, and per-class columns when a trial lacks a class."""

import math

import pytest
from report_kit import _controlled, syn

from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

ACCURACIES = {"climbing": 0.1, "diving": 0.2, "fishing": 0.3, "racing": 0.4, "throwing": 0.5, "vaulting": 0.6}


def new_store(tmp_path) -> ResultStore:
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    return store


def vanilla(ratio: float, seed: int = 0, epochs: int = 2) -> dict:
    return syn.trial("cmnist", "vanilla", _controlled(ratio, 4, "digit"), seed, epochs=epochs)


def test_rows_follow_the_paper_whatever_order_the_store_holds(tmp_path):
    store = new_store(tmp_path)
    for ratio in (99.5, 95.0, 99.0, 98.0):
        syn.simple(store, vanilla(ratio), (ratio / 200, 0.1))
    table = build_table(2, select(load_store(store.root)))
    assert [r.row_id for r in table.rows] == [
        f"{dataset}|{ratio}|" for dataset in ("cmnist", "ccifar1", "ccifar2") for ratio in (95.0, 98.0, 99.0, 99.5)
    ]
    assert "Setting" not in table.row_headers and all(len(r.labels) == 2 for r in table.rows)
    vanilla_cells = table.tidy[(table.tidy["col_id"] == "unbiased|vanilla") & (table.tidy["dataset"] == "cmnist")]
    assert vanilla_cells["mean"].tolist() == pytest.approx([47.5, 49.0, 49.5, 49.75])


def test_trials_that_differ_in_a_setting_become_rows_each_averaged_over_its_seeds(tmp_path):
    store = new_store(tmp_path)
    syn.simple(store, vanilla(95.0, seed=0, epochs=2), (0.50, 0.1))
    syn.simple(store, vanilla(95.0, seed=1, epochs=2), (0.70, 0.1))
    syn.simple(store, vanilla(95.0, seed=0, epochs=3), (0.90, 0.1))
    table = build_table(2, select(load_store(store.root)))

    # Every paper row appears once per setting, settings in order; the setting is a row label.
    cmnist = [r for r in table.rows if r.dataset == "cmnist"]
    assert [(r.row, r.setting) for r in cmnist] == [
        (ratio, setting) for ratio in ("95.0", "98.0", "99.0", "99.5") for setting in ("epochs=2", "epochs=3")
    ]
    assert table.row_headers[-1] == "Setting" and cmnist[0].labels[-1] == "epochs=2"
    cells = table.tidy[(table.tidy["col_id"] == "unbiased|vanilla") & (table.tidy["row"] == "95.0")]
    two, three = (cells[cells["setting"] == s].iloc[0] for s in ("epochs=2", "epochs=3"))
    # Two seeds: mean 60, sample std sqrt(((50-60)^2 + (70-60)^2) / 1) = 14.142...
    assert (two["mean"], two["std"], two["n"], two["seeds"]) == (pytest.approx(60.0), pytest.approx(200**0.5), 2, "0;1")
    assert (three["mean"], three["n"], three["seeds"], three["epochs"]) == (pytest.approx(90.0), 1, "0", "3")
    assert math.isnan(three["std"])  # one seed has no spread
    assert len(table.trials_used) == 3


def test_a_failed_trial_is_counted_and_listed_but_never_averaged(tmp_path):
    store = new_store(tmp_path)
    syn.simple(store, vanilla(95.0, seed=0), (0.5, 0.1))
    syn.write(store, vanilla(95.0, seed=1), status="failed", error="CUDA out of memory")
    table = build_table(2, select(load_store(store.root)))
    cell = table.tidy[(table.tidy["row_id"] == "cmnist|95.0|") & (table.tidy["col_id"] == "unbiased|vanilla")].iloc[0]
    assert (cell["mean"], cell["n"], cell["n_failed"]) == (pytest.approx(50.0), 1, 1)
    assert len(table.failed) == 1 and len(table.trials_used) == 1


BAR_ORDER = ("climbing", "diving", "fishing", "racing", "throwing", "vaulting")
BAR_TEST_COUNTS = {"climbing": 105, "diving": 159, "fishing": 42, "racing": 132, "throwing": 85, "vaulting": 131}


def bar_trial_without(store: ResultStore, seed: int, accuracies: dict, missing: str) -> None:
    """A BAR trial whose evaluation has no rows for one class (its index stays unused)."""
    config = syn.trial("bar", "lff", {}, seed=seed)  # the paper's epochs: the same setting as syn.bar_trial
    rows = syn.Rows()
    role = config["predictor_role"]
    for index, name in enumerate(BAR_ORDER):
        if name != missing:
            rows.add(1, role, "test", "class", "accuracy", accuracies[name], target=index)
            rows.add(1, role, "test", "class", "count", BAR_TEST_COUNTS[name], target=index)
    rows.add(1, role, "test", "all", "accuracy", 0.5)
    syn.write(store, config, rows)


def test_a_trial_without_a_class_leaves_only_that_class_cell_short(tmp_path):
    store = new_store(tmp_path)
    syn.bar_trial(store, "lff", 0, ACCURACIES)
    bar_trial_without(store, 1, {name: value + 0.2 for name, value in ACCURACIES.items()}, missing="fishing")
    tidy = build_table(6, select(load_store(store.root))).tidy
    row = tidy[(tidy["row"] == "lff") & (tidy["kind"] == "cell")].set_index("column")
    # fishing: seed 0 only (30); diving: both seeds, (20 + 40) / 2.
    assert (row.loc["fishing", "n"], row.loc["fishing", "seeds"]) == (1, "0")
    assert row.loc["fishing", "mean"] == pytest.approx(30.0)
    assert row.loc["diving", "n"] == 2 and row.loc["diving", "mean"] == pytest.approx(30.0)
