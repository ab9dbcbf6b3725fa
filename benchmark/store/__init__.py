"""The Parquet result store: one atomically written file per trial (see `store.py` for the layout
and schema). Torch-free: the report reads it without the training stack."""

from benchmark.store.merge import MergeReport, merge_stores
from benchmark.store.store import (
    METRIC_FIELDS,
    PREDICTION_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    TRIAL_FIELDS,
    DamagedFileError,
    ResultStore,
    StoreError,
    StoreNotWritableError,
    StoreVersionError,
    StoreWriteError,
    TrialRecord,
)

__all__ = [
    "METRIC_FIELDS",
    "PREDICTION_SCHEMA",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TRIAL_FIELDS",
    "DamagedFileError",
    "MergeReport",
    "ResultStore",
    "StoreError",
    "StoreNotWritableError",
    "StoreVersionError",
    "StoreWriteError",
    "TrialRecord",
    "merge_stores",
]
