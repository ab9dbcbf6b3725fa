"""Ray Tune runner: schedules a grid's trials, one Tune trial per grid entry (SPEC 6).

The result store, not Ray's experiment state, is the record of what is done: trials whose Parquet
file is already complete are skipped, every finished trial writes its own file from the worker
that ran it, and trials that still fail after Tune's retries are recorded as failed by the driver.
Interrupted trials resume from their per-epoch checkpoints when the grid is rerun.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import benchmark
from benchmark.trial import ResolvedTrial, TrialConfig
from benchmark.plugins import load_plugins
from benchmark.experiments.progress import GridProgress, LiveView
from benchmark.experiments.resolve import resolve_trial
from benchmark.experiments.search import check_metric
from benchmark.store import ResultStore, TrialRecord
from datasets.base import DATASETS, DataPaths

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


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
    metric: str = "valid_accuracy"  # what a scheduler optimises; must be a validation metric


@dataclass
class RunSummary:
    scheduled: int = 0
    skipped: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)


def code_version() -> str:
    """Package version plus the git commit (and '+dirty' for uncommitted changes), if known."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return benchmark.__version__ + (f"+{commit}" if commit else "") + ("-dirty" if dirty else "")


def resolve_all(configs: Iterable[TrialConfig]) -> list[ResolvedTrial]:
    """Resolve every trial (validating names and parameters) and merge duplicates by key."""
    by_key: dict[str, ResolvedTrial] = {}
    for config in configs:
        trial = resolve_trial(config)
        if trial.key in by_key:
            previous = by_key[trial.key]
            trial = dataclasses.replace(previous, tables=tuple(sorted(set(previous.tables) | set(trial.tables))))
        by_key[trial.key] = trial
    return list(by_key.values())


def plan(trials: list[ResolvedTrial], store: ResultStore) -> tuple[list[ResolvedTrial], list[ResolvedTrial]]:
    """(to run, already finished)."""
    done = store.finished_keys()
    return [t for t in trials if t.key not in done], [t for t in trials if t.key in done]


def estimate_seconds(trials: list[ResolvedTrial], store: ResultStore, concurrency: int) -> tuple[float | None, int]:
    """Estimated wall time from measured seconds per epoch in the store, and how many trials had
    a measurement for their (dataset, method)."""
    known = store.trials()
    known = known[known["status"] == "completed"]
    if known.empty:
        return None, 0
    per_epoch = known.groupby(["dataset", "method"])["seconds_per_epoch"].mean().to_dict()
    total, measured = 0.0, 0
    for trial in trials:
        seconds = per_epoch.get((trial.dataset, trial.method))
        if seconds is not None:
            total += seconds * trial.epochs
            measured += 1
    return (total / max(1, concurrency) if measured else None), measured


def prepare_datasets(trials: list[ResolvedTrial], paths: DataPaths) -> None:
    """Generate every dataset the trials need once, in the driver, before anything is scheduled
    (missing raw data fails here, with its message, instead of in every worker)."""
    seen = set()
    for trial in trials:
        dataset_cls = DATASETS.get(trial.dataset)
        params = dataset_cls.make_params(trial.dataset_params)
        ident = json.dumps([trial.dataset, dataset_cls.generation_params(params), trial.data_seed], sort_keys=True)
        if ident not in seen:
            seen.add(ident)
            dataset_cls.prepare(params, paths, trial.data_seed)


def _checkpoint_dir(results: str, key: str) -> Path:
    store = ResultStore(results)
    base = Path(store.root) if store.is_local else Path.home() / ".cache" / "debiasbench"
    return base / "checkpoints" / key


def run_one_trial(trial: ResolvedTrial, env_spec: dict[str, Any], report=None) -> None:
    """Train one trial and write it to the store. Runs inside a Ray worker (or inline)."""
    from benchmark.training.trainer import TrainEnv, train_trial

    store = ResultStore(env_spec["results"])
    checkpoint_dir = _checkpoint_dir(env_spec["results"], trial.key)
    log_file = Path(store.root) / "logs" / f"{trial.key}.log" if store.is_local else None
    handler = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
    try:
        log.info("trial %s: %s", trial.key, trial.to_json())
        env = TrainEnv(
            paths=DataPaths(Path(env_spec["data_root"]), Path(env_spec["cache_dir"])),
            device=env_spec["device"],
            checkpoint_dir=checkpoint_dir,
            num_threads=max(1, int(env_spec["cpus_per_trial"])),
            mixed_precision=env_spec["mixed_precision"],
            channels_last=env_spec["channels_last"],
        )
        base_info = {"code_version": env_spec["code_version"], "hostname": socket.gethostname(),
                     "ray_node_id": _ray_node_id()}
        final_summary: dict[str, Any] = {}

        def on_epoch(summary: dict[str, Any]) -> None:
            # The last epoch is reported only once the trial is stored: a scheduler that stops a
            # trial at its final report would otherwise race the write below.
            if summary["epoch"] == trial.epochs:
                final_summary.update(summary)
            elif report is not None:
                report(summary)

        def store_partial(metrics: dict[str, list]) -> None:
            # A Tune scheduler ends a trial inside report() and tears the worker down without
            # waiting for it, so what was measured is stored before each report, as "partial";
            # the driver turns the record into "stopped" when the scheduler ended the trial.
            store.write_trial(TrialRecord(trial=dataclasses.asdict(trial), key=trial.key, status="partial",
                                          metrics=metrics, info=base_info))

        output = train_trial(trial, env, on_epoch=on_epoch,
                             on_metrics=store_partial if env_spec.get("scheduler") else None)
        info = {
            **base_info,
            "data_generator_version": DATASETS.get(trial.dataset).generator_version,
            "wall_time_s": output.wall_time_s,
            "seconds_per_epoch": output.seconds_per_epoch,
            "peak_memory_mb": output.peak_memory_mb,
            "device": output.device_name,
            "torch_version": output.torch_version,
            "cuda_version": output.cuda_version,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        store.write_trial(TrialRecord(trial=dataclasses.asdict(trial), key=trial.key, status="completed",
                                      metrics=output.metrics, predictions=output.predictions, info=info))
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        log.info("trial %s complete in %.1fs", trial.key, output.wall_time_s)
        if report is not None and final_summary:
            try:
                report(final_summary)
            except SystemExit:
                pass  # the scheduler stopped a trial that is already stored as completed
    except SystemExit:
        log.info("trial %s stopped early by the scheduler", trial.key)
        raise
    except BaseException:
        log.error("trial %s failed:\n%s", trial.key, traceback.format_exc())
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _ray_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:
        return None


def check_cluster(address: str, timeout: float = 5.0) -> None:
    """Fail within seconds, before anything is written, when no Ray cluster listens at `address`."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        raise ConnectionError(
            f"no Ray cluster is listening at {address!r} ({error}); start one with "
            "`ray start --head --node-ip-address 127.0.0.1` or drop --address to use an embedded Ray"
        ) from None


def _tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    env_spec = config["env"]
    load_plugins(env_spec["plugins"])
    run_one_trial(ResolvedTrial.from_json(config["trial"]), env_spec, report=tune.report)


def _recording_asha() -> type:
    """ASHA that remembers which trials it stopped, so the driver records exactly those as
    "stopped" (Tune reports a scheduler stop and an interrupted trial alike)."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stopped: set[str] = set()  # the stopped trials' JSON configurations

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP:
                self.stopped.add(trial.config["trial"])
            return decision

    return RecordingASHA


def _label(trial: ResolvedTrial) -> str:
    params = ",".join(f"{k}={v}" for k, v in trial.dataset_params.items() if k in ("ratio", "difficulty", "target"))
    variant = trial.method_hparams.get("variant")
    method = f"{trial.method}-{variant}" if variant else trial.method
    return f"{trial.dataset}[{params}] {method} seed={trial.trial_seed}"


def _ray_init(options: RunOptions, gpus: float) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    if options.address:
        ray.init(
            address=options.address,
            runtime_env={"working_dir": str(REPO_ROOT), "env_vars": {"RAY_USAGE_STATS_ENABLED": "0"},
                         "excludes": ["/results/", "/data/", "/.git/", "*.parquet", "*.pt"]},
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    else:
        import torch

        ray.init(
            address="local",  # a new embedded instance, even when another cluster runs on this machine
            num_cpus=options.num_cpus or os.cpu_count(),
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=200 * 2**20,  # trials pass no objects through Ray; keep it small
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": env_vars},
        )


def run_grid(configs: list[TrialConfig], options: RunOptions) -> RunSummary:
    """Resolve, skip what is complete, prepare data, run the rest through Ray Tune."""
    load_plugins(options.plugins)
    if options.address:
        check_cluster(options.address)
    if options.scheduler is not None:
        if options.scheduler != "asha":
            raise ValueError(f"unknown scheduler {options.scheduler!r}; the supported scheduler is 'asha'")
        check_metric(options.metric)
    trials = resolve_all(configs)
    store = ResultStore(options.results)
    store.ensure_writable()
    todo, done = plan(trials, store)
    summary = RunSummary(scheduled=len(todo), skipped=len(done))
    if not todo:
        return summary
    paths = DataPaths.resolve(options.data_root, options.cache_dir)
    prepare_datasets(todo, paths)

    # Tune's new console output ignores verbose=0; the legacy engine stays silent, and the
    # live view below replaces it. Set before Tune is imported.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray
    import torch
    from ray import tune

    gpus = options.gpus_per_trial if options.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    env_spec = {
        "results": options.results if "://" in options.results else str(Path(options.results).resolve()),
        "data_root": str(paths.data_root), "cache_dir": str(paths.cache_dir),
        "device": options.device if options.device != "auto" else ("cuda" if gpus > 0 else "cpu"),
        "cpus_per_trial": options.cpus_per_trial, "mixed_precision": options.mixed_precision,
        "channels_last": options.channels_last, "plugins": list(options.plugins), "code_version": code_version(),
        "scheduler": options.scheduler,
    }
    _ray_init(options, gpus)
    labels = {t.to_json(): _label(t) for t in todo}
    epochs = {t.to_json(): t.epochs for t in todo}
    total_cpus = ray.cluster_resources().get("CPU", 1)
    concurrency = max(1, int(total_cpus // max(options.cpus_per_trial, 1e-9)))
    if options.max_concurrent:
        concurrency = min(concurrency, options.max_concurrent)
    progress = GridProgress(total=len(todo), skipped=len(done), concurrency=concurrency)

    class ProgressCallback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.running[labels[trial.config["trial"]]] = "starting"
            progress.started[trial.trial_id] = time.time()
            view.refresh()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            key = trial.config["trial"]
            progress.running[labels[key]] = f"epoch {result.get('epoch', '?')}/{epochs[key]}"
            view.refresh()

        def _finish(self, trial, failed: bool):
            progress.running.pop(labels[trial.config["trial"]], None)
            if failed:
                progress.failed += 1
            else:
                progress.done += 1
                progress.durations.append(time.time() - progress.started.get(trial.trial_id, time.time()))
            view.refresh()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._finish(trial, failed=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._finish(trial, failed=True)

    results_path = Path(env_spec["results"]) if "://" not in options.results else Path.home() / ".cache" / "debiasbench"
    trainable = tune.with_resources(_tune_trainable, {"cpu": options.cpus_per_trial, "gpu": gpus})
    scheduler = None
    if options.scheduler == "asha":
        max_epochs = max(t.epochs for t in todo)
        scheduler = _recording_asha()(time_attr="epoch", metric=options.metric, mode="max", max_t=max_epochs,
                                      grace_period=max(1, max_epochs // 4), reduction_factor=2)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.to_json() for t in todo]), "env": env_spec},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=False, scheduler=scheduler),
        run_config=tune.RunConfig(
            name=f"grid-{datetime.now().strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(results_path / "_ray"),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            verbose=0,
            callbacks=[ProgressCallback()],
            log_to_file=True,
        ),
    )
    view = LiveView(progress, mode=options.progress)
    try:
        with view:
            grid = tuner.fit()
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
                    shutil.rmtree(_checkpoint_dir(options.results, trial.key), ignore_errors=True)
                summary.stopped.append(trial.key)
            elif result.error is not None:
                error = "".join(traceback.format_exception(result.error)) if isinstance(result.error, BaseException) else str(result.error)
                store.write_trial(TrialRecord(
                    trial=dataclasses.asdict(trial), key=trial.key, status="failed", error=error,
                    info={"code_version": env_spec["code_version"], "hostname": socket.gethostname(),
                          "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
                summary.failed[trial.key] = error.strip().splitlines()[-1] if error.strip() else "error"
        # Trials that never started (an interrupted grid) are unfinished too.
        accounted = set(summary.completed) | set(summary.stopped) | set(summary.failed)
        summary.unfinished = [t.key for t in todo if t.key not in accounted]
    finally:
        ray.shutdown()
    return summary
