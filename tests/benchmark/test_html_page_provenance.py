"""The index.html of the real report (the golden store written by the report itself) and the
store's provenance."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest
from html_page_kit import (
    _assert_every_csv_number_shown,
    _page,
)

from debiasbench.benchmark.report.provenance import provenance_from_store


# --------------------------------------------------------------------------------------------
# The real report: the golden store written by the report itself, and the store's provenance
# --------------------------------------------------------------------------------------------
def _report_api():
    for name in ("debiasbench.benchmark.report.cli", "debiasbench.benchmark.report"):
        try:
            module = importlib.import_module(name)
            return module.build_report, module.ReportOptions
        except (ImportError, AttributeError):
            continue
    pytest.fail("no build_report found in benchmark.report(.cli)")


def _store_api():
    try:
        from debiasbench.benchmark.store import ResultStore, TrialRecord
    except ImportError:
        from debiasbench.benchmark.store.store import ResultStore, TrialRecord
    return ResultStore, TrialRecord


@pytest.fixture(scope="module")
def golden_report(tmp_path_factory) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location(
        "report_golden_for_html", Path(__file__).parent / "test_report_golden.py"
    )
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    root = tmp_path_factory.mktemp("golden_store")
    golden.make_golden_store(root)
    build_report, ReportOptions = _report_api()
    build_report(str(root), root / "report", ReportOptions(figures=False))
    return root, root / "report"


def test_golden_report_page(golden_report):
    root, out = golden_report
    _, page = _page(out, provenance_from_store(root))
    assert _assert_every_csv_number_shown(out, page) > 50
    cell = page.cells[("2", "cmnist|95.0|", "unbiased|lff")]
    assert "best" in cell["classes"] and cell["spans"]["mean"] == "82.00"


def test_provenance_from_store(tmp_path):
    ResultStore, TrialRecord = _store_api()
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    base = {
        "dataset": "cmnist",
        "method": "vanilla",
        "supervision": "none",
        "predictor_role": "main",
        "dataset_params": {},
        "method_hparams": {},
        "data_seed": 0,
        "hparams_seed": 0,
        "epochs": 1,
        "protocol": "paper",
    }
    infos = [("completed", "cuda:0", "node-a"), ("completed", "cuda:0", "node-b"), ("failed", "cpu", "node-a")]
    for seed, (status, device, host) in enumerate(infos):
        store.write_trial(
            TrialRecord(
                trial={**base, "trial_seed": seed},
                key=f"k{seed}",
                status=status,
                info={
                    "code_version": "0.1.0+abc",
                    "torch_version": "2.5.1",
                    "device": device,
                    "hostname": host,
                    "finished_at": f"2025-01-0{seed + 1}T00:00:00Z",
                },
            )
        )
    provenance = provenance_from_store(tmp_path / "store")
    assert provenance["status"] == {"completed": 2, "failed": 1} and provenance["trials"] == 3
    assert provenance["device"] == {"cuda:0": 2, "cpu": 1} and provenance["hostname"] == {"node-a": 2, "node-b": 1}
    assert provenance["code_version"] == {"0.1.0+abc": 3} and provenance["torch_version"] == {"2.5.1": 3}
    assert provenance["finished_at"] == ["2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z"]
    out = tmp_path / "report"
    out.mkdir()
    text, _ = _page(out, provenance)
    assert "completed (2), failed (1)" in text and "cuda:0 (2), cpu (1)" in text and "0.1.0+abc (3)" in text
