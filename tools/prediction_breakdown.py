"""Where a trained model's test predictions go: accuracy on the bias-aligned and the bias-conflicting
test samples, and how often a bias-conflicting sample is predicted as the class its bias value is
aligned with. Read from the stored per-sample test predictions (final epoch) of each completed trial.

    python -m debiasbench.tools.prediction_breakdown STORE [--method learned_mixin] [--ratio 95]

A model that leans on the bias predicts the bias's class often (Vanilla on Colored MNIST at 95%:
about 12% of conflicting samples, chance 10%); a model that learned to predict *against* the bias
almost never does, and loses accuracy on the aligned samples instead
(docs/methods-beyond-the-paper.md#learned_mixin-learned-mixin-h-clark-et-al-emnlp-2019).
Assumes, as the controlled datasets do, that bias value b is aligned with class b. Sample-level
accuracies: they weight groups by their size, unlike the report's unbiased accuracy, which averages
the groups.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from debiasbench.benchmark.store import ResultStore, StoreError


def breakdown(store: ResultStore, method: str | None = None, ratio: float | None = None) -> pd.DataFrame:
    """One row per completed trial with stored predictions (its predictor role only)."""
    trials = store.trials()
    trials = trials[trials["status"] == "completed"]
    if method is not None:
        trials = trials[trials["method"] == method]
    rows = []
    for trial in trials.to_dict("records"):
        params = json.loads(trial["dataset_params"])
        if ratio is not None and params.get("ratio") != ratio:
            continue
        try:
            predictions = store.predictions(trial["trial_key"])
        except StoreError:
            continue  # a compact store keeps no predictions
        predictions = predictions[predictions["role"] == trial["predictor_role"]]
        correct = predictions["prediction"] == predictions["target"]
        aligned = predictions["target"] == predictions["bias"]
        conflicting = predictions[~aligned]
        rows.append(
            {
                "method": trial["method"],
                "hparams": trial["method_hparams"],
                "dataset_params": trial["dataset_params"],
                "seed": trial["trial_seed"],
                "aligned_accuracy": 100 * correct[aligned].mean(),
                "conflicting_accuracy": 100 * correct[~aligned].mean(),
                "conflicting_predicted_as_bias_class": 100 * (conflicting["prediction"] == conflicting["bias"]).mean(),
            }
        )
    columns = ["method", "hparams", "dataset_params", "seed", "aligned_accuracy", "conflicting_accuracy"]
    return pd.DataFrame(rows, columns=[*columns, "conflicting_predicted_as_bias_class"]).sort_values(
        ["method", "dataset_params", "hparams", "seed"], ignore_index=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="result store (one that kept predictions, not a compact one)")
    parser.add_argument("--method", help="only this method")
    parser.add_argument("--ratio", type=float, help="only this ratio of bias-aligned training samples (%%)")
    args = parser.parse_args(argv)
    store = ResultStore(args.results)
    try:
        store.require_exists()
    except StoreError as error:
        parser.error(str(error))
    frame = breakdown(store, args.method, args.ratio)
    if frame.empty:
        print("no completed trial with stored predictions matches", file=sys.stderr)
        return 1
    # Settings shared by every row are printed once above the table, so the table stays readable.
    shared = [c for c in ("method", "hparams", "dataset_params") if frame[c].nunique() == 1]
    for column in shared:
        print(f"{column}: {frame[column].iloc[0]}")
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        print(frame.drop(columns=shared).round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
