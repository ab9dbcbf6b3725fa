"""The selection comparison: per method, the number and rank under the final epoch, the two
validation selectors and the test oracle (labelled an upper bound), on a small known store of
validation-protocol trials whose selected epochs and ranks are worked out by hand below."""

import pandas as pd
import pytest
from report_kit import syn

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.store import ResultStore

# Two stored epochs per trial; test accuracy at epoch 1 (first) and 2 (final), plus seed * 0.01.
# Validation per epoch: (sample accuracy, worst-group accuracy).
#   Vanilla: test 0.70 -> 0.60, valid accuracy 0.90 -> 0.80 (best epoch 1), worst 0.1 -> 0.3 (best epoch 2)
#   LfF:     test 0.50 -> 0.65, valid accuracy 0.90 -> 0.85 (best epoch 1), worst 0.2 -> 0.4 (best epoch 2)
TRIALS = {
    "vanilla": ((0.70, 0.60), [(0.90, 0.1), (0.80, 0.3)]),
    "lff": ((0.50, 0.65), [(0.90, 0.2), (0.85, 0.4)]),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation_store")
    store = ResultStore(root)
    store.ensure_writable()
    params = {"ratio": 99.5, "difficulty": 4, "target": "digit", "unbiased_train": False}
    for method, ((first, final), valid) in TRIALS.items():
        for seed in (0, 1, 2):
            shift = 0.01 * seed
            config = syn.trial("cmnist", method, params, seed, protocol="validation", validation_fraction=0.1)
            syn.simple(store, config, (final + shift, final + shift), first=(first + shift, first + shift), valid=valid)
    out = tmp_path_factory.mktemp("report")
    markdown = build_report(str(root), out, ReportOptions(figures=False))
    return out, markdown


def test_numbers_and_ranks_per_selector(report):
    out, _ = report
    frame = pd.read_csv(out / "selection.csv").set_index(["method", "selector"])
    # Means over seeds (+0, +1, +2 points -> +1 on average):
    #   final epoch:      Vanilla 61, LfF 66 -> LfF first
    #   val accuracy:     epoch 1 for both -> Vanilla 71, LfF 51 -> Vanilla first
    #   val worst group:  epoch 2 for both -> Vanilla 61, LfF 66 -> LfF first
    #   test oracle:      the better test epoch -> Vanilla 71 (epoch 1), LfF 66 (epoch 2) -> Vanilla first
    expected = {
        ("Vanilla", "last"): (61, 2),
        ("LfF", "last"): (66, 1),
        ("Vanilla", "val_accuracy"): (71, 1),
        ("LfF", "val_accuracy"): (51, 2),
        ("Vanilla", "val_worst_group"): (61, 2),
        ("LfF", "val_worst_group"): (66, 1),
        ("Vanilla", "test_oracle"): (71, 1),
        ("LfF", "test_oracle"): (66, 2),
    }
    for key, (mean, rank) in expected.items():
        assert frame.loc[key, "mean"] == pytest.approx(mean), key
        assert frame.loc[key, "rank"] == rank, key
        # std of (x, x+1, x+2) is 1: t(0.975, 2) * 1 / sqrt(3) = 2.4841
        assert frame.loc[key, "ci_high"] - mean == pytest.approx(2.4841, abs=1e-3)


def test_table_labels_the_oracle_and_gives_kendall_tau(report):
    out, markdown = report
    text = (out / "selection.md").read_text()
    assert "test oracle (upper bound)" in text and "optimistic upper bound, not a protocol" in text
    # Kendall's tau with the final epoch's ranking of two methods: val accuracy reverses it (-1), the
    # worst-group selector keeps it (1), the oracle reverses it (-1).
    assert "| tau with final epoch | — | -1.00 | 1.00 | -1.00 |" in text
    # Each method carries its supervision symbol (both are ○ here) and the caption says what it means.
    assert "| LfF ○ | 66.00 [63.52, 68.48] (#1) | 51.00 [48.52, 53.48] (#2) |" in text
    assert "Supervision: ○ none, ◐ bias-tailored, ● bias labels" in text
    assert set(pd.read_csv(out / "selection.csv")["supervision"]) == {"○"}
    page = (out / "index.html").read_text()
    assert 'id="selection"' in page and "test oracle (upper bound)" in page and 'data-sort="LfF ○">LfF ○</td>' in page
