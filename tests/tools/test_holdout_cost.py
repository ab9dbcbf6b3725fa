"""tools/holdout_cost: each validation-protocol trial is paired with the paper-protocol trial of the
same configuration and seed; per method a paired t interval over seeds (a method's variants averaged
into one unit), per cell a t interval over methods; trials without a twin are counted, and stores
that pair nothing are one line naming the fix (exit 2). Numbers worked out by hand below."""

import importlib.util
from pathlib import Path

import pytest

from debiasbench.benchmark.store import ResultStore
from debiasbench.tools.holdout_cost import cell_labels, holdout_cost, main

_spec = importlib.util.spec_from_file_location(
    "report_synthetic", Path(__file__).parents[1] / "fixtures" / "report_golden" / "synthetic.py"
)
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)

PARAMS = {"ratio": 99.5, "difficulty": 4, "target": "digit", "unbiased_train": False}
# (method, hyper-parameters) -> per seed (paper protocol, validation protocol) final test accuracy, %.
RUNS = {
    ("vanilla", None): [(30, 25), (32, 28), (34, 28)],  # differences -5, -4, -6
    ("group_dro", "a"): [(40, 38), (40, 39), (40, 40)],  # -2, -1, 0
    ("group_dro", "b"): [(50, 50), (50, 49), (50, 48)],  # 0, -1, -2 -> averaged per seed: -1, -1, -1
}


def _trial(store, method, variant, seed, protocol, accuracy, **extra):
    hparams = {"variant": variant} if variant else None
    config = syn.trial("cmnist", method, PARAMS, seed, hparams=hparams, protocol=protocol, **extra)
    syn.simple(store, config, (accuracy / 100, accuracy / 100))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("holdout")
    paper, validation = ResultStore(root / "paper"), ResultStore(root / "validation")
    for store in (paper, validation):
        store.ensure_writable()
    for (method, variant), seeds in RUNS.items():
        for seed, (full, held_out) in enumerate(seeds):
            _trial(paper, method, variant, seed, "paper", full)
            _trial(validation, method, variant, seed, "validation", held_out, validation_fraction=0.1)
    _trial(validation, "vanilla", None, 3, "validation", 90, validation_fraction=0.1)  # no paper twin
    _trial(paper, "vanilla", None, 0, "paper", 99, weight_decay=0.5)  # another experiment: never a twin
    return str(root / "validation"), str(root / "paper")


def test_per_method_paired_intervals_and_the_cell_over_methods(stores):
    validation, paper = stores
    methods, cells, unpaired = holdout_cost(validation, [paper])
    assert unpaired == 1
    rows = methods.set_index("method")
    # Vanilla: differences -5, -4, -6: mean -5, std 1, t(0.975, 2) / sqrt(3) = 2.4841.
    assert rows.loc["vanilla", ["paper", "validation", "difference", "n"]].tolist() == pytest.approx([32, 27, -5, 3])
    assert rows.loc["vanilla", "ci_low"] == pytest.approx(-7.4841, abs=1e-3)
    assert rows.loc["vanilla", "ci_high"] == pytest.approx(-2.5159, abs=1e-3)
    # Group DRO: its two variants averaged per seed give -1, -1, -1: no spread.
    assert rows.loc["group_dro", ["paper", "validation", "difference", "ci_low", "ci_high", "n"]].tolist() == (
        pytest.approx([45, 44, -1, -1, -1, 3])
    )
    # The cell: methods -5 and -1: mean -3, std 2.8284, sem 2, t(0.975, 1) = 12.7062.
    (cell,) = cells.to_dict("records")
    assert cell["cell"] == "cmnist" and cell["n"] == 2 and cell["lower"] == 2
    assert [cell["difference"], cell["ci_low"], cell["ci_high"]] == pytest.approx([-3, -28.4124, 22.4124], abs=1e-3)


def test_cells_are_named_by_the_parameters_that_differ():
    labels = cell_labels(["cmnist", "cmnist"], [{"ratio": 95.0, "difficulty": 4}, {"ratio": 99.5, "difficulty": 4}])
    assert labels == ["cmnist ratio=95.0", "cmnist ratio=99.5"]


def test_the_cli_prints_the_tables_and_writes_the_csv(stores, tmp_path, capsys):
    validation, paper = stores
    assert main([validation, "--paper", paper, "--csv", str(tmp_path / "cost.csv")]) == 0
    out = capsys.readouterr().out
    assert "over 2 methods: -3.00 [-28.41, 22.41]" in out and "2 of 2 lower" in out
    assert "| vanilla | 32.00 | 27.00 | -5.00 [-7.48, -2.52] | 3 |" in out
    assert "1 validation-protocol trial(s) have no paper-protocol twin" in out
    assert (tmp_path / "cost.csv").read_text().startswith("cell,method,paper,validation,difference")


def test_stores_without_twins_are_one_line_naming_the_fix(stores, capsys):
    validation, _ = stores
    assert main([validation, "--paper", validation]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no validation-protocol trial has a paper-protocol twin" in err
    assert "--protocol paper" in err


def test_a_trial_shipped_in_two_paper_stores_is_one_twin(stores):
    validation, paper = stores
    methods, _, unpaired = holdout_cost(validation, [paper, paper])
    assert unpaired == 1 and methods.set_index("method").loc["vanilla", "n"] == 3


def test_a_missing_store_or_an_unwritable_csv_is_one_line_naming_the_fix(stores, tmp_path, capsys):
    validation, paper = stores
    assert main([validation, "--paper", str(tmp_path / "no_such_store")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no result store at" in err and "Check the path" in err
    (tmp_path / "a_file").write_text("")
    assert main([validation, "--paper", paper, "--csv", str(tmp_path / "a_file" / "cost.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "pass --csv a writable path" in err
