"""The hyper-parameter search's two phases, through the driver.

Phase 1 runs one trial per hparams_seed k = 0..N (0 is the paper's defaults) under the validation
protocol with the grid's first seed; phase 2 runs the best k per (method, dataset, dataset
parameters), chosen on a validation metric, with every seed of the grid.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pandas as pd

from debiasbench.benchmark.experiments.driver import RunOptions, RunSummary, run_grid
from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.experiments.search import best_configurations, check_metric, search_results
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig


@dataclass
class SearchPlan:
    cells: list[TrialConfig]  # one per (method, dataset, parameters), first seed, validation protocol
    search_trials: list[TrialConfig]  # every cell x hparams_seed 0..N
    seeds: list[int]


@dataclass
class SearchOutcome:
    plan: SearchPlan
    search: RunSummary
    final: RunSummary
    results: pd.DataFrame  # one row per search trial (see search.search_results)


def plan_search(configs: list[TrialConfig], num_samples: int) -> SearchPlan:
    if num_samples < 1:
        raise ValueError("--num-samples must be at least 1")
    seeds = sorted({c.trial_seed for c in configs})
    cells = [
        dataclasses.replace(c, protocol="validation", trial_seed=seeds[0]) for c in configs if c.trial_seed == seeds[0]
    ]
    trials = [dataclasses.replace(c, hparams_seed=k) for c in cells for k in range(num_samples + 1)]
    resolve_all(trials)  # validate everything before anything runs
    return SearchPlan(cells, trials, seeds)


def run_search(plan: SearchPlan, options: RunOptions, metric: str, scheduler: str | None = None) -> SearchOutcome:
    check_metric(metric)
    search = run_grid(plan.search_trials, dataclasses.replace(options, scheduler=scheduler, metric=metric))
    results = search_results(ResultStore(options.results).read(), metric)
    keys = {t.key for t in resolve_all(plan.search_trials)}
    results = results[results["trial_key"].isin(keys)]
    best = best_configurations(results, metric)
    by_cell = {(r.method, r.dataset, r.dataset_params): int(r.hparams_seed) for r in best.itertuples()}
    final_trials = []
    for cell in plan.cells:
        resolved = resolve_all([cell])[0]
        k = by_cell.get((cell.method, cell.dataset, json.dumps(resolved.dataset_params, sort_keys=True)))
        if k is not None:
            final_trials += [dataclasses.replace(cell, hparams_seed=k, trial_seed=s) for s in plan.seeds]
    final = run_grid(final_trials, options)
    return SearchOutcome(plan, search, final, results)
