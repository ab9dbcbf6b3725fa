"""The dataset arguments the export tools share (--ratio, --difficulty, --data-seed, --param, data folders)."""

from __future__ import annotations

import argparse
from typing import Any

from debiasbench.cli import key_value


def add_dataset_arguments(parser: argparse.ArgumentParser, param_example: str) -> None:
    parser.add_argument("--ratio", type=float, help="percent of bias-aligned training samples (default: the dataset's)")
    parser.add_argument("--difficulty", type=int, help="difficulty 1..4 (default: the dataset's)")
    parser.add_argument("--data-seed", type=int, default=0, help="the data seed of the generated dataset (default 0)")
    parser.add_argument(
        "--param",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"any other dataset parameter, e.g. {param_example}",
    )
    parser.add_argument("--data-root", help="raw data directory (default: $DEBIAS_DATA_ROOT, else ./data)")
    parser.add_argument(
        "--cache-dir", help="generated-dataset cache (default: $DEBIAS_CACHE_DIR, else ~/.cache/debiasbench)"
    )


def dataset_values(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset parameters the arguments set: every --param, then --ratio and --difficulty."""
    values = dict(args.param)
    if args.ratio is not None:
        values["ratio"] = args.ratio
    if args.difficulty is not None:
        values["difficulty"] = args.difficulty
    return values


def dataset_params(args: argparse.Namespace, dataset: str) -> Any:
    """The dataset's validated parameters from the arguments; a bad one exits naming it."""
    from debiasbench.datasets.base import DATASETS

    try:
        return DATASETS.get(dataset).make_params(dataset_values(args))
    except ValueError as error:
        raise SystemExit(f"bad dataset parameter: {error}") from None
