"""The result store's on-disk schema: its version, the trial and metric columns of a trial file,
the predictions file's columns, the debiasbench keys of a file's Parquet metadata, the record a
run hands the store, and the store's errors. See `store.py` for the layout these describe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
_META_VERSION = b"debiasbench.schema_version"
_META_STATUS = b"debiasbench.status"
_META_KEY = b"debiasbench.trial_key"
# "<algorithm>:<hex>" of the file's bytes before the Parquet footer (the data pages).
_META_CHECKSUM = b"debiasbench.checksum"
# The fingerprint of the raw data the trial was trained on (benchmark/raw_data.py), also a column;
# absent in files written before fingerprints existed ("unknown").
_META_RAW = b"debiasbench.raw_data"
_FINAL_STATUSES = ("completed", "stopped")  # records no run rewrites (safe to stamp in place)

TRIAL_FIELDS: dict[str, pa.DataType] = {
    "schema_version": pa.int32(),
    "trial_key": pa.string(),
    "status": pa.string(),
    "error": pa.string(),
    "dataset": pa.string(),
    "method": pa.string(),
    "supervision": pa.string(),
    "predictor_role": pa.string(),
    "dataset_params": pa.string(),
    "method_hparams": pa.string(),
    "config": pa.string(),
    "trial_seed": pa.int64(),
    "data_seed": pa.int64(),
    "hparams_seed": pa.int64(),
    "epochs": pa.int64(),
    "selection_protocol": pa.string(),
    "code_version": pa.string(),
    "data_generator_version": pa.string(),
    "raw_data": pa.string(),  # fingerprint of the raw data (null: unknown, written before it existed)
    "wall_time_s": pa.float64(),
    "seconds_per_epoch": pa.float64(),
    "peak_memory_mb": pa.float64(),
    "device": pa.string(),
    "hostname": pa.string(),
    # CPU model and torch's kernel level ("AMD EPYC, AVX2"); null: written before it was recorded.
    "cpu": pa.string(),
    "ray_node_id": pa.string(),
    "torch_version": pa.string(),
    "cuda_version": pa.string(),
    "finished_at": pa.string(),
}
# The run information a record carries beside its configuration (copied as it was when a store is
# compacted or a stored trial is rewritten).
RUN_INFO = [name for name in TRIAL_FIELDS if name not in ("schema_version", "trial_key", "status", "error")]
METRIC_FIELDS: dict[str, pa.DataType] = {
    "epoch": pa.int64(),
    "role": pa.string(),
    "split": pa.string(),
    "subset": pa.string(),
    "target": pa.int64(),
    "bias": pa.int64(),
    "metric": pa.string(),
    "value": pa.float64(),
}
SCHEMA = pa.schema([pa.field(n, t) for n, t in {**TRIAL_FIELDS, **METRIC_FIELDS}.items()])
PREDICTION_SCHEMA = pa.schema(
    [
        ("trial_key", pa.string()),
        ("role", pa.string()),
        ("index", pa.int64()),
        ("target", pa.int64()),
        ("bias", pa.int64()),
        ("prediction", pa.int64()),
    ]
)


class StoreError(RuntimeError):
    pass


class StoreVersionError(StoreError):
    pass


class StoreNotWritableError(StoreError):
    pass


class StoreWriteError(StoreError, OSError):
    """Writing a store file failed (disk full, permissions); the message names the file and fix."""


class DamagedFileError(StoreError):
    """A store file's content does not match its checksum, or it cannot be decoded."""


@dataclass
class TrialRecord:
    """Everything stored for one trial. `trial` holds the resolved configuration fields."""

    trial: Mapping[str, Any]
    key: str
    status: str  # "completed", "failed", "stopped" (ended early by a Tune scheduler) or "partial"
    metrics: Mapping[str, list] = field(default_factory=dict)
    predictions: Mapping[str, Any] | None = None
    error: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)  # timings, device, versions, host
