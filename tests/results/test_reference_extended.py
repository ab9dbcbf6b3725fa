"""The shipped extended-comparison results (results/reference/cmnist_extended): trials of the methods
beyond the paper only, at full protocol on Colored MNIST; with the paper set beside them the report's
extended table has a column for every one of them."""

from pathlib import Path

import pytest

from debiasbench.benchmark.paper.axes import EXTENDED_METHODS, EXTENDED_TABLE
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


@pytest.fixture(scope="module")
def trials():
    return ResultStore(REFERENCE / "cmnist_extended").trials()


def test_only_methods_beyond_the_paper_at_full_protocol(trials):
    assert len(trials) > 0 and set(trials["status"]) == {"completed"}
    assert set(trials["method"]) <= set(EXTENDED_METHODS)
    assert set(trials["epochs"]) == {100} and set(trials["dataset"]) == {"cmnist"}
    # Under the paper's default data protocol: the reference assignment, difficulty 4.
    assert trials["dataset_params"].str.contains('"assignment": "reference"').all()
    assert trials["dataset_params"].str.contains('"difficulty": 4').all()


def test_every_shipped_trial_fills_the_extended_table(trials):
    cells = build_table(EXTENDED_TABLE, select(load_store(REFERENCE / "cmnist_extended"))).cells
    filled = cells[cells["n"] > 0]
    assert set(filled["column"]) == set(trials["method"])
    assert filled["mean"].between(0, 100).all()
    assert int(filled.groupby(["column", "row"])["n"].first().sum()) == len(trials)
