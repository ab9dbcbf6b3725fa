"""Ray Tune runner: schedules a grid's trials, one Tune trial per grid entry (docs/architecture.md#experiments).

The result store, not Ray's experiment state, is the record of what is done: trials whose Parquet
file is already complete are skipped, every finished trial writes its own file from the worker
that ran it, and trials that still fail after Tune's retries are recorded as failed by the driver.
Interrupted trials resume from their per-epoch checkpoints when the grid is rerun.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from debiasbench import __version__
from debiasbench.benchmark.experiments.failures import fit_tuner, record_failure
from debiasbench.benchmark.experiments.planning import plan, prepare_datasets, resolve_all, trial_label
from debiasbench.benchmark.experiments.preflight import check_cluster_run, check_options, check_run
from debiasbench.benchmark.experiments.progress import GridProgress, LiveView
from debiasbench.benchmark.experiments.ray_backend import (
    check_cluster,
    progress_callback,
    ray_init,
    recording_asha,
    tune_trainable,
)
from debiasbench.benchmark.experiments.search import check_metric
from debiasbench.benchmark.experiments.store_lock import claim_trials, trial_claims
from debiasbench.benchmark.experiments.trackers import tracker_callbacks
from debiasbench.benchmark.experiments.worker import WorkerSpec, trial_checkpoint_dir
from debiasbench.benchmark.metric_names import VALID_ACCURACY
from debiasbench.benchmark.paths import checkout_root
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import ResolvedTrial, TrialConfig
from debiasbench.datasets.base import DataPaths

log = logging.getLogger(__name__)
REPO_ROOT = checkout_root()  # the checkout's root (for the git commit), None when installed


@dataclass(frozen=True)
class RunOptions:
    results: str
    data_root: str | None = None
    cache_dir: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: 1 when the driver sees a GPU, else 0
    max_concurrent: int | None = None
    address: str | None = None  # join an existing Ray cluster
    num_cpus: int | None = None  # embedded Ray: CPUs to use (default: all)
    max_failures: int = 1  # Tune retries per trial before it is recorded as failed
    device: str = "auto"
    mixed_precision: bool = False
    channels_last: bool = False
    plugins: tuple[str, ...] = ()
    progress: str = "auto"  # "auto" (live view on a terminal), "lines" or "off"
    scheduler: str | None = None  # "asha": early stopping on `metric` (searches only)
    metric: str = VALID_ACCURACY  # what a scheduler optimises; must be a validation metric
    trackers: tuple[str, ...] = ()  # experiment trackers fed by Tune's own logger callbacks


@dataclass
class RunSummary:
    scheduled: int = 0
    skipped: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    running_elsewhere: dict[str, str] = field(default_factory=dict)  # key -> the other driver running it
    aborted: str | None = None  # Ray Tune itself stopped (e.g. a full disk): the cause and the fix


def code_version() -> str:
    """The package's version, plus the git commit (and '-dirty' for uncommitted changes) when the
    code runs from a checkout of this project; an installed package never reports the commit of
    whatever repository its environment sits in."""
    version = __version__  # the one version source; the package metadata is built from it
    if REPO_ROOT is None:
        return version
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return version + (f"+{commit}" if commit else "") + ("-dirty" if dirty else "")


def run_grid(configs: list[TrialConfig], options: RunOptions) -> RunSummary:
    """Resolve, skip what is complete, prepare data, run the rest through Ray Tune. Trials are
    claimed in the store first (store_lock.py), so a second driver on it skips them."""
    with trial_claims(ResultStore(options.results)) as claims:
        return _run_grid(configs, options, claims)


def _run_grid(configs: list[TrialConfig], options: RunOptions, claims) -> RunSummary:
    load_plugins(options.plugins)
    check_options(options)  # preflight.py: values no machine could satisfy
    if options.address:
        check_cluster(options.address)
    if options.scheduler is not None:
        if options.scheduler != "asha":
            raise ValueError(f"unknown scheduler {options.scheduler!r}; the supported scheduler is 'asha'")
        check_metric(options.metric)
    # Trackers first, so a missing optional package fails before anything is planned or trained.
    local_dir = (
        Path(options.results).resolve() if "://" not in options.results else Path.home() / ".cache" / "debiasbench"
    )
    trackers = tracker_callbacks(options.trackers, str(local_dir)) if options.trackers else []
    trials = resolve_all(configs)
    store = ResultStore(options.results)
    store.ensure_writable()
    paths = DataPaths.resolve(options.data_root, options.cache_dir)
    todo, done = plan(trials, store, paths)  # a trial stored from other raw data is run again
    todo, elsewhere = claim_trials(claims, todo, store)  # trials another driver runs are skipped
    summary = RunSummary(scheduled=len(todo), skipped=len(done), running_elsewhere=elsewhere)
    if not todo:
        return summary
    check_run(options, todo)  # resources, device and ImageNet weights, before Ray schedules anything
    prepare_datasets(todo, paths)

    # Tune's new console output ignores verbose=0; the legacy engine stays silent, and the
    # live view below replaces it. Set before Tune is imported.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray
    import torch
    from ray import tune

    gpus = options.gpus_per_trial if options.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    spec = WorkerSpec(
        results=options.results if "://" in options.results else str(Path(options.results).resolve()),
        data_root=str(paths.data_root),
        cache_dir=str(paths.cache_dir),
        device=options.device if options.device != "auto" else ("cuda" if gpus > 0 else "cpu"),
        cpus_per_trial=options.cpus_per_trial,
        mixed_precision=options.mixed_precision,
        channels_last=options.channels_last,
        plugins=tuple(options.plugins),
        code_version=code_version(),
        scheduler=options.scheduler,
    )
    ray_init(options.address, options.num_cpus)
    if options.address:
        check_cluster_run(options)  # a trial must fit on one node of the cluster
    labels = {t.to_json(): trial_label(t) for t in todo}
    epochs = {t.to_json(): t.epochs for t in todo}
    total_cpus = ray.cluster_resources().get("CPU", 1)
    concurrency = max(1, int(total_cpus // max(options.cpus_per_trial, 1e-9)))
    if options.max_concurrent:
        concurrency = min(concurrency, options.max_concurrent)
    progress = GridProgress(total=len(todo), skipped=len(done), concurrency=concurrency)
    callback = progress_callback(progress, labels, epochs)

    results_path = Path(spec.results) if "://" not in options.results else Path.home() / ".cache" / "debiasbench"
    trainable = tune.with_resources(tune_trainable, {"cpu": options.cpus_per_trial, "gpu": gpus})
    scheduler = None
    if options.scheduler == "asha":
        max_epochs = max(t.epochs for t in todo)
        scheduler = recording_asha()(
            time_attr="epoch",
            metric=options.metric,
            mode="max",
            max_t=max_epochs,
            grace_period=max(1, max_epochs // 4),
            reduction_factor=2,
        )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.to_json() for t in todo]), "env": spec.to_dict()},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=False, scheduler=scheduler),
        run_config=tune.RunConfig(
            name=f"grid-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(results_path / "_ray"),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            verbose=0,
            callbacks=[callback, *trackers],
            log_to_file=True,
        ),
    )
    view = callback.view = LiveView(progress, mode=options.progress)
    try:
        with view:
            grid, summary.aborted = fit_tuner(tuner, results_path / "_ray")  # Tune dying: one line, not a traceback
        statuses = store.statuses()  # one metadata scan for the whole grid
        stopped_by_scheduler = scheduler.stopped if scheduler is not None else set()
        for result in grid:
            trial = ResolvedTrial.from_json(result.config["trial"])
            if statuses.get(trial.key) == "completed":
                summary.completed.append(trial.key)
            elif result.config["trial"] in stopped_by_scheduler and statuses.get(trial.key) == "partial":
                # Only the scheduler's own decisions make a partial record final; a trial cut
                # short by an interrupt stays partial and resumes from its checkpoint next run.
                store.set_status(trial.key, "stopped")
                if store.is_local:
                    shutil.rmtree(trial_checkpoint_dir(options.results, trial.key), ignore_errors=True)
                summary.stopped.append(trial.key)
            elif result.error is not None:
                # Full error to the trial's log and record; one line (or why it could not be recorded).
                summary.failed[trial.key] = record_failure(store, trial, result.error, spec.code_version)
        if summary.aborted:  # Tune died: what finished before is in the store
            summary.completed += [t.key for t in todo if statuses.get(t.key) == "completed"]
        # Trials that never started (an interrupted grid) are unfinished too.
        accounted = set(summary.completed) | set(summary.stopped) | set(summary.failed)
        summary.unfinished = [t.key for t in todo if t.key not in accounted]
    finally:
        ray.shutdown()
    return summary
