"""Epoch selection rules (docs/protocol.md#training-and-selection) as pure functions of the result store's metric rows.

Each selector picks one epoch per trial from the rows of the trial's predictor role:

    last             the final epoch (the paper's rule)
    val_accuracy     best plain validation accuracy (split "valid", subset "all", sample_accuracy):
                     needs no bias labels
    val_worst_group  best worst-group validation accuracy: reads validation bias labels, so tables
                     mark it as more supervision than a method declaring none receives
    test_oracle      best unbiased test accuracy: optimistic, labelled as such, never a default

Ties go to the earliest epoch, as early stopping would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass

import pandas as pd

from debiasbench.benchmark.metric_names import REPORTED, TEST_ACCURACY, VALID_ACCURACY, VALID_WORST_GROUP_ACCURACY


class SelectorError(ValueError):
    """A selector the store (or the chosen protocol) cannot support."""


@dataclass(frozen=True)
class Selector:
    name: str
    description: str  # for captions
    split: str | None  # the split whose metric picks the epoch (None: the final epoch)
    subset: str | None
    metric: str | None
    uses_test_set: bool
    uses_validation_bias_labels: bool


SELECTORS: dict[str, Selector] = {
    s.name: s
    for s in (
        Selector("last", "final epoch, as in the paper", None, None, None, False, False),
        Selector(
            "val_accuracy",
            "epoch of best validation accuracy (no bias labels)",
            *astuple(REPORTED[VALID_ACCURACY]),
            False,
            False,
        ),
        Selector(
            "val_worst_group",
            "epoch of best worst-group validation accuracy (uses validation bias labels)",
            *astuple(REPORTED[VALID_WORST_GROUP_ACCURACY]),
            False,
            True,
        ),
        Selector(
            "test_oracle",
            "TEST ORACLE: epoch of best unbiased test accuracy (optimistic, not a fair protocol)",
            *astuple(REPORTED[TEST_ACCURACY]),
            True,
            False,
        ),
    )
}
DEFAULT_SELECTOR = "last"


def get_selector(name: str) -> Selector:
    try:
        return SELECTORS[name]
    except KeyError:
        raise SelectorError(f"unknown selector {name!r}; choose one of: {', '.join(SELECTORS)}") from None


def select_epochs(
    metrics: pd.DataFrame, predictor_roles: Mapping[str, str] | pd.Series, selector: str = DEFAULT_SELECTOR
) -> pd.DataFrame:
    """One row per trial: trial_key, epoch (the selected one) and score (the selecting metric's
    value there; NaN for `last`). `metrics` holds long-format rows (trial_key, epoch, role, split,
    subset, metric, value); only rows of each trial's predictor role count. Trials without any
    evaluation row are left out (the caller reports them as missing)."""
    rule = get_selector(selector)
    roles = pd.Series(dict(predictor_roles)) if not isinstance(predictor_roles, pd.Series) else predictor_roles
    if metrics.empty:
        return pd.DataFrame(
            {"trial_key": pd.Series(dtype=str), "epoch": pd.Series(dtype="int64"), "score": pd.Series(dtype=float)}
        )
    own = metrics[metrics["role"].to_numpy() == metrics["trial_key"].map(roles).to_numpy()]
    evaluated = own[own["split"].isin(["test", "valid"])]
    if rule.split is None:
        last = evaluated.groupby("trial_key", sort=True)["epoch"].max()
        return pd.DataFrame({"trial_key": last.index, "epoch": last.to_numpy().astype("int64"), "score": float("nan")})
    rows = own[(own["split"] == rule.split) & (own["subset"] == rule.subset) & (own["metric"] == rule.metric)]
    if rule.split == "valid":
        lacking = sorted(set(evaluated["trial_key"]) - set(rows["trial_key"]))
        if lacking:
            raise SelectorError(
                f"selector {rule.name!r} needs split 'valid' rows ({rule.subset}/{rule.metric}) but "
                f"{len(lacking)} trial(s) have none (e.g. {lacking[0]}): run them under the validation "
                "protocol (run_all.py ... with the validation protocol, which holds out a validation split) "
                "and report with --protocol validation, or use --selector last"
            )
    # Sort by score descending, then epoch ascending, so the first row per trial is the earliest best.
    ordered = rows.sort_values(["trial_key", "value", "epoch"], ascending=[True, False, True], kind="mergesort")
    best = ordered.drop_duplicates("trial_key")
    return pd.DataFrame(
        {
            "trial_key": best["trial_key"].to_numpy(),
            "epoch": best["epoch"].to_numpy().astype("int64"),
            "score": best["value"].to_numpy(dtype=float),
        }
    ).reset_index(drop=True)
