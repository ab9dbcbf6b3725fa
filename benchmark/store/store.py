"""The Parquet result store (docs/store.md). Torch-free: the report reads it without the training stack.

Layout under the store root (a local directory or any pyarrow filesystem URI):

    trials/<key>.parquet       one file per trial: long-format metrics, each row also carrying
                               the trial's columns (key, config, seeds, status, timings, versions)
    predictions/<key>.parquet  optional final per-sample predictions of the evaluation split

A trial is complete once its file has been renamed into place (written to a temporary name in
the same directory first), so an interrupted write never leaves a file a reader trusts. Failed
trials are stored too (status "failed", the error text, no metric rows); rerunning retries them.
Trials an early-stopping scheduler ended (status "stopped") keep the per-epoch metrics they
reported to Tune; they count as finished and are never used by the paper tables. Under a
scheduler a running trial's metrics so far are stored after every epoch with status "partial";
the runner marks the record "stopped" when the scheduler ends the trial, and a partial record
left by an interrupted grid is simply rerun (resuming from its checkpoint).

Schema version 1, one row per (trial, epoch, role, split, subset, target, bias, metric):
    trial columns  schema_version, trial_key, status, error, dataset, method, supervision,
                   predictor_role, dataset_params (JSON), method_hparams (JSON), config (JSON of
                   the resolved trial), trial_seed, data_seed, hparams_seed, epochs,
                   selection_protocol, code_version, data_generator_version, wall_time_s,
                   seconds_per_epoch, peak_memory_mb, device, hostname, cpu (model and torch's
                   kernel level; null: written before it), ray_node_id, torch_version,
                   cuda_version, finished_at (ISO 8601, UTC), raw_data (fingerprint of the raw
                   data, benchmark/raw_data.py; null when unknown: written before it)
    metric columns epoch (1-based), role, split ("train"/"test"/"valid"), subset ("all",
                   "aligned", "conflicting", "group", "class", or "method" for a method's own
                   per-epoch diagnostics, role "-"), target, bias (cell of a "group"/"class"
                   row, else null), metric, value (accuracies are fractions)

Integrity (docs/faults.md): every file's footer carries, in its key-value metadata, a SHA-256 of
the file's bytes before the footer (the magic and every column chunk, i.e. all data pages).
Readers read the whole file once, recompute it and treat a mismatch as an absent trial (skipped
with a warning naming the file; the runner reruns it). Files written before checksums existed
are verified once by a full decode and then stamped with a checksum.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from debiasbench.benchmark.integrity import disk_error_message
from debiasbench.benchmark.store import trial_files
from debiasbench.benchmark.store.checksummed_parquet import first_line, parquet_bytes, verify_parquet_bytes
from debiasbench.benchmark.store.duplicates import unique_files
from debiasbench.benchmark.store.schema import (
    _FINAL_STATUSES,
    _META_KEY,
    _META_RAW,
    _META_STATUS,
    _META_VERSION,
    METRIC_FIELDS,
    PREDICTION_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    TRIAL_FIELDS,
    DamagedFileError,
    StoreError,
    StoreNotWritableError,
    StoreWriteError,
    TrialRecord,
)

log = logging.getLogger(__name__)

SCAN_THREADS = 8  # files verified at once by valid_files (I/O and hashing release the GIL)


def _open(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    text = str(location)
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except Exception as error:
            raise StoreError(
                f"cannot open result store {text!r}: {error}. Use a local directory or a URI pyarrow "
                "supports (file://, s3://, gs://, hdfs://) with its credentials configured"
            ) from None
    return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())


class ResultStore:
    def __init__(self, location: str | os.PathLike) -> None:
        self.location = str(location)
        self.fs, self.root = _open(location)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    # -- writing ---------------------------------------------------------------------------
    def ensure_writable(self, option: str = "--results") -> None:
        """Create the store layout and prove it is writable, or fail with the fix (`option`: the
        command's flag that names this store, e.g. merge's --into)."""
        probe = self._path("trials", f".write-probe-{uuid.uuid4().hex}")
        try:
            self.fs.create_dir(self._path("trials"), recursive=True)
            self.fs.create_dir(self._path("predictions"), recursive=True)
            with self.fs.open_output_stream(probe) as stream:
                stream.write(b"ok")
            self.fs.delete_file(probe)
        except Exception as error:
            raise StoreNotWritableError(
                f"results path {self.location!r} is not writable ({error}); pass {option} with a "
                "directory you can write to"
            ) from None

    def _atomic_write(self, table: pa.Table, directory: str, name: str) -> None:
        """Write `table` with a checksum in its footer to a temporary name, then rename it into
        place; on any failure the temporary file is removed and an OSError becomes a
        StoreWriteError naming the file, the cause (disk full, permissions) and the fix."""
        final = self._path(directory, name)
        tmp = self._path(directory, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            data = parquet_bytes(table)
            self.fs.create_dir(self._path(directory), recursive=True)
            if self.is_local:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())  # the rename must never expose unwritten bytes
                os.replace(tmp, final)
            else:
                with self.fs.open_output_stream(tmp) as stream:
                    stream.write(data)
                self.fs.move(tmp, final)  # a rename on POSIX filesystems, a copy on object stores
        except BaseException as error:
            try:
                self.fs.delete_file(tmp)
            except Exception:
                pass
            if isinstance(error, OSError) and not isinstance(error, StoreError):
                raise StoreWriteError(
                    disk_error_message(
                        error, final, "result file", "pass --results with a directory on a disk with space"
                    )
                ) from error
            raise

    def write_trial(self, record: TrialRecord) -> None:
        """Write one trial atomically (predictions first, so a complete trial always has them)."""
        if record.predictions is not None:
            n = len(record.predictions["index"])
            columns = {
                "trial_key": [record.key] * n,
                **{k: list(record.predictions[k]) for k in ("role", "index", "target", "bias", "prediction")},
            }
            self._atomic_write(pa.table(columns, schema=PREDICTION_SCHEMA), "predictions", f"{record.key}.parquet")
        self._atomic_write(self._trial_table(record), "trials", f"{record.key}.parquet")

    def _trial_table(self, record: TrialRecord) -> pa.Table:
        trial = record.trial
        n = len(record.metrics.get("value", [])) or 1  # a failed trial is one row without metrics
        values: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "trial_key": record.key,
            "status": record.status,
            "error": record.error,
            "dataset": trial["dataset"],
            "method": trial["method"],
            "supervision": trial["supervision"],
            "predictor_role": trial["predictor_role"],
            "dataset_params": json.dumps(trial["dataset_params"], sort_keys=True),
            "method_hparams": json.dumps(trial["method_hparams"], sort_keys=True),
            "config": json.dumps(dict(trial), sort_keys=True),
            "trial_seed": trial["trial_seed"],
            "data_seed": trial["data_seed"],
            "hparams_seed": trial["hparams_seed"],
            "epochs": trial["epochs"],
            "selection_protocol": trial["protocol"],
        }
        for name in TRIAL_FIELDS:
            values.setdefault(name, record.info.get(name))
        columns = {name: pa.array([values[name]] * n, type=dtype) for name, dtype in TRIAL_FIELDS.items()}
        for name, dtype in METRIC_FIELDS.items():
            data = record.metrics.get(name) if record.metrics else None
            columns[name] = pa.array(data if data is not None else [None] * n, type=dtype)
        table = pa.table(columns, schema=SCHEMA)
        metadata = {
            _META_VERSION: str(SCHEMA_VERSION).encode(),
            _META_STATUS: record.status.encode(),
            _META_KEY: record.key.encode(),
        }
        if values["raw_data"]:  # beside the key, so the runner's scan reads it without the rows
            metadata[_META_RAW] = str(values["raw_data"]).encode()
        return table.replace_schema_metadata(metadata)

    # -- reading ---------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether a store was ever created here (its trials/ directory exists)."""
        try:
            return self.fs.get_file_info(self._path("trials")).type == pafs.FileType.Directory
        except Exception:
            return False

    def require_exists(self) -> None:
        """Fail with the fix when there is no store at this location (a mistyped path)."""
        if not self.exists():
            raise StoreError(
                f"no result store at {self.location!r}: {self._path('trials')} does not exist. Check the path "
                "(a store is the --results directory of a run, e.g. results/quick)"
            )

    def _trial_files(self) -> list[str]:
        selector = pafs.FileSelector(self._path("trials"), allow_not_found=True)
        return sorted(
            info.path
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
        )

    def _read_bytes(self, path: str) -> bytes:
        if self.is_local:
            with open(path, "rb") as handle:
                return handle.read()
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def _inspect(self, path: str) -> tuple[dict[bytes, bytes] | None, str | None]:
        """(debiasbench metadata, None) for a verified trial file, or (None, the warning) when it
        is unreadable, damaged, foreign or malformed (trial_files.py). A file written before
        checksums existed is decoded in full and, if final, stamped."""
        try:
            stat = os.stat(path) if self.is_local else None
            if (known := trial_files.recall(path, stat)) is not None:
                return known, None
            data = self._read_bytes(path)
        except Exception as error:
            return None, trial_files.unreadable(path, error)
        metadata, problem, unstamped = trial_files.inspect_trial_bytes(path, data)
        if metadata is None:
            return None, problem
        if unstamped is None:
            trial_files.remember(path, stat, metadata)
        elif stat is not None and metadata[_META_STATUS].decode() in _FINAL_STATUSES:
            self._stamp(path, unstamped, metadata, stat)
        return metadata, None

    def _stamp(self, path: str, table: pa.Table, metadata: dict[bytes, bytes], stat: os.stat_result) -> None:
        """Give a verified local file written before checksums existed its checksum (best effort:
        a read-only store is simply verified by a full decode again next time)."""
        try:
            table = table.replace_schema_metadata({k: v for k, v in metadata.items() if not k.startswith(b"ARROW:")})
            now = os.stat(path)
            if (now.st_size, now.st_mtime_ns, now.st_ino) != (stat.st_size, stat.st_mtime_ns, stat.st_ino):
                return  # rewritten meanwhile: the new version is someone else's to vouch for
            self._atomic_write(table, "trials", path.rpartition("/")[2])
        except Exception as error:
            log.debug("could not stamp %s with a checksum (%s)", path, error)

    def valid_files(self) -> dict[str, dict[bytes, bytes]]:
        """Trial file path -> its debiasbench Parquet metadata, for readers that scan the files
        themselves. Every file is read once and checked against the checksum in its footer (in
        a few threads: reading and hashing release the GIL); foreign, malformed, unreadable or
        damaged files are skipped with a warning naming them."""
        files = self._trial_files()
        if len(files) > 8:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
                inspected = list(pool.map(self._inspect, files))
        else:
            inspected = [self._inspect(path) for path in files]
        for problem in trial_files.odd_entries(self._path("trials")) if self.is_local else []:
            warnings.warn(problem, stacklevel=2)
        valid = {}
        for path, (metadata, problem) in zip(files, inspected):
            if problem is not None:
                warnings.warn(problem, stacklevel=2)
            elif metadata is not None:
                valid[path] = metadata
        return valid

    def read_file(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One store file, verified against its checksum (DamagedFileError naming it otherwise)."""
        try:
            data = self._read_bytes(path)
            metadata = dict(pq.read_metadata(pa.BufferReader(data)).metadata or {})
        except FileNotFoundError:
            raise
        except Exception as error:
            raise DamagedFileError(f"cannot read {path} ({first_line(error)}); delete it and rerun its trial") from None
        problem = verify_parquet_bytes(data, metadata)
        if problem is not None:
            raise DamagedFileError(f"{path} is damaged: {problem}; delete it and rerun its trial")
        return pq.read_table(pa.BufferReader(data), columns=columns)

    def unique_files(self) -> dict[str, dict[bytes, bytes]]:
        """`valid_files()` with one file per trial key (duplicates.py): of identical copies one is kept
        with a warning naming both; copies that differ raise DuplicateTrialError naming both and the fix."""
        return unique_files(self, self.valid_files())

    def statuses(self) -> dict[str, str]:
        """Trial key -> stored status, from the files' metadata (no row is read)."""
        return {key: status for key, (status, _) in self.finished().items()}

    def finished(self) -> dict[str, tuple[str, str | None]]:
        """Trial key -> (stored status, fingerprint of the raw data it was trained on or None), from
        the files' metadata."""
        return {
            meta[_META_KEY].decode(): (
                meta.get(_META_STATUS, b"").decode(),
                meta[_META_RAW].decode() if meta.get(_META_RAW) else None,
            )
            for meta in self.unique_files().values()
        }

    def keys_with_status(self, *statuses: str) -> set[str]:
        return {key for key, status in self.statuses().items() if status in statuses}

    def completed_keys(self) -> set[str]:
        return self.keys_with_status("completed")

    def finished_keys(self) -> set[str]:
        """Trials that need no rerun: completed, or stopped early by a scheduler."""
        return self.keys_with_status("completed", "stopped")

    def set_status(self, key: str, status: str) -> None:
        """Rewrite one stored trial with a new status (atomically, metrics untouched)."""
        path = self._path("trials", f"{key}.parquet")
        table = self.read_file(path)
        column = table.schema.get_field_index("status")
        table = table.set_column(column, "status", pa.array([status] * len(table), type=pa.string()))
        metadata = dict(table.schema.metadata or {})
        metadata[_META_STATUS] = status.encode()
        self._atomic_write(table.replace_schema_metadata(metadata), "trials", f"{key}.parquet")

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Every stored row as one DataFrame (one pyarrow dataset scan over the valid files)."""
        import pyarrow.dataset as pads

        files = list(self.unique_files())
        if not files:
            empty = SCHEMA.empty_table()
            return (empty if columns is None else empty.select(columns)).to_pandas()
        dataset = pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=self.fs)
        return self.scan_guarded(files, lambda: dataset.to_table(columns=columns)).to_pandas()

    def scan_guarded(self, files: list[str], scan: Any) -> Any:
        """Run a multi-file scan; if it fails (a file changed or was damaged after it was
        verified), name the file that fails on its own instead of pyarrow's anonymous error."""
        try:
            return scan()
        except (OSError, pa.ArrowException) as error:
            raise DamagedFileError(self.explain_read_failure(error, files)) from None

    def explain_read_failure(self, error: BaseException, files: list[str] | None = None) -> str:
        """One line for a read that failed somewhere in the store: the file that fails on its own."""
        for path in self._trial_files() if files is None else files:
            try:
                self.read_file(path)
            except (StoreError, OSError) as damaged:
                return first_line(damaged)
        return f"reading the store {self.location!r} failed: {first_line(error)}"

    def trials(self) -> pd.DataFrame:
        """One row per trial (the trial columns only)."""
        frame = self.read(columns=list(TRIAL_FIELDS))
        return frame.drop_duplicates("trial_key").reset_index(drop=True)

    def predictions(self, key: str) -> pd.DataFrame:
        path = self._path("predictions", f"{key}.parquet")
        try:
            return self.read_file(path).to_pandas()
        except FileNotFoundError:
            raise StoreError(f"no predictions stored for trial {key} ({path} does not exist)") from None
