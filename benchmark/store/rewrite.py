"""Rewriting a stored trial's configuration in place, for the tools that migrate a store after
the configuration gained a field (tools/rekey_trials.py, tools/record_defaults.py). Every row, the
status, the error and the run information (its original `code_version` included) are kept; the
file goes through the store's own write path (checksummed, atomic)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow.parquet as pq

from debiasbench.benchmark.store.schema import _META_KEY, _META_STATUS, METRIC_FIELDS, RUN_INFO, TrialRecord
from debiasbench.benchmark.store.store import ResultStore


def stored_config(store: ResultStore, path: str) -> dict[str, Any]:
    """The resolved configuration a trial file was written with."""
    first = pq.read_table(path, filesystem=store.fs, columns=["config"]).slice(0, 1).to_pylist()[0]
    return json.loads(first["config"])


def rewrite_config(store: ResultStore, path: str, config: Mapping[str, Any], key: str | None = None) -> str:
    """Write the trial stored at `path` again with `config`, under `key` (default: its own key);
    the old file is removed when the key changes. Returns the key written."""
    table = pq.read_table(path, filesystem=store.fs)
    meta = table.schema.metadata or {}
    old = meta[_META_KEY].decode()
    first = table.slice(0, 1).to_pylist()[0]
    new = key or old
    store.write_trial(
        TrialRecord(
            trial=dict(config),
            key=new,
            status=meta[_META_STATUS].decode(),
            metrics={name: table[name].to_pylist() for name in METRIC_FIELDS},
            error=first["error"],
            info={name: first.get(name) for name in RUN_INFO},
        )
    )
    if new != old:
        store.fs.delete_file(path)
    return new
