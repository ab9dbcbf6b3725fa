"""The bodies of run_all.py's commands (run a grid, search, diagnose, list what is registered);
run_all.py keeps only the argument parser and the error-to-exit-code mapping. Every heavy import
(Ray, torch, the report) stays inside the command that needs it, so `--list` and argument errors
stay fast. Messages and return codes are the command line's: debiasbench.cli.main prints them as they are."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from debiasbench.benchmark.experiments.driver import RunOptions
    from debiasbench.benchmark.registry import Registry
    from debiasbench.benchmark.trial import TrialConfig


def list_registered() -> str:
    """--list: the registered methods and datasets with their defaults, one per line."""
    import dataclasses as dc

    from debiasbench.datasets.base import DATASETS
    from debiasbench.methods.base import METHODS

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


def run_options(args: argparse.Namespace, results: str) -> RunOptions:
    """The driver's options from the command line's flags (shared by the grid and the diagnosis)."""
    from debiasbench.benchmark.experiments.driver import RunOptions

    return RunOptions(
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


def run_grid_command(args: argparse.Namespace, DATASETS: Registry, METHODS: Registry) -> int:
    """The default command: run (or with --dry-run list) the selected trials of a named grid, then
    print and write the report; --search hands over to `search_command`."""
    from debiasbench.benchmark.experiments.driver import run_grid
    from debiasbench.benchmark.experiments.planning import estimate_seconds, plan, resolve_all, trial_label
    from debiasbench.benchmark.paper.grids import build_grid
    from debiasbench.benchmark.store import ResultStore

    for name in args.methods or []:
        METHODS.get(name)  # unknown names fail here with the list of valid ones
    for name in args.datasets or []:
        DATASETS.get(name)
    filters = {
        "tables": args.tables,
        "datasets": args.datasets,
        "methods": args.methods,
        "ratios": args.ratios,
        "difficulties": args.difficulties,
    }
    auto = args.seeds == "auto"
    if args.selector != "last" and args.protocol != "validation":
        raise ValueError(
            f"--selector {args.selector} chooses each trial's epoch on the hold-out, which only --protocol "
            "validation keeps: add --protocol validation, or leave --selector at last"
        )
    if auto and args.search:
        raise ValueError("--seeds auto adds seeds to a grid's comparisons; --search chooses its own seeds: use one")
    # --seeds auto starts from seeds 0, 1, 2 (what --dry-run lists); later seeds depend on the results.
    configs = build_grid(args.grid, seeds=(0, 1, 2) if auto else args.seeds, epochs=args.epochs, **filters)
    from debiasbench.benchmark.experiments.preflight import check_filters, check_options

    check_filters(args.grid, **filters)  # a filter matching nothing is an error listing the grid's values
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
    options = run_options(args, results)
    check_options(options)  # e.g. --max-concurrent 0, before a dry run too
    if args.search:
        return search_command(args, runnable, options, METHODS)
    if args.dry_run:
        trials = resolve_all(runnable)
        store = ResultStore(results)
        from debiasbench.datasets.base import DataPaths

        todo, done = plan(trials, store, DataPaths.resolve(args.data_root, args.cache_dir))
        for trial in todo:
            print(
                f"{trial.key}  {trial_label(trial)}  epochs={trial.epochs}  tables={','.join(map(str, trial.tables))}"
            )
        concurrency = args.max_concurrent or 1
        seconds, measured = estimate_seconds(todo, store, concurrency)
        if seconds:
            cost = (
                f"estimated {seconds / 3600:.2f} h at concurrency {concurrency} "
                f"(from measured seconds/epoch for {measured} of {len(todo)} trials)"
            )
        elif todo:
            cost = "no measured seconds/epoch in the store yet, so no cost estimate"
        else:
            cost = "nothing to run"
        print(f"{len(todo)} trial(s) to run, {len(done)} already complete; {cost}")
        return 0

    if auto:
        summary, stats = _auto_seeds(args, runnable, options)
    else:
        summary, stats = run_grid(runnable, options), None
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
        from debiasbench.benchmark.report.build import write_report
        from debiasbench.datasets.base import DataPaths

        data_root = str(DataPaths.resolve(args.data_root).data_root)
        print(write_report(results, protocol=args.protocol, selector=args.selector, data_root=data_root, stats=stats))
        from debiasbench.benchmark.report.build import default_out
        from debiasbench.benchmark.report.page import PAGE

        print(f"\nreport page: {(default_out(results) / PAGE).resolve().as_uri()}")
    return 1 if summary.failed or summary.unfinished else 0


def _auto_seeds(args: argparse.Namespace, configs: list[TrialConfig], options: RunOptions):
    """--seeds auto: the rounds of benchmark.experiments.auto_seeds, summed into one RunSummary, and
    the report's statistics options matching the rounds' (the same precision and pair)."""
    from debiasbench.benchmark.experiments.auto_seeds import AutoSeeds, run_auto_seeds
    from debiasbench.benchmark.experiments.driver import RunSummary
    from debiasbench.benchmark.report.stats_report import StatsOptions

    if args.pair is not None and len(args.pair) != 2:
        raise ValueError(f"--pair takes two method names like lff,group_dro, got {','.join(args.pair)!r}")
    pair = tuple(args.pair) if args.pair else None
    settings = AutoSeeds(
        max_seeds=args.max_seeds, precision=args.resolve, pair=pair, protocol=args.protocol, selector=args.selector
    )
    outcome = run_auto_seeds(configs, options, settings)
    total = RunSummary()
    for r in outcome.rounds:
        total.scheduled += r.scheduled
        total.skipped += r.skipped
        total.completed += r.completed
        total.failed.update(r.failed)
        total.stopped += r.stopped
        total.unfinished += r.unfinished
        total.running_elsewhere.update(r.running_elsewhere)
        total.aborted = total.aborted or r.aborted
    print(outcome.describe())
    return total, StatsOptions(precision=args.resolve, pair=pair)


def diagnose_command(args: argparse.Namespace) -> int:
    """--diagnose: plan the diagnosis's trials, run what the store lacks, write the verdicts."""
    from debiasbench.benchmark.experiments.diagnose import plan_diagnosis
    from debiasbench.benchmark.experiments.driver import run_grid
    from debiasbench.benchmark.experiments.planning import plan, resolve_all, trial_label
    from debiasbench.benchmark.experiments.preflight import check_options
    from debiasbench.benchmark.report.diagnosis import write_diagnosis
    from debiasbench.benchmark.store import ResultStore
    from debiasbench.datasets.base import DataPaths

    if args.seeds == "auto":
        raise ValueError("--diagnose runs fixed seeds; give --seeds 0,1,2 (or leave it out), not auto")
    if not args.datasets or len(args.datasets) != 1:
        raise ValueError("--diagnose needs exactly one dataset: --datasets NAME (e.g. cmnist, celeba, image_table)")
    refused = (("--tables", args.tables), ("--methods", args.methods), ("--search", args.search))
    for flag, given in (*refused, ("--selector", args.selector != "last")):
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
    options = run_options(args, results)
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


def search_command(args: argparse.Namespace, configs: list[TrialConfig], options: RunOptions, METHODS: Registry) -> int:
    """Search each method's declared space, then run the best configuration with every seed."""
    from debiasbench.benchmark.experiments.hparam_search import plan_search, run_search
    from debiasbench.benchmark.experiments.search import check_metric, summary_table

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
