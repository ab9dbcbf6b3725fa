"""--seeds auto: seeds added, in rounds through Ray Tune, where a comparison is not resolved.

Every grid entry first runs with seeds 0, 1, 2. Then, each round, the store is read as the report
reads it (comparison tables, benchmark.report.stats_report.leading_comparisons), each trial at the
epoch the chosen selector picks (--selector: the final epoch, or under --protocol validation the
hold-out's choice, so seeds go where the comparison the user will report is open): in every cell the
best method against the runner-up (or the pair the user names) on the chosen metric. Where that
comparison's 95% Welch interval neither excludes zero nor (with --resolve POINTS) lies within
+-POINTS, both methods of the comparison get the next seed(s), up to --max-seeds per method. The
added trials are ordinary keyed trials of the same grid entries with another trial seed, so resume,
merge and the report treat them like any other. It stops when every cell is resolved or capped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from debiasbench.benchmark.experiments.driver import RunOptions, RunSummary, run_grid
from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.paper.axes import DEFAULT_SEEDS
from debiasbench.benchmark.trial import TrialConfig

DEFAULT_MAX_SEEDS = 10


@dataclass(frozen=True)
class AutoSeeds:
    max_seeds: int = DEFAULT_MAX_SEEDS  # per method and cell, the first three included
    precision: float | None = None  # --resolve POINTS
    pair: tuple[str, str] | None = None  # --pair A,B (default: best against runner-up)
    metric: str = "unbiased"
    per_round: int = 1  # seeds added to each method of an unresolved comparison per round
    protocol: str = "paper"
    selector: str = "last"


@dataclass
class AutoSeedsOutcome:
    rounds: list[RunSummary] = field(default_factory=list)
    resolution: pd.DataFrame = field(default_factory=pd.DataFrame)  # the final leading comparison per cell
    selector: str = "last"  # the epoch the comparisons read each trial at

    def describe(self) -> str:
        lines = [f"--seeds auto: {len(self.rounds)} round(s) of trials, comparisons at selector {self.selector}"]
        for r in self.resolution.itertuples(index=False):
            where = " / ".join(x for x in (r.dataset, r.setting, r.condition, r.metric) if x)
            state = "resolved" if r.resolved else "NOT resolved (seed cap reached)"
            lines.append(
                f"  {where}: {r.method_a} - {r.method_b} = {r.difference:.2f} "
                f"[{r.difference_low:.2f}, {r.difference_high:.2f}] with {r.n_a} and {r.n_b} seeds: {state}"
            )
        return "\n".join(lines)


def leading(results: str, settings: AutoSeeds) -> pd.DataFrame:
    """The leading comparison of every cell of the store, as the report computes it."""
    from debiasbench.benchmark.report.comparison import comparison_tables
    from debiasbench.benchmark.report.loading import load_store
    from debiasbench.benchmark.report.selection import select
    from debiasbench.benchmark.report.stats_report import StatsOptions, cell_values, leading_comparisons

    sel = select(load_store(results), settings.protocol, settings.selector)
    values = cell_values([t for _, t in comparison_tables(sel)], sel.summaries)
    options = StatsOptions(metrics=(settings.metric,), precision=settings.precision, pair=settings.pair)
    return leading_comparisons(values, options)


def run_auto_seeds(
    configs: Sequence[TrialConfig],
    options: RunOptions,
    settings: AutoSeeds,
    run: Callable[[list[TrialConfig], RunOptions], RunSummary] = run_grid,
) -> AutoSeedsOutcome:
    """Run `configs` (one per grid entry; their trial seeds are replaced) with seeds 0, 1, 2, then
    add seeds where the leading comparison is unresolved (see the module's docstring)."""
    if settings.max_seeds < len(DEFAULT_SEEDS):
        raise ValueError(
            f"--max-seeds must be at least {len(DEFAULT_SEEDS)} (the first seeds), got {settings.max_seeds}"
        )
    templates = list({_identity(c): replace(c, trial_seed=0) for c in configs}.values())
    # Which grid entry and seed each possible trial key is: the cells name their trials by key.
    resolve_all(templates)  # validates names and parameters before anything runs
    entry_of = {
        resolve_trial(replace(t, trial_seed=s)).key: (i, s)
        for i, t in enumerate(templates)
        for s in range(settings.max_seeds)
    }
    attempted = {(i, s) for i in range(len(templates)) for s in DEFAULT_SEEDS}
    outcome = AutoSeedsOutcome(selector=settings.selector)
    outcome.rounds.append(run([replace(t, trial_seed=s) for t in templates for s in DEFAULT_SEEDS], options))
    while not outcome.rounds[-1].aborted:  # Ray Tune itself stopped (e.g. a full disk): the caller reports it
        outcome.resolution = leading(options.results, settings)
        added = _next_seeds(outcome.resolution, entry_of, attempted, settings)
        if not added:
            return outcome
        attempted |= set(added)
        outcome.rounds.append(run([replace(templates[i], trial_seed=s) for i, s in sorted(added)], options))
    return outcome


def _next_seeds(
    resolution: pd.DataFrame, entry_of: dict[str, tuple[int, int]], attempted: set[tuple[int, int]], settings: AutoSeeds
) -> list[tuple[int, int]]:
    """(grid entry, seed) of the trials to add: the next unattempted seeds of both methods of every
    unresolved comparison, below the cap."""
    added: list[tuple[int, int]] = []
    for row in resolution.itertuples(index=False) if len(resolution) else []:
        if row.resolved:
            continue
        for keys in (row.trial_keys_a, row.trial_keys_b):
            entries = {entry_of[k][0] for k in str(keys).split(";") if k in entry_of}
            for entry in entries:
                free = [s for s in range(settings.max_seeds) if (entry, s) not in attempted and (entry, s) not in added]
                added += [(entry, s) for s in free[: settings.per_round]]
    return added


def _identity(config: TrialConfig) -> str:
    return repr(replace(config, trial_seed=0))
