"""A failed trial's record (benchmark/experiments/failures.py) names where its last attempt ran:
the driver writes the record, possibly on another host, and reads the attempt's host and CPU from
the trial's log."""

import socket

import pandas as pd
import pytest

from debiasbench.benchmark.experiments.failures import record_failure
from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.experiments.worker import ATTEMPT_START
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig

XEON = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz, AVX512"


@pytest.fixture
def failing(toy_plugin):
    return resolve_all([TrialConfig("toy", "always_fails", epochs=1)])[0]


def _start_line(key: str, host: str, cpu: str) -> str:
    return "2026-12-07 10:00:00 INFO worker: " + ATTEMPT_START.format(key=key, host=host, cpu=cpu) + '{"seed": 0}\n'


def _failed_row(store: ResultStore) -> dict:
    (row,) = store.trials().to_dict("records")
    assert row["status"] == "failed"
    return row


def test_the_record_names_the_host_and_cpu_of_the_last_attempt_not_the_driver(tmp_path, failing):
    store = ResultStore(tmp_path / "r")
    log_file = tmp_path / "r" / "logs" / f"{failing.key}.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text(
        _start_line(failing.key, "node-a", "AMD EPYC 7B13, AVX2")
        + "Traceback (most recent call last):\nRuntimeError: first attempt\n"
        + _start_line("0" * 20, "node-z", "another trial's CPU, DEFAULT")
        + _start_line(failing.key, "gpu-node-7", XEON)
    )
    line = record_failure(store, failing, RuntimeError("this method always fails"), "test")
    row = _failed_row(store)
    assert (row["hostname"], row["cpu"]) == ("gpu-node-7", XEON)
    assert line == f"RuntimeError: this method always fails (full error in {log_file})"


def test_an_attempt_that_never_logged_leaves_the_drivers_host_and_no_cpu(tmp_path, failing):
    store = ResultStore(tmp_path / "r")
    record_failure(store, failing, RuntimeError("no worker started"), "test")
    row = _failed_row(store)
    assert row["hostname"] == socket.gethostname()
    assert pd.isna(row["cpu"])
