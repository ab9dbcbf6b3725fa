"""Labels of stored trials for the report's tables: the table parameters a trial is read by (ratio,
difficulty, target, direction), the "setting" and method-variant labels that keep trials differing in
more than the seed apart, and the one-line description of a failed trial."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from debiasbench.benchmark.paper.axes import MALIGNANT, PAPER_SUPERVISION
from debiasbench.benchmark.raw_data import short

# Configuration fields that identify a cell (or are the seed) rather than a setting.
_CELL_FIELDS = {
    "dataset",
    "method",
    "method_hparams",
    "method_defaults",  # a record of the registry: departures from it are named in the captions
    "dataset_params",
    "trial_seed",
    "tables",
    "supervision",
    "predictor_role",
    "roles",
    "protocol",
    "hparams_seed",
}
_TABLE_PARAMS = {"ratio", "difficulty", "target", "bias", "unbiased_train"}


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ratio(params: dict) -> str:
    value = _num(params.get("ratio"))
    return "" if math.isnan(value) else f"{value:.1f}"


def _difficulty(params: dict) -> str:
    value = _num(params.get("difficulty"))
    return "" if math.isnan(value) else str(int(value))


def _target(dataset: str, params: dict) -> str:
    return str(params.get("target") or MALIGNANT.get(dataset, ("",))[0])


def _is_main_direction(dataset: str, params: dict) -> bool:
    """The (Digit, Color)/(Object, Corruption) task on the biased training set."""
    return _target(dataset, params) == MALIGNANT[dataset][0] and not params.get("unbiased_train", False)


def _json_value(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _varying_label(records: list[dict[str, Any]]) -> list[str]:
    """For dicts describing trials, 'k=v, ...' of the keys whose values differ between them."""
    keys = sorted({k for r in records for k in r})
    varying = [k for k in keys if len({_json_value(r.get(k)) for r in records}) > 1]
    return [", ".join(f"{k}={_json_value(r.get(k))}" for k in varying) for r in records]


def _settings(frame: pd.DataFrame) -> list[str]:
    """Per trial, the dataset-level configuration that varies among trials of its dataset."""
    out = [""] * len(frame)
    for _, index in frame.groupby("dataset").indices.items():
        records = []
        for i in index:
            row = frame.iloc[i]
            config = {k: v for k, v in row["cfg"].items() if k not in _CELL_FIELDS}
            if row["selection_protocol"] != "validation":
                config.pop("validation_fraction", None)  # no validation split: the fraction has no effect
            config.update({k: v for k, v in row["params"].items() if k not in _TABLE_PARAMS})
            records.append(config)
        _raw_data_apart(frame, index, records)
        for i, label in zip(index, _varying_label(records)):
            out[i] = label
    return out


def _raw_data_apart(frame: pd.DataFrame, index: Iterable[int], records: list[dict[str, Any]]) -> None:
    """Trials of a dataset trained on different raw data (two known fingerprints: a partial and the
    full CIFAR-10, a folder replaced in place) are never pooled: the fingerprint joins their setting.
    A trial stored before fingerprints existed ("unknown") pools with the others while they agree."""
    if "raw_data" not in frame:
        return
    values = [frame["raw_data"].iloc[i] for i in index]
    known = {v for v in values if isinstance(v, str) and v}
    if len(known) > 1:
        for record, value in zip(records, values):
            record["raw data"] = short(value if isinstance(value, str) else None)


def _method_variants(frame: pd.DataFrame) -> list[str]:
    """Per trial, the hyper-parameters that vary among trials of its method (REPAIR's variant aside)."""
    out = [""] * len(frame)
    for method, index in frame.groupby("method").indices.items():
        records = []
        for i in index:
            row = frame.iloc[i]
            hparams = {k: v for k, v in row["hparams"].items() if not (method == "repair" and k == "variant")}
            records.append({**hparams, "hparams_seed": row["hparams_seed"]})
        for i, label in zip(index, _varying_label(records)):
            out[i] = label
    return out


def _supervision(frame: pd.DataFrame, method: str) -> str:
    stored = frame.loc[frame["method"] == method, "supervision"].dropna() if len(frame) else pd.Series(dtype=str)
    if len(stored):
        return Counter(stored).most_common(1)[0][0]
    return PAPER_SUPERVISION.get(method, "")


def _method_order(methods: Iterable[str], paper: tuple[str, ...]) -> list[str]:
    methods = set(methods)
    return [m for m in paper] + sorted(m for m in methods - set(paper))


def _natural(text: str) -> tuple:
    value = _num(text)
    return (0, value, "") if not math.isnan(value) else (1, 0.0, text)


def _describe(trial: pd.Series) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(trial["params"].items()) if k in _TABLE_PARAMS)
    error = str(trial.get("error") or "").strip().splitlines()
    return (
        f"{trial['dataset']}/{trial['method']} ({params}) seed {trial['trial_seed']} "
        f"[{trial['trial_key']}]: {error[-1] if error else 'no error text'}"
    )
