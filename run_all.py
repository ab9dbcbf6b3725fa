#!/usr/bin/env python
"""DebiasBench command line: run a named grid through Ray Tune into a Parquet result store,
then print and write the comparison tables.

    python run_all.py --grid quick                 # CPU-sized demo of LfF on Colored MNIST
    python run_all.py --grid paper --dry-run       # list what the paper's tables need
    python run_all.py --list                       # registered methods and datasets
"""

from __future__ import annotations

import argparse
import dataclasses
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


def _assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    from benchmark.paper.grids import GRIDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="print registered methods and datasets, then exit")
    p.add_argument("--grid", default="quick", help=f"named grid: {', '.join(GRIDS)} (default: quick)")
    p.add_argument("--tables", type=_csv(int), help="only trials these paper tables need, e.g. 2,3,10")
    p.add_argument("--datasets", type=_csv(str), help="only these datasets, e.g. cmnist")
    p.add_argument("--methods", type=_csv(str), help="only these methods, e.g. vanilla,lff")
    p.add_argument("--ratios", type=_csv(float), help="only these bias-aligned ratios (percent), e.g. 95,99.5")
    p.add_argument("--difficulties", type=_csv(int), help="only these difficulties, e.g. 4")
    p.add_argument("--seeds", type=_csv(int), help="trial seeds (default: the grid's; paper: 0,1,2)")
    p.add_argument("--epochs", type=int, help="override every trial's epochs")
    p.add_argument(
        "--dataset-param",
        type=_assignment,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a dataset parameter on every trial, e.g. input_scaling=unit",
    )
    p.add_argument(
        "--method-param",
        type=_assignment,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a method hyper-parameter on every trial, e.g. q=0.5",
    )
    p.add_argument("--data-root", help="raw data directory (default: $DEBIAS_DATA_ROOT, else ./data)")
    p.add_argument("--cache-dir", help="generated-dataset cache (default: $DEBIAS_CACHE_DIR, else ./data/cache)")
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


def list_registered() -> str:
    import dataclasses as dc

    from datasets.base import DATASETS
    from methods.base import METHODS

    lines = ["Methods (name, supervision, roles, default hyper-parameters):"]
    for name, cls in METHODS:
        defaults = {f.name: f.default for f in dc.fields(cls.Hparams)}
        lines.append(
            f"  {name:<20} {cls.supervision.symbol} {cls.supervision.value:<14} roles={','.join(cls.roles)} "
            f"predictor={cls.predictor_role} {defaults}"
        )
        # Methods whose supervision depends on the dataset (REPAIR) list where it differs.
        differs = {d: cls.supervision_on(d) for d, _ in DATASETS if cls.supervision_on(d) is not cls.supervision}
        if differs:
            lines.append(" " * 23 + "on " + ", ".join(f"{d}: {s.symbol} {s.value}" for d, s in differs.items()))
    lines.append("Datasets (name, target/bias, parameters with defaults):")
    for name, cls in DATASETS:
        defaults = {f.name: f.default for f in dc.fields(cls.Params)}
        labels = "bias labels" if cls.has_bias_labels else "no bias labels"
        lines.append(f"  {name:<20} {cls.target_attribute}/{cls.bias_attribute} ({labels}) {defaults}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmark.experiments.resolve import InvalidTrialError
    from benchmark.plugins import load_plugins
    from benchmark.registry import UnknownNameError
    from benchmark.store import StoreError
    from datasets.base import DATASETS, DataNotFoundError
    from methods.base import METHODS

    try:
        load_plugins(args.plugin)
        if args.list:
            print(list_registered())
            return 0
        if args.diagnose:
            return _diagnose(args)
        return _run(args, DATASETS, METHODS)
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


def _run(args, DATASETS, METHODS) -> int:
    from benchmark.experiments.driver import RunOptions, run_grid
    from benchmark.experiments.planning import estimate_seconds, plan, resolve_all, trial_label
    from benchmark.paper.grids import build_grid
    from benchmark.store import ResultStore

    for name in args.methods or []:
        METHODS.get(name)  # unknown names fail here with the list of valid ones
    for name in args.datasets or []:
        DATASETS.get(name)
    configs = build_grid(
        args.grid,
        tables=args.tables,
        datasets=args.datasets,
        methods=args.methods,
        seeds=args.seeds,
        epochs=args.epochs,
        ratios=args.ratios,
        difficulties=args.difficulties,
    )
    from benchmark.experiments.preflight import check_filters, check_options

    check_filters(
        args.grid,
        tables=args.tables,
        datasets=args.datasets,
        methods=args.methods,
        ratios=args.ratios,
        difficulties=args.difficulties,
    )  # a filter matching nothing is an error listing the grid's values
    unavailable = sorted(
        {f"{c.dataset}/{c.method}" for c in configs if c.method not in METHODS or c.dataset not in DATASETS}
    )
    runnable = [c for c in configs if c.method in METHODS and c.dataset in DATASETS]
    if unavailable:
        print(
            f"note: {len(configs) - len(runnable)} trial(s) of grid {args.grid!r} need methods or datasets "
            f"that are not implemented yet and are left out: {', '.join(unavailable)}",
            file=sys.stderr,
        )
    if args.dataset_param or args.method_param:
        runnable = [
            dataclasses.replace(
                c,
                dataset_params={**c.dataset_params, **dict(args.dataset_param)},
                method_hparams={**c.method_hparams, **dict(args.method_param)},
            )
            for c in runnable
        ]
    runnable = [
        dataclasses.replace(c, protocol=args.protocol, validation_fraction=args.validation_fraction) for c in runnable
    ]
    results = args.results or str(Path("results") / args.grid)
    options = RunOptions(
        results=results,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        max_failures=args.max_failures,
        device=args.device,
        mixed_precision=args.mixed_precision,
        channels_last=args.channels_last,
        plugins=tuple(args.plugin),
        progress=args.progress,
        trackers=tuple(args.tracker),
    )
    check_options(options)  # e.g. --max-concurrent 0, before a dry run too
    if args.search:
        return _search(args, runnable, options, METHODS)
    if args.dry_run:
        trials = resolve_all(runnable)
        store = ResultStore(results)
        todo, done = plan(trials, store)
        for trial in todo:
            print(
                f"{trial.key}  {trial_label(trial)}  epochs={trial.epochs}  tables={','.join(map(str, trial.tables))}"
            )
        concurrency = args.max_concurrent or 1
        seconds, measured = estimate_seconds(todo, store, concurrency)
        cost = (
            (
                f"estimated {seconds / 3600:.2f} h at concurrency {concurrency} "
                f"(from measured seconds/epoch for {measured} of {len(todo)} trials)"
            )
            if seconds
            else "no measured seconds/epoch in the store yet, so no cost estimate"
        )
        print(f"{len(todo)} trial(s) to run, {len(done)} already complete; {cost}")
        return 0

    summary = run_grid(runnable, options)
    print(
        f"grid {args.grid!r}: {len(summary.completed)} trial(s) completed, {len(summary.failed)} failed, "
        f"{len(summary.stopped)} stopped early, "
        f"{summary.skipped} skipped (already complete), {len(summary.unfinished)} unfinished"
    )
    for key, error in summary.failed.items():
        print(f"  failed {key}: {error}", file=sys.stderr)
    if summary.running_elsewhere:
        print(
            f"  {len(summary.running_elsewhere)} trial(s) skipped: another driver is running them on this results "
            "directory",
            file=sys.stderr,
        )
    if summary.aborted:
        print(f"error: {summary.aborted}", file=sys.stderr)
    elif summary.unfinished:
        print("  the run was interrupted; rerun the same command to resume", file=sys.stderr)
    if not args.no_report:
        from benchmark.report.build import write_report
        from datasets.base import DataPaths

        print(write_report(results, protocol=args.protocol, data_root=str(DataPaths.resolve(args.data_root).data_root)))
        from benchmark.report.build import default_out
        from benchmark.report.page import PAGE

        print(f"\nreport page: {(default_out(results) / PAGE).resolve().as_uri()}")
    return 1 if summary.failed or summary.unfinished else 0


def _diagnose(args) -> int:
    """--diagnose: plan the diagnosis's trials, run what the store lacks, write the verdicts."""
    from benchmark.experiments.diagnose import plan_diagnosis
    from benchmark.experiments.driver import RunOptions, run_grid
    from benchmark.experiments.planning import plan, resolve_all, trial_label
    from benchmark.experiments.preflight import check_options
    from benchmark.report.diagnosis import write_diagnosis
    from benchmark.store import ResultStore
    from datasets.base import DataPaths

    if not args.datasets or len(args.datasets) != 1:
        raise ValueError("--diagnose needs exactly one dataset: --datasets NAME (e.g. cmnist, celeba, image_table)")
    for flag, given in (("--tables", args.tables), ("--methods", args.methods), ("--search", args.search)):
        if given:
            raise ValueError(f"--diagnose runs its own trials (Vanilla, Table 1's protocol) and takes no {flag}")
    results = args.results or str(Path("results") / "diagnose")
    diagnosis = plan_diagnosis(
        args.datasets[0],
        dict(args.dataset_param),
        DataPaths.resolve(args.data_root, args.cache_dir),
        seeds=args.seeds,
        epochs=args.epochs,
        ratios=args.ratios,
        difficulties=args.difficulties,
        method_hparams=dict(args.method_param),
        protocol=args.protocol,
        validation_fraction=args.validation_fraction,
    )
    options = RunOptions(
        results=results,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        max_failures=args.max_failures,
        device=args.device,
        mixed_precision=args.mixed_precision,
        channels_last=args.channels_last,
        plugins=tuple(args.plugin),
        progress=args.progress,
        trackers=tuple(args.tracker),
    )
    check_options(options)
    if args.dry_run:
        todo, done = plan(resolve_all(diagnosis.configs), ResultStore(results))
        for trial in todo:
            print(f"{trial.key}  {trial_label(trial)}  epochs={trial.epochs}")
        print(f"diagnosis of {args.datasets[0]}: {len(todo)} trial(s) to run, {len(done)} already complete")
        return 0
    summary = run_grid(diagnosis.configs, options)
    print(
        f"diagnosis of {args.datasets[0]}: {len(summary.completed)} trial(s) completed, {len(summary.failed)} "
        f"failed, {summary.skipped} skipped (already complete), {len(summary.unfinished)} unfinished"
    )
    for key, error in summary.failed.items():
        print(f"  failed {key}: {error}", file=sys.stderr)
    if summary.aborted:
        print(f"error: {summary.aborted}", file=sys.stderr)
    _, text = write_diagnosis(results, diagnosis.spec)
    print(text)
    return 1 if summary.failed or summary.unfinished or summary.aborted else 0


def _search(args, configs, options, METHODS) -> int:
    """Search each method's declared space, then run the best configuration with every seed."""
    from benchmark.experiments.hparam_search import plan_search, run_search
    from benchmark.experiments.search import check_metric, summary_table

    check_metric(args.metric)
    if not args.methods:
        raise ValueError("--search needs --methods naming the method(s) whose search space to explore")
    for name in args.methods:
        if not METHODS.get(name).search_space:
            raise ValueError(
                f"method {name!r} declares no search space, so there is nothing to search; "
                "drop it from --methods or add a search_space to its module"
            )
    plan = plan_search(configs, args.num_samples)
    if args.dry_run:
        print(
            f"{len(plan.search_trials)} search trial(s) ({len(plan.cells)} cell(s) x {args.num_samples + 1} "
            f"configurations), then the best per cell x {len(plan.seeds)} seed(s)"
        )
        return 0
    outcome = run_search(plan, options, args.metric, args.scheduler)
    search, final = outcome.search, outcome.final
    print(
        f"search: {len(search.completed)} completed, {len(search.stopped)} stopped early, {len(search.failed)} failed, "
        f"{search.skipped} already done; final runs: {len(final.completed)} completed, {final.skipped} already done"
    )
    print(summary_table(outcome.results, args.metric))
    return 1 if search.failed or final.failed else 0


if __name__ == "__main__":
    sys.exit(main())
