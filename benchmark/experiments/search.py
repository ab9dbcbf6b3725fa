"""Hyper-parameter search bookkeeping, as pure functions of the result store (torch-free).

A search runs one trial per hparams_seed k (k = 0 is the paper's defaults; k > 0 draws from the
method's search space, deterministically per (method, dataset, k, parameter)) under the
`validation` protocol; the best k per (method, dataset, dataset parameters) is the one with the
highest validation metric at its last epoch. Only validation metrics may be optimised.
"""

from __future__ import annotations

import json

import pandas as pd

from debiasbench.benchmark.metric_names import REPORTED, SEARCHABLE, VALID_ACCURACY


def check_metric(metric: str) -> None:
    """Searches and schedulers may only ever optimise a validation metric."""
    if metric not in SEARCHABLE:
        raise ValueError(
            f"refusing to optimise {metric!r}: a search may only optimise a validation metric "
            f"({' or '.join(SEARCHABLE)}); the test set is touched once, at the end"
        )


_METRIC_ROWS = {name: (REPORTED[name].split, REPORTED[name].subset, REPORTED[name].metric) for name in SEARCHABLE}


def last_epoch_values(frame: pd.DataFrame, split: str, subset: str, metric: str) -> pd.DataFrame:
    """Per trial: the predictor's value of (split, subset, metric) at its last recorded epoch."""
    rows = frame[
        (frame["split"] == split)
        & (frame["subset"] == subset)
        & (frame["metric"] == metric)
        & (frame["role"] == frame["predictor_role"])
        & frame["status"].isin(["completed", "stopped"])
    ]
    last = rows[rows["epoch"] == rows.groupby("trial_key")["epoch"].transform("max")]
    return last[["trial_key", "value", "epoch"]]


def search_results(frame: pd.DataFrame, metric: str = VALID_ACCURACY) -> pd.DataFrame:
    """One row per search trial (validation protocol): its configuration, the validation metric and
    the test unbiased accuracy at its last epoch, and whether it was stopped early."""
    check_metric(metric)
    if metric not in _METRIC_ROWS:
        raise ValueError(f"unknown validation metric {metric!r}; choose one of {', '.join(_METRIC_ROWS)}")
    trials = frame[frame["selection_protocol"] == "validation"].drop_duplicates("trial_key")
    if trials.empty:
        return pd.DataFrame()
    valid = last_epoch_values(frame, *_METRIC_ROWS[metric]).rename(columns={"value": metric, "epoch": "last_epoch"})
    test = last_epoch_values(frame, "test", "all", "accuracy").rename(columns={"value": "test_unbiased_accuracy"})
    out = (
        trials[
            [
                "trial_key",
                "dataset",
                "method",
                "dataset_params",
                "method_hparams",
                "hparams_seed",
                "trial_seed",
                "status",
            ]
        ]
        .merge(valid, on="trial_key")
        .merge(test[["trial_key", "test_unbiased_accuracy"]], on="trial_key", how="left")
    )
    return out.reset_index(drop=True)


def best_configurations(results: pd.DataFrame, metric: str = VALID_ACCURACY) -> pd.DataFrame:
    """The best hparams_seed per (method, dataset, dataset_params), ties to the lower seed."""
    if results.empty:
        return results
    ranked = results.sort_values([metric, "hparams_seed"], ascending=[False, True])
    return ranked.drop_duplicates(["method", "dataset", "dataset_params"]).reset_index(drop=True)


def summary_table(results: pd.DataFrame, metric: str = VALID_ACCURACY) -> str:
    """Markdown: the chosen configuration next to the defaults (k = 0), per search cell."""
    best = best_configurations(results, metric)
    lines = [
        "| method | dataset | dataset params | choice | hparams_seed | hyper-parameters | "
        f"{metric} | test unbiased accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in best.itertuples():
        cell = results[
            (results["method"] == row.method)
            & (results["dataset"] == row.dataset)
            & (results["dataset_params"] == row.dataset_params)
        ]
        defaults = cell[cell["hparams_seed"] == 0]
        params = ", ".join(
            f"{k}={v}" for k, v in json.loads(row.dataset_params).items() if k in ("ratio", "difficulty")
        )
        for label, item in (("searched", row), ("defaults", defaults.iloc[0] if len(defaults) else None)):
            if item is None:
                continue
            value = getattr(item, metric) if label == "searched" else item[metric]
            test = item.test_unbiased_accuracy if label == "searched" else item["test_unbiased_accuracy"]
            hparams = item.method_hparams if label == "searched" else item["method_hparams"]
            seed = item.hparams_seed if label == "searched" else item["hparams_seed"]
            lines.append(
                f"| {row.method} | {row.dataset} | {params} | {label} | {seed} | {hparams} | "
                f"{100 * value:.2f} | {100 * test:.2f} |"
            )
    return "\n".join(lines)
