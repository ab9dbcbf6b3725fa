"""What the driver does when something fails, so every fault ends in one clear line: a failed
trial's full error goes to its log file and its record (one line on the console), a record that
cannot be written (disk full) is reported instead of crashing the driver, and Tune itself dying
(e.g. its own state write on a full disk) becomes a summary plus one line with the cause."""

from __future__ import annotations

import dataclasses
import socket
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from debiasbench.benchmark.experiments.worker import attempt_origin
from debiasbench.benchmark.integrity import disk_error_message, os_errno
from debiasbench.benchmark.store import ResultStore, StoreError, TrialRecord
from debiasbench.benchmark.trial import ResolvedTrial


def trial_log_file(store: ResultStore, key: str) -> Path | None:
    return Path(store.root) / "logs" / f"{key}.log" if store.is_local else None


def _error_text(error: Any) -> str:
    if isinstance(error, BaseException):
        return "".join(traceback.format_exception(error))
    return str(error)


def summary_line(text: str) -> str:
    """The last meaningful line of a traceback (the exception and its message)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "error"


def record_failure(store: ResultStore, trial: ResolvedTrial, error: Any, code_version: str) -> str:
    """Record a trial that failed after Tune's retries: the full error goes to its log file and to
    a "failed" record; returns the one line the console shows (with where to read more). The record
    names the host and CPU of the last attempt, read from the trial's log (the attempt may have run
    on another node, or died without a word); without that line, this driver's host and no CPU."""
    text = _error_text(error)
    line = summary_line(text)
    log_file = trial_log_file(store, trial.key)
    origin = None
    if log_file is not None:
        try:
            origin = attempt_origin(log_file.read_text(encoding="utf-8", errors="replace"), trial.key)
        except OSError:
            pass  # never started (no log) or unreadable: the driver's host stands in
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "a") as handle:
                stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
                handle.write(f"\n--- failed after Tune's retries ({stamp}) ---\n{text}\n")
            line += f" (full error in {log_file})"
        except OSError:
            pass
    try:
        store.write_trial(
            TrialRecord(
                trial=dataclasses.asdict(trial),
                key=trial.key,
                status="failed",
                error=text,
                info={
                    "code_version": code_version,
                    "hostname": origin[0] if origin else socket.gethostname(),
                    **({"cpu": origin[1]} if origin else {}),
                    "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                },
            )
        )
    except (StoreError, OSError) as write_error:
        line += f"; the failure could not be recorded: {write_error}"
    return line


def fit_tuner(tuner: Any, state_dir: Path) -> tuple[list, str | None]:
    """Run the Tuner; if Tune itself dies (not a trial: e.g. its experiment state cannot be
    written), return no results and one line with the cause and the fix instead of a traceback."""
    try:
        return tuner.fit(), None
    except Exception as error:  # noqa: BLE001 - whatever Tune raised, the user gets one line
        return [], tune_failure_message(error, state_dir)


def tune_failure_message(error: BaseException, state_dir: Path) -> str:
    """One line for Tune dying: a disk error named by file, cause and fix when the exception chain
    or the free space says so, else the exception's last line."""
    from debiasbench.benchmark.integrity import free_bytes

    chain, seen = [], error
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    disk = next((e for e in chain if isinstance(e, OSError) and os_errno(e) is not None), None)
    free = free_bytes(state_dir)
    raised = f"{type(error).__name__}: {summary_line(str(error)) if str(error).strip() else 'no message'}"
    if disk is not None:
        detail = disk_error_message(
            disk,
            getattr(disk, "filename", None) or state_dir,
            "Ray Tune's state under",
            "pass --results on a disk with space",
        )
    elif free is not None and free < 64 << 20:
        detail = (
            f"the disk holding {state_dir} is full ({free >> 10} KB free; Tune raised {raised}); free space "
            "there, or pass --results on a larger disk"
        )
    else:
        detail = raised
    return (
        f"Ray Tune stopped the grid: {detail}. Trials finished before it stopped are in the store; rerun the "
        "same command to resume the rest"
    )
