"""Reading the bias diagnosis's trials from the result store (torch-free): the spec the experiments
layer hands over (`DiagnosisSpec`: per direction, the trial keys of the biased and the balanced arm),
and `diagnose`, which reads those trials back into each direction's numbers, verdict, loss curves
and per-group accuracy matrices."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from debiasbench.benchmark.report.diagnosis_verdict import ARMS, THRESHOLD, loss_evidence, loss_text, spread, verdict_of
from debiasbench.benchmark.report.loading import load_store, scan
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.store import ResultStore


@dataclass(frozen=True)
class DirectionSpec:
    """One direction: its attribute names and the trial keys (one per seed) of each arm."""

    target: str
    bias: str
    biased: tuple[str, ...]
    balanced: tuple[str, ...]
    target_values: tuple[str, ...] = ()
    bias_values: tuple[str, ...] = ()
    balanced_how: str = ""


@dataclass(frozen=True)
class DiagnosisSpec:
    dataset: str
    directions: tuple[DirectionSpec, ...]
    seeds: tuple[int, ...] = ()
    setting: str = ""  # what the trials share, for the heading ("ratio=99.0, difficulty=4; 100 epochs")
    protocol: str = "paper"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DiagnosisSpec:
        data = json.loads(text)
        directions = tuple(
            DirectionSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
            for d in data.pop("directions")
        )
        return cls(directions=directions, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class DiagnosisResult:
    spec: DiagnosisSpec
    table: pd.DataFrame  # one row per direction: the numbers, the verdict, the loss evidence
    curves: pd.DataFrame  # direction, trial_key, epoch, subset, loss (the biased trials' training loss)
    groups: dict[tuple[int, str], tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # lines naming trials not (yet) completed


def direction_label(direction: DirectionSpec) -> str:
    return f"{direction.target} with bias {direction.bias}"


def _named(matrix: pd.DataFrame, direction: DirectionSpec) -> pd.DataFrame:
    """The matrix with value names (rows target value, columns bias value) where the spec has them."""

    def name(values: tuple[str, ...], index: Any) -> str:
        return values[int(index)] if isinstance(index, (int, float)) and 0 <= int(index) < len(values) else str(index)

    named = matrix.copy()
    named.index = [name(direction.target_values, i) for i in matrix.index]
    named.columns = [name(direction.bias_values, c) for c in matrix.columns]
    named.index.name, named.columns.name = direction.target, direction.bias
    return named


def diagnose(results: str, spec: DiagnosisSpec) -> DiagnosisResult:
    """Read the spec's trials from the store and compute every direction's numbers and verdict."""
    from debiasbench.benchmark.report.groups import group_matrix

    data = load_store(results)
    sel = select(data, spec.protocol, "last")
    summaries = sel.summaries.set_index("trial_key") if len(sel.summaries) else pd.DataFrame()
    statuses = dict(zip(data.trials["trial_key"], data.trials["status"])) if len(data.trials) else {}
    rows, curve_frames, groups, missing = [], [], {}, []
    for number, direction in enumerate(spec.directions, start=1):
        accuracy, present = {}, {}
        for arm in ARMS:
            keys = [k for k in getattr(direction, arm)]
            present[arm] = [k for k in keys if k in summaries.index]
            accuracy[arm] = [100.0 * float(summaries.loc[k, "unbiased"]) for k in present[arm]]
            for key in keys:
                if key not in summaries.index:
                    missing.append(
                        f"{direction_label(direction)}, {arm}: trial {key} {statuses.get(key, 'not in the store')}"
                    )
            if present[arm]:
                epochs = {k: int(summaries.loc[k, "epoch"]) for k in present[arm]}
                roles = {k: str(summaries.loc[k, "predictor_role"]) for k in present[arm]}
                long, matrix = group_matrix(results, epochs, roles)
                if not long.empty:
                    groups[(number, arm)] = (long, _named(matrix, direction))
        seeds = [int(summaries.loc[k, "trial_seed"]) for k in present["biased"] + present["balanced"]]
        verdict = verdict_of(accuracy["biased"], accuracy["balanced"], sorted(set(seeds)) or spec.seeds)
        curves = _train_loss(results, summaries, present["biased"])
        curve_frames.append(curves.assign(direction=number))
        evidence = loss_evidence(curves)
        mean_b, std_b, n_b = spread(accuracy["biased"])
        mean_u, std_u, n_u = spread(accuracy["balanced"])
        rows.append(
            {
                "dataset": spec.dataset,
                "direction": number,
                "target": direction.target,
                "bias": direction.bias,
                "setting": spec.setting,
                "biased_mean": mean_b,
                "biased_std": std_b,
                "n_biased": n_b,
                "balanced_mean": mean_u,
                "balanced_std": std_u,
                "n_balanced": n_u,
                "drop": verdict.drop,
                "noise": verdict.noise,
                "threshold": THRESHOLD,
                "verdict": verdict.verdict,
                "reason": verdict.reason,
                "settle": verdict.settle,
                "learned_first": evidence.learned_first,
                "learned_first_attribute": {"bias": direction.bias, "target": direction.target}.get(
                    evidence.learned_first, ""
                ),
                "early_loss_ratio": evidence.ratio,
                "loss_epochs": evidence.epochs,
                "loss_quarter": evidence.quarter,
                "aligned_half_epoch": evidence.aligned_half,
                "conflicting_half_epoch": evidence.conflicting_half,
                "loss_evidence": loss_text(evidence, direction.target, direction.bias),
                "balanced_how": direction.balanced_how,
                "biased_keys": ";".join(present["biased"]),
                "balanced_keys": ";".join(present["balanced"]),
            }
        )
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    return DiagnosisResult(spec, pd.DataFrame(rows), curves, groups, missing)


def _train_loss(results: str, summaries: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = ["trial_key", "epoch", "subset", "loss"]
    if not keys:
        return pd.DataFrame(columns=columns)
    expression = (
        pc.field("trial_key").isin(keys)
        & (pc.field("split") == "train")
        & (pc.field("metric") == "loss")
        & pc.field("subset").isin(["aligned", "conflicting"])
    )
    rows = scan(ResultStore(results), ["trial_key", "epoch", "role", "subset", "value"], expression)
    roles = summaries["predictor_role"]
    rows = rows[rows["role"].to_numpy() == rows["trial_key"].map(roles).to_numpy()]
    return rows.rename(columns={"value": "loss"})[columns].dropna(subset=["loss"]).reset_index(drop=True)
