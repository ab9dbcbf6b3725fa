"""Epoch selectors: pure functions of long-format metric rows."""

import pandas as pd
import pytest

from debiasbench.benchmark.report.selectors import SELECTORS, SelectorError, get_selector, select_epochs


def _rows(spec):
    """spec: (trial_key, epoch, role, split, subset, metric, value) tuples."""
    return pd.DataFrame(spec, columns=["trial_key", "epoch", "role", "split", "subset", "metric", "value"])


ROLES = {"a": "debiased", "b": "main"}
METRICS = _rows(
    [
        # trial a (LfF: the biased role must be ignored); test unbiased peaks at epoch 2 (tie with 3)
        *[("a", e, "debiased", "test", "all", "accuracy", v) for e, v in ((1, 0.2), (2, 0.7), (3, 0.7), (4, 0.5))],
        *[("a", e, "biased", "test", "all", "accuracy", 0.99) for e in (1, 2, 3, 4, 5)],
        *[
            ("a", e, "debiased", "valid", "all", "sample_accuracy", v)
            for e, v in ((1, 0.9), (2, 0.6), (3, 0.6), (4, 0.6))
        ],
        *[
            ("a", e, "debiased", "valid", "all", "worst_group_accuracy", v)
            for e, v in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.3))
        ],
        # trial b: best validation accuracy at epoch 3, worst-group at 1
        *[("b", e, "main", "test", "all", "accuracy", v) for e, v in ((1, 0.5), (2, 0.4), (3, 0.3))],
        *[("b", e, "main", "valid", "all", "sample_accuracy", v) for e, v in ((1, 0.5), (2, 0.6), (3, 0.8))],
        *[("b", e, "main", "valid", "all", "worst_group_accuracy", v) for e, v in ((1, 0.5), (2, 0.2), (3, 0.1))],
        ("b", 9, "main", "train", "aligned", "loss", 0.1),  # training rows never decide the last epoch
    ]
)


def _epochs(selector, metrics=METRICS):
    out = select_epochs(metrics, ROLES, selector)
    return dict(zip(out["trial_key"], out["epoch"]))


def test_last_is_the_final_evaluated_epoch_of_the_predictor_role():
    assert _epochs("last") == {"a": 4, "b": 3}  # not the biased role's epoch 5, not the train row's 9


def test_test_oracle_takes_the_earliest_best_test_epoch():
    out = select_epochs(METRICS, ROLES, "test_oracle")
    assert dict(zip(out["trial_key"], out["epoch"])) == {"a": 2, "b": 1}
    assert dict(zip(out["trial_key"], out["score"])) == {"a": 0.7, "b": 0.5}
    assert SELECTORS["test_oracle"].uses_test_set and "ORACLE" in SELECTORS["test_oracle"].description


def test_validation_selectors():
    assert _epochs("val_accuracy") == {"a": 1, "b": 3}
    assert _epochs("val_worst_group") == {"a": 3, "b": 1}
    assert SELECTORS["val_worst_group"].uses_validation_bias_labels
    assert not SELECTORS["val_accuracy"].uses_validation_bias_labels


def test_validation_selector_without_valid_rows_names_the_fix():
    test_only = METRICS[METRICS["split"] != "valid"]
    with pytest.raises(SelectorError, match="--protocol validation"):
        select_epochs(test_only, ROLES, "val_accuracy")
    partial = METRICS[~((METRICS["split"] == "valid") & (METRICS["trial_key"] == "b"))]
    with pytest.raises(SelectorError, match="1 trial"):
        select_epochs(partial, ROLES, "val_worst_group")


def test_unknown_selector_and_empty_input():
    with pytest.raises(SelectorError, match="last, val_accuracy"):
        get_selector("best")
    assert select_epochs(METRICS.iloc[0:0], ROLES, "last").empty
