"""Selection: the protocol filter, an epoch selector, and one summary row per completed trial at
its selected epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from debiasbench.benchmark.report.loading import StoreData
from debiasbench.benchmark.report.selectors import Selector, get_selector, select_epochs

# Summary field -> (subset, metric) of the stored "test" rows at the selected epoch.
SUMMARY_METRICS = {
    "unbiased": ("all", "accuracy"),
    "conflicting": ("conflicting", "accuracy"),
    "aligned": ("aligned", "accuracy"),
    "worst_group": ("all", "worst_group_accuracy"),
    "sample_accuracy": ("all", "sample_accuracy"),
}


@dataclass
class Selection:
    protocol: str
    selector: Selector
    summaries: pd.DataFrame  # completed trials of the protocol at their selected epoch
    failed: pd.DataFrame  # failed trials of the protocol
    excluded: pd.DataFrame  # trials stored under another protocol
    unevaluated: pd.DataFrame  # completed trials without any evaluation row
    location: str = ""
    stopped: pd.DataFrame = field(default_factory=pd.DataFrame)  # ended early by a scheduler: not tabulated
    unfinished: pd.DataFrame = field(default_factory=pd.DataFrame)  # partial records of an interrupted run


def resolve_protocol(data: StoreData, requested: str | None) -> str:
    """The requested protocol, else "paper" unless the store holds trials of another protocol only
    (so a report after a validation-protocol run shows that run)."""
    if requested:
        return requested
    present = set(data.trials["selection_protocol"].dropna()) if len(data.trials) else set()
    return "paper" if "paper" in present or not present else sorted(present)[0]


def select(data: StoreData, protocol: str | None = "paper", selector: str = "last") -> Selection:
    """Trials of `protocol` (None: see resolve_protocol), each summarised at the epoch `selector` picks."""
    rule = get_selector(selector)
    protocol = resolve_protocol(data, protocol)
    trials = data.trials
    mine = trials[trials["selection_protocol"] == protocol] if len(trials) else trials
    excluded = trials[trials["selection_protocol"] != protocol] if len(trials) else trials
    completed = mine[mine["status"] == "completed"]
    failed = mine[mine["status"] == "failed"]
    # Trials an early-stopping scheduler ended ("stopped") are finished but never in the tables.
    stopped = mine[mine["status"] == "stopped"]
    unfinished = mine[mine["status"] == "partial"]
    metrics = data.metrics[data.metrics["trial_key"].isin(set(completed["trial_key"]))]
    roles = completed.set_index("trial_key")["predictor_role"]
    chosen = select_epochs(metrics, roles, rule.name)
    summaries = _summaries(completed, metrics, chosen)
    unevaluated = completed[~completed["trial_key"].isin(set(chosen["trial_key"]))]
    return Selection(
        protocol,
        rule,
        summaries,
        failed.reset_index(drop=True),
        excluded.reset_index(drop=True),
        unevaluated.reset_index(drop=True),
        data.location,
        stopped.reset_index(drop=True),
        unfinished.reset_index(drop=True),
    )


def _summaries(completed: pd.DataFrame, metrics: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    base = completed.merge(chosen, on="trial_key", how="inner")
    if base.empty:
        return base.assign(
            **{name: pd.Series(dtype=float) for name in SUMMARY_METRICS}, classes=pd.Series(dtype=object)
        )
    at = metrics.merge(chosen[["trial_key", "epoch"]], on=["trial_key", "epoch"], how="inner")
    at = at[
        (at["split"] == "test")
        & (at["role"].to_numpy() == at["trial_key"].map(completed.set_index("trial_key")["predictor_role"]).to_numpy())
    ]
    plain = at[at["subset"] != "class"]
    values = {(k, s, m): v for k, s, m, v in plain[["trial_key", "subset", "metric", "value"]].itertuples(index=False)}
    for name, (subset, metric) in SUMMARY_METRICS.items():
        base[name] = [values.get((key, subset, metric), math.nan) for key in base["trial_key"]]
    classes: dict[str, dict[int, dict[str, float]]] = {}
    for key, target, metric, value in at[at["subset"] == "class"][
        ["trial_key", "target", "metric", "value"]
    ].itertuples(index=False):
        classes.setdefault(key, {}).setdefault(int(target), {})[metric] = float(value)
    base["classes"] = [classes.get(key, {}) for key in base["trial_key"]]
    return base
