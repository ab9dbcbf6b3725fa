"""One trial inside a worker (a Ray actor, or inline in tests): train it through the training
layer and write its record to the store, with the partial/completed status protocol.

The worker trusts the resolved trial it is given: trials are validated once, in the driver.
Under an early-stopping scheduler each epoch's metrics are stored (status "partial") before they
are reported, because Tune tears a stopped worker down without waiting for it; the final epoch is
reported only after the completed record is written.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import socket
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from debiasbench.benchmark.experiments.planning import raw_fingerprint
from debiasbench.benchmark.store import ResultStore, TrialRecord
from debiasbench.benchmark.trial import ResolvedTrial
from debiasbench.datasets.base import DATASETS, DataPaths

log = logging.getLogger(__name__)

# The first line each attempt writes to the trial's log. A failed trial's record is written by the
# driver, which may run on another host, so the driver reads the attempt's host and CPU from here.
ATTEMPT_START = "trial {key} on {host} ({cpu}): "


def attempt_origin(log_text: str, key: str) -> tuple[str, str] | None:
    """(host, CPU) of the last attempt of trial `key` that started in `log_text`, or None. A
    hostname holds no spaces; a CPU model may hold parentheses ("Intel(R) Xeon(R) ..., AVX512")."""
    pattern = re.compile(rf"trial {re.escape(key)} on (?P<host>\S+) \((?P<cpu>[^\n]*?)\): \{{")
    attempts = list(pattern.finditer(log_text))
    return (attempts[-1]["host"], attempts[-1]["cpu"]) if attempts else None


@dataclass(frozen=True)
class WorkerSpec:
    """How the driver tells every worker where and how to run (not part of any trial's key)."""

    results: str  # the store: an absolute path or a pyarrow URI
    data_root: str
    cache_dir: str
    device: str  # "cpu", "cuda", "cuda:1", ...
    cpus_per_trial: float = 1.0
    mixed_precision: bool = False
    channels_last: bool = False
    plugins: tuple[str, ...] = ()
    code_version: str = ""
    scheduler: str | None = None  # set under an early-stopping scheduler

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> WorkerSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in fields}
        known["plugins"] = tuple(known.get("plugins", ()))
        return cls(**known)


def trial_checkpoint_dir(results: str, key: str) -> Path:
    """Per-epoch checkpoints of a trial: beside a local store, else in the user's cache."""
    store = ResultStore(results)
    base = Path(store.root) if store.is_local else Path.home() / ".cache" / "debiasbench"
    return base / "checkpoints" / key


def run_one_trial(trial: ResolvedTrial, spec: WorkerSpec | Mapping[str, Any], report=None) -> None:
    """Train one trial and write it to the store. Runs inside a Ray worker (or inline)."""
    from debiasbench.benchmark.training.trainer import TrainEnv, cpu_description, train_trial

    spec = spec if isinstance(spec, WorkerSpec) else WorkerSpec.from_dict(spec)
    store = ResultStore(spec.results)
    checkpoint_dir = trial_checkpoint_dir(spec.results, trial.key)
    log_file = Path(store.root) / "logs" / f"{trial.key}.log" if store.is_local else None
    handler = None
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log_file)
        except OSError as error:  # a full or read-only disk: the store write will say so clearly
            log.warning("cannot write the trial log %s (%s); logging to the worker's output", log_file, error)
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
    # CPU results differ across CPUs (docs/protocol.md): the log names where this attempt runs.
    host, cpu = socket.gethostname(), cpu_description()
    try:
        log.info("%s%s", ATTEMPT_START.format(key=trial.key, host=host, cpu=cpu), trial.to_json())
        env = TrainEnv(
            paths=DataPaths(Path(spec.data_root), Path(spec.cache_dir)),
            device=spec.device,
            checkpoint_dir=checkpoint_dir,
            num_threads=max(1, int(spec.cpus_per_trial)),
            mixed_precision=spec.mixed_precision,
            channels_last=spec.channels_last,
        )
        base_info = {
            "code_version": spec.code_version,
            "hostname": host,
            "ray_node_id": _ray_node_id(),
            "raw_data": raw_fingerprint(trial, env.paths),  # the raw data this node trains on
        }
        final_summary: dict[str, Any] = {}

        attempt = {"resumed_from": None, "epochs": 0}  # this attempt's resume point and epochs run

        def on_epoch(summary: dict[str, Any]) -> None:
            attempt["epochs"] += 1
            # The last epoch is reported only once the trial is stored: a scheduler that stops a
            # trial at its final report would otherwise race the write below.
            if summary["epoch"] == trial.epochs:
                final_summary.update(summary)
            elif report is not None:
                report(summary)

        def store_partial(metrics: dict[str, list]) -> None:
            # A Tune scheduler ends a trial inside report() and tears the worker down without
            # waiting for it, so what was measured is stored before each report, as "partial";
            # the driver turns the record into "stopped" when the scheduler ended the trial.
            store.write_trial(
                TrialRecord(
                    trial=dataclasses.asdict(trial), key=trial.key, status="partial", metrics=metrics, info=base_info
                )
            )

        def on_resume(epoch: int) -> None:
            attempt["resumed_from"] = epoch

        try:
            output = train_trial(
                trial, env, on_epoch=on_epoch, on_metrics=store_partial if spec.scheduler else None, on_resume=on_resume
            )
        except Exception as error:
            if attempt["resumed_from"] is None or attempt["epochs"] > 0:
                raise
            # Failed before finishing one epoch after resuming: the checkpoint itself is suspect
            # (e.g. damaged weights that still load). Never resume it again; retry once from scratch.
            log.warning(
                "trial %s failed right after resuming from its epoch-%d checkpoint in %s (%s: %s); "
                "discarding the checkpoint and retrying once from scratch",
                trial.key,
                attempt["resumed_from"],
                checkpoint_dir,
                type(error).__name__,
                error,
            )
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
            output = train_trial(trial, env, on_epoch=on_epoch, on_metrics=store_partial if spec.scheduler else None)
        info = {
            **base_info,
            "data_generator_version": DATASETS.get(trial.dataset).generator_version,
            "wall_time_s": output.wall_time_s,
            "seconds_per_epoch": output.seconds_per_epoch,
            "peak_memory_mb": output.peak_memory_mb,
            "device": output.device_name,
            "cpu": output.cpu,
            "torch_version": output.torch_version,
            "cuda_version": output.cuda_version,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        store.write_trial(
            TrialRecord(
                trial=dataclasses.asdict(trial),
                key=trial.key,
                status="completed",
                metrics=output.metrics,
                predictions=output.predictions,
                info=info,
            )
        )
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        log.info("trial %s complete in %.1fs", trial.key, output.wall_time_s)
        if report is not None and final_summary:
            try:
                report(final_summary)
            except SystemExit:
                pass  # the scheduler stopped a trial that is already stored as completed
    except SystemExit:
        log.info("trial %s stopped early by the scheduler", trial.key)
        raise
    except BaseException:
        log.error("trial %s failed on %s (%s):\n%s", trial.key, host, cpu, traceback.format_exc())
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _ray_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:
        return None
