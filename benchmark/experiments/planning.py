"""Planning a grid before anything runs: resolving every trial once, splitting what is done from
what is left, estimating the cost from measured seconds per epoch, and generating the datasets."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable

from debiasbench.benchmark.experiments.preflight import check_dataset_params
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.raw_data import differ, short
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import ResolvedTrial, TrialConfig
from debiasbench.datasets.base import DATASETS, DataPaths

log = logging.getLogger(__name__)


def resolve_all(configs: Iterable[TrialConfig]) -> list[ResolvedTrial]:
    """Resolve every trial (validating names and parameters) and merge duplicates by key."""
    by_key: dict[str, ResolvedTrial] = {}
    for config in configs:
        if config.dataset in DATASETS:  # unknown names: resolve_trial lists the valid ones
            check_dataset_params(config.dataset, config.dataset_params)  # by name and type, with the valid range
        trial = resolve_trial(config)
        if trial.key in by_key:
            previous = by_key[trial.key]
            trial = dataclasses.replace(previous, tables=tuple(sorted(set(previous.tables) | set(trial.tables))))
        by_key[trial.key] = trial
    return list(by_key.values())


def raw_fingerprint(trial: ResolvedTrial, paths: DataPaths) -> str | None:
    """The fingerprint of the raw data `trial` is generated from under `paths` (None: unknown)."""
    dataset_cls = DATASETS.get(trial.dataset)
    return dataset_cls.raw_fingerprint(dataset_cls.Params(**trial.dataset_params), paths)


def plan(
    trials: list[ResolvedTrial], store: ResultStore, paths: DataPaths | None = None
) -> tuple[list[ResolvedTrial], list[ResolvedTrial]]:
    """(to run, already finished). With `paths`, a finished trial whose stored raw-data fingerprint
    differs from that of the raw data under `paths` is run again, with a warning saying why (the
    trial key does not record the raw data; an unknown fingerprint on either side proves nothing)."""
    finished = store.finished()
    done = {key for key, (status, _) in finished.items() if status in ("completed", "stopped")}
    if paths is not None:
        for trial in trials:
            stored = finished.get(trial.key, (None, None))[1]
            if trial.key in done and stored and differ(stored, current := raw_fingerprint(trial, paths)):
                done.discard(trial.key)
                log.warning(
                    "training %s (%s) again: it is stored from other raw data (fingerprint %s, the raw data "
                    "under %s is now %s); its stored result is replaced when it finishes",
                    trial.key,
                    trial_label(trial),
                    short(stored),
                    paths.data_root,
                    short(current),
                )
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
        params = dataset_cls.Params(**trial.dataset_params)  # resolved: already validated
        ident = json.dumps([trial.dataset, dataset_cls.generation_params(params), trial.data_seed], sort_keys=True)
        if ident not in seen:
            seen.add(ident)
            dataset_cls.prepare(params, paths, trial.data_seed)


def trial_label(trial: ResolvedTrial) -> str:
    params = ",".join(f"{k}={v}" for k, v in trial.dataset_params.items() if k in ("ratio", "difficulty", "target"))
    variant = trial.method_hparams.get("variant")
    method = f"{trial.method}-{variant}" if variant else trial.method
    return f"{trial.dataset}[{params}] {method} seed={trial.trial_seed}"
