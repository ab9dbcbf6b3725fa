"""DebiasBench command line: run a named grid through Ray Tune into a Parquet result store,
then print and write the comparison tables.

    debiasbench --grid quick                 # CPU-sized demo of LfF on Colored MNIST
    debiasbench --grid paper --dry-run       # list what the paper's tables need
    debiasbench --list                       # registered methods and datasets

(`python run_all.py ...` in a checkout and `python -m debiasbench ...` are the same command.)
"""

# The docstring above is --help's description, so this note stays out of it: this module is only
# the argument parser and the mapping of errors to exit code 2; the commands themselves live in
# debiasbench.benchmark.experiments.commands.

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            ) from None

    return parse


def _seeds(text: str):
    """argparse type of --seeds: a comma-separated list of integers, or "auto"."""
    return "auto" if text.strip() == "auto" else _csv(int)(text)


def key_value(text: str) -> tuple[str, object]:
    """argparse type of --dataset-param / --method-param: KEY=VALUE, the value read as JSON where it
    parses (numbers, true/false) and as a string otherwise."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    from debiasbench.benchmark.paper.grids import GRIDS
    from debiasbench.benchmark.report.selectors import DEFAULT_SELECTOR, SELECTORS

    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "debiasbench"
    p = argparse.ArgumentParser(
        prog="python -m debiasbench" if program == "__main__.py" else program,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--list", action="store_true", help="print registered methods and datasets, then exit")
    p.add_argument("--grid", default="quick", help=f"named grid: {', '.join(GRIDS)} (default: quick)")
    p.add_argument("--tables", type=_csv(int), help="only trials these paper tables need, e.g. 2,3,10")
    p.add_argument("--datasets", type=_csv(str), help="only these datasets, e.g. cmnist")
    p.add_argument("--methods", type=_csv(str), help="only these methods, e.g. vanilla,lff")
    p.add_argument("--ratios", type=_csv(float), help="only these bias-aligned ratios (percent), e.g. 95,99.5")
    p.add_argument("--difficulties", type=_csv(int), help="only these difficulties, e.g. 4")
    p.add_argument(
        "--seeds",
        type=_seeds,
        help="trial seeds (default: the grid's; paper: 0,1,2), or auto: 0,1,2 and then more seeds, in rounds, "
        "to cells whose leading comparison is not resolved (--max-seeds, --resolve, --pair)",
    )
    p.add_argument(
        "--max-seeds", type=int, default=10, help="with --seeds auto: at most this many seeds per method and cell"
    )
    p.add_argument(
        "--resolve",
        type=float,
        metavar="POINTS",
        help="with --seeds auto: a comparison is also resolved when its 95%% interval lies within +-POINTS "
        "(default: only when it excludes 0)",
    )
    p.add_argument(
        "--pair",
        type=_csv(str),
        metavar="A,B",
        help="with --seeds auto: the comparison to resolve in every cell (default: the best method vs the runner-up)",
    )
    p.add_argument("--epochs", type=int, help="override every trial's epochs")
    p.add_argument(
        "--dataset-param",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a dataset parameter on every trial, e.g. input_scaling=unit",
    )
    p.add_argument(
        "--method-param",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a method hyper-parameter on every trial, e.g. q=0.5",
    )
    p.add_argument("--data-root", help="raw data directory (default: $DEBIAS_DATA_ROOT, else ./data)")
    p.add_argument(
        "--cache-dir", help="generated-dataset cache (default: $DEBIAS_CACHE_DIR, else ~/.cache/debiasbench)"
    )
    p.add_argument("--results", help="result store directory or URI (default: results/<grid>)")
    p.add_argument("--dry-run", action="store_true", help="list the trials still to run and their estimated cost")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, help="fractional GPUs per trial (default: 1 if a GPU is visible)")
    p.add_argument("--max-concurrent", type=int, help="cap on trials running at once")
    p.add_argument("--max-failures", type=int, default=1, help="Tune retries per trial before recording a failure")
    p.add_argument("--address", help="join an existing Ray cluster at this address instead of starting one")
    p.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    p.add_argument("--mixed-precision", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format on CUDA")
    p.add_argument("--plugin", action="append", default=[], help="extra method/dataset module (file or module name)")
    p.add_argument(
        "--progress",
        choices=("auto", "lines", "off"),
        default="auto",
        help="auto: live view on a terminal, plain lines otherwise; lines; off",
    )
    p.add_argument("--no-report", action="store_true", help="do not print/write tables after the run")
    p.add_argument(
        "--tracker",
        action="append",
        default=[],
        choices=("tensorboard", "mlflow", "wandb"),
        help="log every trial's per-epoch metrics to an experiment tracker (repeatable); MLflow writes "
        "a local file store and W&B runs offline under the results directory",
    )
    p.add_argument(
        "--protocol",
        choices=("paper", "validation"),
        default="paper",
        help="selection protocol: paper (train on all training data) or validation (hold out a part)",
    )
    p.add_argument(
        "--validation-fraction", type=float, default=0.1, help="held-out fraction under --protocol validation"
    )
    p.add_argument(
        "--selector",
        choices=[name for name in SELECTORS if name != "test_oracle"],  # the oracle is an upper bound, not a rule
        default=DEFAULT_SELECTOR,
        help="the epoch each trial is read at by --seeds auto's comparisons and by the report after the run: last "
        "(the paper's final epoch), or the hold-out's best val_accuracy (no bias labels) or val_worst_group (reads "
        "its bias labels); the val_ ones need --protocol validation (default: last)",
    )
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="the paper's Section 2 bias diagnosis of one (target, bias) pair in both directions: "
        "--datasets NAME [--dataset-param target=A --dataset-param bias=B]; writes RESULTS/diagnosis/ "
        "(docs/diagnose.md)",
    )
    search = p.add_argument_group("hyper-parameter search (validation protocol, Ray Tune)")
    search.add_argument(
        "--search",
        action="store_true",
        help="search each selected method's declared space, then run the best configuration "
        "per (method, dataset, parameters) with the grid's seeds",
    )
    search.add_argument("--num-samples", type=int, default=8, help="hyper-parameter draws per search cell (k = 1..N)")
    search.add_argument(
        "--metric",
        default="valid_accuracy",
        help="validation metric to maximise: valid_accuracy or valid_worst_group_accuracy",
    )
    search.add_argument("--scheduler", choices=("asha",), help="early-stopping scheduler for the search trials")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from debiasbench.benchmark.experiments.commands import diagnose_command, list_registered, run_grid_command
    from debiasbench.benchmark.experiments.resolve import InvalidTrialError
    from debiasbench.benchmark.plugins import load_plugins
    from debiasbench.benchmark.registry import UnknownNameError
    from debiasbench.benchmark.store import StoreError
    from debiasbench.datasets.base import DATASETS, DataNotFoundError
    from debiasbench.methods.base import METHODS

    try:
        load_plugins(args.plugin)
        if args.list:
            print(list_registered())
            return 0
        if args.diagnose:
            return diagnose_command(args)
        return run_grid_command(args, DATASETS, METHODS)
    except (
        UnknownNameError,
        InvalidTrialError,
        DataNotFoundError,
        StoreError,
        ValueError,
        FileNotFoundError,
        ConnectionError,
        OSError,
    ) as error:  # OSError: disk full/permissions, named by docs/faults.md's rules
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
