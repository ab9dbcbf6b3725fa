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


def bar_trial_without(
    store: ResultStore, seed: int, accuracies: dict, missing: str | None, hparams: dict | None = None
) -> None:
    """A BAR trial whose evaluation has no rows for one class (its index stays unused)."""
    config = syn.trial("bar", "lff", {}, seed=seed, hparams=hparams)  # the paper's epochs, as syn.bar_trial
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


def cell_of(tidy, row_id: str, col_id: str, kind: str = "cell"):
    found = tidy[(tidy["row_id"] == row_id) & (tidy["col_id"] == col_id) & (tidy["kind"] == kind)]
    assert len(found) == 1, (row_id, col_id, kind)
    return found.iloc[0]


def test_paper_value_beside_each_cell_and_no_difference_off_the_papers_protocol(tmp_path):
    store = new_store(tmp_path)
    syn.simple(store, syn.trial("cmnist", "vanilla", _controlled(95.0, 4, "digit")), (0.5, 0.1))  # 100 epochs
    syn.simple(store, vanilla(99.0, epochs=2), (0.7, 0.1))  # 2 epochs: off the paper's protocol
    tidy = build_table(2, select(load_store(store.root))).tidy
    # The paper's Table 2, Colored MNIST, Vanilla: 77.63 +- 0.44 at 95%.
    # The two trials differ in their epochs, a setting: rows carry it.
    on = cell_of(tidy, "cmnist|95.0|epochs=100", "unbiased|vanilla")
    assert (on["paper_mean"], on["paper_std"]) == (pytest.approx(77.63), pytest.approx(0.44))
    assert on["difference"] == pytest.approx(50.0 - 77.63) and on["departures"] == ""
    off = cell_of(tidy, "cmnist|99.0|epochs=2", "unbiased|vanilla")
    assert off["mean"] == pytest.approx(70.0) and off["departures"] == "epochs=2 (paper: 100)"
    assert not math.isnan(off["paper_mean"]) and math.isnan(off["difference"])
    assert (tidy["selector"] == "last").all() and (tidy["protocol"] == "paper").all()


def test_table1_relative_drop_is_the_biased_models_shortfall_against_the_unbiased_ones(tmp_path):
    store = new_store(tmp_path)
    biased = syn.simple(store, syn.trial("cmnist", "vanilla", _controlled(99.0, 4, "digit")), (0.5, 0.1))
    unbiased = syn.simple(store, syn.trial("cmnist", "vanilla", _controlled(99.0, 4, "digit", True)), (0.8, 0.7))
    syn.write(store, syn.trial("cmnist", "vanilla", _controlled(99.0, 4, "digit", True), seed=1), status="failed")
    tidy = build_table(1, select(load_store(store.root))).tidy
    drop = cell_of(tidy, "cmnist|digit/color|", "relative_drop|relative_drop")
    # 100 * (50 - 80) / 80 = -37.5: the biased-trained model loses 37.5% of the unbiased one's accuracy.
    assert drop["mean"] == pytest.approx(-37.5) and drop["n"] == 1 and drop["n_failed"] == 1
    assert drop["trial_keys"] == f"{biased};{unbiased}" and drop["paper_mean"] == pytest.approx(-47.79)
    assert (drop["column"], drop["metric"], drop["method"]) == ("relative_drop", "relative_drop", "vanilla")
    # The other target has no trials: no drop, n 0.
    empty = cell_of(tidy, "cmnist|color/digit|", "relative_drop|relative_drop")
    assert math.isnan(empty["mean"]) and empty["n"] == 0 and empty["trial_keys"] == ""


def repair_store(tmp_path, protocol: str) -> ResultStore:
    """REPAIR's variants T (70% on test, 30% on validation) and R (50% on test, 80% on validation)."""
    store = new_store(tmp_path)
    p = _controlled(95.0, 4, "digit")
    for variant, final, valid in (
        ("T", (0.7, 0.6), [(0.2, 0.1), (0.3, 0.2)]),
        ("R", (0.5, 0.4), [(0.6, 0.5), (0.8, 0.7)]),
    ):
        config = syn.trial("cmnist", "repair", p, 0, {"variant": variant}, protocol=protocol)
        syn.simple(store, config, final, valid=valid)
    return store


@pytest.mark.parametrize(
    ("protocol", "selector", "best", "mean"),
    [("paper", "last", "T", 70.0), ("validation", "val_accuracy", "R", 50.0)],
)
def test_repairs_cell_is_its_best_variant_on_test_or_under_a_validation_selector_on_validation(
    tmp_path, protocol, selector, best, mean
):
    tidy = build_table(2, select(load_store(repair_store(tmp_path, protocol).root), protocol, selector)).tidy
    cell = cell_of(tidy, "cmnist|95.0|", "unbiased|repair")
    assert (cell["repair_variant"], cell["mean"], cell["n"]) == (best, pytest.approx(mean), 1)
    variants = tidy[(tidy["kind"] == "repair_variant") & (tidy["row_id"] == "cmnist|95.0|")]
    variants = variants[variants["col_id"] == "unbiased|repair"].set_index("repair_variant")
    assert variants["mean"].to_dict() == {"R": pytest.approx(50.0), "T": pytest.approx(70.0)}
    assert (variants["n_failed"] == 0).all()


def test_seeds_are_listed_in_order_with_their_epochs_and_keys(tmp_path):
    store = new_store(tmp_path)
    keys = {seed: syn.simple(store, vanilla(95.0, seed=seed), (0.5 + seed / 100, 0.1)) for seed in (3, 0, 4, 1, 2)}
    cell = cell_of(build_table(2, select(load_store(store.root))).tidy, "cmnist|95.0|", "unbiased|vanilla")
    assert (cell["seeds"], cell["epochs"]) == ("0;1;2;3;4", "2;2;2;2;2")
    assert cell["trial_keys"] == ";".join(keys[seed] for seed in range(5))
    assert cell["mean"] == pytest.approx(52.0) and cell["n"] == 5
    # Text columns no cell fills (no REPAIR here) are empty, not missing.
    assert (build_table(2, select(load_store(store.root))).tidy["repair_variant"] == "").all()


def test_method_variants_on_a_table_with_method_rows_become_their_own_rows(tmp_path):
    store = new_store(tmp_path)
    for q, shift in ((0.5, 0.0), (0.7, 0.1)):
        bar_trial_without(store, 0, {n: v + shift for n, v in ACCURACIES.items()}, None, {"q": q})
    table = build_table(6, select(load_store(store.root)))
    # The paper's rows stay (LfF's without trials), the variants follow them, each a row of its own.
    assert [r.row for r in table.rows] == ["vanilla", "rebias", "lff", "lff [q=0.5]", "lff [q=0.7]"]
    tidy = table.tidy[table.tidy["column"] == "climbing"].set_index("row")["mean"]
    assert (tidy["lff [q=0.5]"], tidy["lff [q=0.7]"]) == (pytest.approx(10.0), pytest.approx(20.0))
