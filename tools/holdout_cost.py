"""What the validation protocol's hold-out costs at the final epoch, measured (torch-free):

    python -m debiasbench.tools.holdout_cost results/reference/cmnist_validation \\
        --paper results/reference/cmnist --paper results/reference/cmnist_extended

`--protocol validation` holds out a share of the training set (10% by default) and with it the
same share of the bias-conflicting samples, so its final-epoch numbers are not the paper
protocol's. Every completed validation-protocol trial is paired with the paper-protocol trial of
the same configuration (seed included) in the `--paper` stores; the pairs give, per method and
cell, the mean difference (validation - paper, points) with a paired Student t interval over
seeds, and per cell the mean over methods with a t interval over methods (each method one unit;
REPAIR's variants are averaged into one). Unpaired trials are counted, never guessed at.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import pandas as pd

from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import SUMMARY_METRICS, select
from debiasbench.benchmark.report.statistics import t_interval
from debiasbench.benchmark.store.schema import StoreError
from debiasbench.benchmark.store.store import ResultStore

# Configuration fields that say how a trial is selected, not what it trains.
PROTOCOL_FIELDS = ("protocol", "validation_fraction", "tables")


def pairing_key(config: dict) -> str:
    """The trial's configuration without its selection protocol: equal for the two protocols' runs
    of one experiment (method, hyper-parameters, data, seeds, epochs)."""
    return json.dumps({k: v for k, v in config.items() if k not in PROTOCOL_FIELDS}, sort_keys=True)


def _final_epochs(store: str, protocol: str, metric: str) -> pd.DataFrame:
    ResultStore(store).require_exists()  # a mistyped path is named, not read as an empty store
    summaries = select(load_store(store), protocol, "last").summaries
    if summaries.empty:
        return pd.DataFrame(columns=["pair", "method", "seed", "dataset", "params", "value"])
    return pd.DataFrame(
        {
            "pair": [pairing_key(c) for c in summaries["cfg"]],
            "method": summaries["method"],
            "seed": summaries["trial_seed"],
            "dataset": summaries["dataset"],
            "params": summaries["params"],
            "value": 100 * summaries[metric],
        }
    )


def cell_labels(datasets: Sequence[str], params: Sequence[dict]) -> list[str]:
    """ "dataset k=v, ..." naming only the dataset parameters that differ between the cells."""
    varying = {k for p in params for k in p if len({json.dumps(q.get(k), sort_keys=True) for q in params}) > 1}
    return [
        " ".join([dataset, ", ".join(f"{k}={p.get(k)}" for k in sorted(varying))]).strip()
        for dataset, p in zip(datasets, params)
    ]


def _interval_row(values: Sequence[float]) -> dict[str, float]:
    low, high = t_interval(values)
    return {"difference": sum(values) / len(values), "ci_low": low, "ci_high": high, "n": len(values)}


def holdout_cost(
    validation: str, paper: Sequence[str], metric: str = "unbiased"
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(per method and cell, per cell over methods, validation trials without a paper twin)."""
    held_out = _final_epochs(validation, "validation", metric)
    full = pd.concat([_final_epochs(store, "paper", metric) for store in paper], ignore_index=True)
    full = full.drop_duplicates("pair")  # the same trial shipped in two stores counts once
    pairs = held_out.merge(full[["pair", "value"]], on="pair", suffixes=("_validation", "_paper"))
    pairs["difference"] = pairs["value_validation"] - pairs["value_paper"]
    pairs["cell"] = cell_labels(pairs["dataset"].tolist(), pairs["params"].tolist())
    per_method = []
    for (cell, method), part in pairs.groupby(["cell", "method"], sort=True):
        # A method with several variants (REPAIR) is one unit: its seeds' differences averaged over variants.
        by_seed = part.groupby("seed")["difference"].mean()
        per_method.append(
            {
                "cell": cell,
                "method": method,
                "paper": part["value_paper"].mean(),
                "validation": part["value_validation"].mean(),
                **_interval_row(by_seed.tolist()),
            }
        )
    methods = pd.DataFrame(
        per_method, columns=["cell", "method", "paper", "validation", "difference", "ci_low", "ci_high", "n"]
    )
    cells = pd.DataFrame(
        [
            {"cell": cell, **_interval_row(part["difference"].tolist()), "lower": int((part["difference"] < 0).sum())}
            for cell, part in methods.groupby("cell", sort=True)
        ],
        columns=["cell", "difference", "ci_low", "ci_high", "n", "lower"],
    )
    return methods, cells, len(held_out) - len(pairs)


def _markdown(methods: pd.DataFrame, cells: pd.DataFrame, metric: str) -> str:
    def interval(row: pd.Series) -> str:
        return f"{row['difference']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"

    lines, per_cell = [], cells.set_index("cell")
    for cell, part in methods.groupby("cell", sort=True):
        summary = per_cell.loc[cell]
        lines += [
            f"{cell}: {metric} test accuracy at the final epoch, validation - paper protocol, "
            f"over {int(summary['n'])} methods: {interval(summary)} (95% t interval over methods; "
            f"{int(summary['lower'])} of {int(summary['n'])} lower)",
            "",
            "| method | paper protocol | validation protocol | difference [95% paired t interval] | seeds |",
            "|---|---:|---:|---:|---:|",
        ]
        for _, row in part.sort_values("difference").iterrows():
            lines.append(
                f"| {row['method']} | {row['paper']:.2f} | {row['validation']:.2f} | {interval(row)} | {row['n']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("validation", help="store with validation-protocol trials")
    parser.add_argument(
        "--paper", action="append", required=True, help="store with their paper-protocol twins (repeatable)"
    )
    parser.add_argument("--metric", default="unbiased", choices=sorted(SUMMARY_METRICS))
    parser.add_argument("--csv", help="also write the per-method rows to this CSV file")
    args = parser.parse_args(argv)
    try:
        methods, cells, unpaired = holdout_cost(args.validation, args.paper, args.metric)
    except (StoreError, OSError) as error:
        print(f"holdout_cost: {error}", file=sys.stderr)
        return 2
    if methods.empty:
        print(
            "holdout_cost: no validation-protocol trial has a paper-protocol twin in the --paper stores "
            "(same configuration and seed); run the same grid with --protocol paper, or pass the store that holds it",
            file=sys.stderr,
        )
        return 2
    print(_markdown(methods, cells, args.metric))
    if unpaired:
        print(f"{unpaired} validation-protocol trial(s) have no paper-protocol twin and are left out.")
    if args.csv:
        try:
            methods.to_csv(args.csv, index=False)
        except OSError as error:
            print(f"holdout_cost: cannot write {args.csv} ({error}); pass --csv a writable path", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
