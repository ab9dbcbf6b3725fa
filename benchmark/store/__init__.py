"""The Parquet result store: one atomically written file per trial (see `store.py` for the layout,
`schema.py` for the columns, `checksummed_parquet.py` and `trial_files.py` for the integrity check). Torch-free: the
report reads it without the training stack."""

from debiasbench.benchmark.store.merge import MergeReport, merge_stores
from debiasbench.benchmark.store.schema import (
    METRIC_FIELDS,
    PREDICTION_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    TRIAL_FIELDS,
    DamagedFileError,
    StoreError,
    StoreNotWritableError,
    StoreVersionError,
    StoreWriteError,
    TrialRecord,
)
from debiasbench.benchmark.store.store import ResultStore
from debiasbench.benchmark.store.trial_files import verified_once

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
    "verified_once",
]
