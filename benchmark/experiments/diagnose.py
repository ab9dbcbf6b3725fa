"""The bias diagnosis's trials (docs/diagnose.md): the paper's Section 2 protocol for one attribute
pair in both directions. Vanilla on the biased training set and on a bias-balanced one, per
direction and seed; the report side (benchmark/report/diagnosis.py) turns them into a verdict.

How a family reverses the direction and balances the training set is the dataset's own answer
(`BiasedDataset.diagnosis_settings`). For the controlled datasets the start point is Table 1's
specification (its ratio, difficulty and malignant target), so with the defaults the diagnosis
trials are Table 1's trials, key for key, and a store that ran Table 1 is reused as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from debiasbench.benchmark.experiments.preflight import check_dataset_params
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.paper.axes import DEFAULT_SEEDS, MALIGNANT
from debiasbench.benchmark.paper.grids import build_grid, table_trials
from debiasbench.benchmark.paper.tables import PAPER_TABLES
from debiasbench.benchmark.report.diagnosis import DiagnosisSpec, DirectionSpec
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS, DataPaths, DiagnosisSettings

METHOD = "vanilla"
TABLE = 1  # the paper's table whose protocol this is
_DIRECTION_PARAMS = ("target", "bias", "unbiased_train", "balanced_train")  # not part of the shared setting


class DiagnosisUnsupportedError(ValueError):
    """The dataset cannot be diagnosed (the message says why)."""


@dataclass(frozen=True)
class DiagnosisPlan:
    spec: DiagnosisSpec
    configs: list[TrialConfig]  # every trial: direction x (biased, balanced) x seed


def table1_start(dataset: str) -> dict[str, Any]:
    """The dataset parameters of Table 1's biased trial in the malignant direction."""
    for trial in table_trials(TABLE):
        params = trial.dataset_params
        if trial.dataset == dataset and params.get("target") == MALIGNANT[dataset][0] and not params["unbiased_train"]:
            return dict(params)
    raise KeyError(dataset)


def start_params(
    dataset: str,
    params: Mapping[str, Any],
    ratios: Sequence[float] | None = None,
    difficulties: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The first direction's parameters: Table 1's for its datasets, then --ratios/--difficulties
    (one value each), then the user's --dataset-param values."""
    for name, values in (("ratio", ratios), ("difficulty", difficulties)):
        if values is not None and len(values) != 1:
            raise ValueError(
                f"--diagnose takes one {name}, got {', '.join(str(v) for v in values)}; run one diagnosis per value"
            )
    start = table1_start(dataset) if dataset in PAPER_TABLES[TABLE].datasets else {}
    if ratios:
        start["ratio"] = float(ratios[0])
    if difficulties:
        start["difficulty"] = int(difficulties[0])
    return {**start, **dict(params)}


def _settings(dataset_cls: type, params: Mapping[str, Any], paths: DataPaths) -> DiagnosisSettings:
    name = dataset_cls.name
    if not dataset_cls.has_bias_labels:
        raise DiagnosisUnsupportedError(
            f"dataset {name!r} cannot be diagnosed: it has no bias labels, so neither aligned and conflicting samples "
            "nor a bias-balanced training set can be made. Diagnose a dataset with bias labels (cmnist, ccifar1, "
            "ccifar2, celeba, image_table with bias=COLUMN)"
        )
    settings = dataset_cls.diagnosis_settings(params, paths)
    if settings is None:
        raise DiagnosisUnsupportedError(
            f"dataset {name!r} cannot be diagnosed: it does not say how to reverse the (target, bias) direction and "
            "how to make a bias-balanced training set (it defines no diagnosis_settings hook; see docs/diagnose.md)"
        )
    return settings


def plan_diagnosis(
    dataset: str,
    params: Mapping[str, Any],
    paths: DataPaths,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    ratios: Sequence[float] | None = None,
    difficulties: Sequence[int] | None = None,
    method_hparams: Mapping[str, Any] | None = None,
    protocol: str = "paper",
    validation_fraction: float = 0.1,
) -> DiagnosisPlan:
    """Every trial of the diagnosis, resolved once (invalid parameters fail here), and the spec
    the report reads them back with."""
    dataset_cls = DATASETS.get(dataset)
    seeds = tuple(seeds) if seeds is not None else DEFAULT_SEEDS
    if not seeds:
        raise ValueError("--diagnose needs at least one seed")
    first = _settings(dataset_cls, start_params(dataset, params, ratios, difficulties), paths)
    second = _settings(dataset_cls, first.reversed, paths)
    configs, directions = [], []
    table_keys = _table1_keys(dataset, seeds, epochs) if protocol == "paper" and not method_hparams else set()
    shared = None
    for settings in (first, second):
        keys: dict[str, list[str]] = {}
        for arm in ("biased", "balanced"):
            values = getattr(settings, arm)
            check_dataset_params(dataset, values)  # by name and type, with the valid range
            keys[arm] = []
            for seed in seeds:
                config = TrialConfig(
                    dataset,
                    METHOD,
                    dict(values),
                    dict(method_hparams or {}),
                    trial_seed=seed,
                    epochs=epochs,
                    protocol=protocol,
                    validation_fraction=validation_fraction,
                )
                trial = resolve_trial(config)
                if trial.key in table_keys:
                    config = replace(config, tables=(TABLE,))
                configs.append(config)
                keys[arm].append(trial.key)
                if shared is None:
                    shared = trial
        directions.append(
            DirectionSpec(
                target=settings.target,
                bias=settings.bias,
                biased=tuple(keys["biased"]),
                balanced=tuple(keys["balanced"]),
                target_values=tuple(settings.target_values),
                bias_values=tuple(settings.bias_values),
                balanced_how=settings.balanced_how,
            )
        )
    setting = ", ".join(
        f"{k}={v}"
        for k, v in shared.dataset_params.items()
        if k not in _DIRECTION_PARAMS and k in _shown(dataset_cls, shared.dataset_params)
    )
    setting = (setting + "; " if setting else "") + f"{shared.epochs} epoch{'s' if shared.epochs != 1 else ''}"
    spec = DiagnosisSpec(dataset, tuple(directions), seeds, setting, protocol)
    return DiagnosisPlan(spec, configs)


def _shown(dataset_cls: type, params: Mapping[str, Any]) -> set[str]:
    """Parameters worth naming in the heading: those that differ from the family's defaults, plus
    ratio and difficulty (the controlled datasets' protocol)."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(dataset_cls.Params)}
    return {k for k, v in params.items() if k in ("ratio", "difficulty") or defaults.get(k, object()) != v}


def _table1_keys(dataset: str, seeds: Sequence[int], epochs: int | None) -> set[str]:
    if dataset not in PAPER_TABLES[TABLE].datasets:
        return set()
    return {
        resolve_trial(c).key
        for c in build_grid("paper", tables=[TABLE], datasets=[dataset], seeds=seeds, epochs=epochs)
    }
