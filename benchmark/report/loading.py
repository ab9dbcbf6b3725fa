"""Reading a result store for the report: one row per trial plus the evaluation rows (no per-group
rows, so a paper-sized store stays small in memory)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from debiasbench.benchmark.store import METRIC_FIELDS, SCHEMA, TRIAL_FIELDS, ResultStore


class ReportError(ValueError):
    """A report request the store cannot satisfy (the message names the fix)."""


_EVAL_SUBSETS = ["all", "aligned", "conflicting", "class"]


@dataclass
class StoreData:
    location: str
    trials: pd.DataFrame  # one row per trial (all protocols), with parsed params/hparams/config dicts
    metrics: pd.DataFrame  # evaluation rows (test/valid, non-group subsets) of completed trials


def _valid_files(store: ResultStore) -> list[str]:
    # The store's own file check (schema version, foreign/corrupt files, one file per trial key)
    # applies to the report too.
    return list(store.unique_files())


def _first_row(store: ResultStore, path: str) -> dict[str, Any]:
    with store.fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        present = [name for name in TRIAL_FIELDS if name in parquet.schema_arrow.names]
        row = next(parquet.iter_batches(batch_size=1, columns=present)).to_pylist()[0]
    return {name: row.get(name) for name in TRIAL_FIELDS}  # raw_data: None in files written before it existed


def scan(
    store: ResultStore, columns: list[str], expression: Any = None, files: list[str] | None = None
) -> pd.DataFrame:
    """Selected columns of the stored rows matching a pyarrow filter expression."""
    files = _valid_files(store) if files is None else files
    if not files:
        return SCHEMA.empty_table().select(columns).to_pandas()
    dataset = pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=store.fs)
    return dataset.to_table(columns=columns, filter=expression).to_pandas()


def _parse_trials(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=[*TRIAL_FIELDS, "params", "hparams", "cfg"])
    trials = pd.DataFrame(rows)
    trials["params"] = [json.loads(t) if t else {} for t in trials["dataset_params"]]
    trials["hparams"] = [json.loads(t) if t else {} for t in trials["method_hparams"]]
    trials["cfg"] = [json.loads(t) if t else {} for t in trials["config"]]
    return trials.sort_values("trial_key").reset_index(drop=True)


def load_store(results: str | os.PathLike) -> StoreData:
    """Trials and evaluation rows of a result store (local directory or pyarrow URI)."""
    store = ResultStore(results)
    files = _valid_files(store)
    trials = _parse_trials([_first_row(store, path) for path in files])
    expression = (
        pc.field("split").isin(["test", "valid"])
        & pc.field("subset").isin(_EVAL_SUBSETS)
        & (pc.field("status") == "completed")
    )
    metrics = scan(store, ["trial_key", *METRIC_FIELDS], expression, files)
    return StoreData(str(results), trials, metrics)
