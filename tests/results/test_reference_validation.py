"""The shipped validation-protocol set (results/reference/cmnist_validation): every trial is a
completed Colored MNIST trial selected under the validation protocol, and docs/results.md's
selection tables are exactly what the report computes from it (regenerate them with
`python -m debiasbench.tools.selection_docs results/reference/cmnist_validation docs/results.md`)."""

from pathlib import Path

from debiasbench.benchmark.store import ResultStore
from debiasbench.tools.selection_docs import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "results" / "reference" / "cmnist_validation"


def test_every_shipped_trial_is_a_completed_validation_protocol_colored_mnist_trial():
    trials = ResultStore(REFERENCE).trials()
    assert len(trials) and set(trials["status"]) == {"completed"}
    assert set(trials["dataset"]) == {"cmnist"} and set(trials["selection_protocol"]) == {"validation"}
    # Three seeds of every (method, hyper-parameters, ratio): a cell with fewer would rank on less.
    per_cell = trials.groupby(["method", "method_hparams", "dataset_params"])["trial_seed"].nunique()
    assert (per_cell == 3).all(), per_cell[per_cell != 3]


def test_the_docs_selection_tables_are_the_stores():
    assert main([str(REFERENCE), str(REPO / "docs" / "results.md"), "--check"]) == 0
