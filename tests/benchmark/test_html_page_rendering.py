"""The report's index.html: every CSV number in the page's cells, the 2-SE highlight, best per
row, missing and failed cells, escaping, no external URLs, embedded figures."""

from __future__ import annotations

import base64
import math
import subprocess
import sys

import pytest
from html_page_kit import (
    HOSTILE,
    REPO,
    _assert_every_csv_number_shown,
    _page,
)

from debiasbench.benchmark.report.page import beyond_2se, page_context


def test_every_csv_number_is_in_its_cell(report_dir):
    _, page = _page(report_dir)
    assert _assert_every_csv_number_shown(report_dir, page) > 40
    vanilla = page.cells[("2", "cmnist|95.0|", "unbiased|vanilla")]
    assert vanilla["spans"]["mean"] == "55.00" and vanilla["spans"]["std"] == "7.07"
    assert vanilla["spans"]["paper"] == "77.63" and vanilla["spans"]["diff"] == "-22.63"
    assert page.cells[("2", "cmnist|95.0|", "unbiased|repair")]["spans"]["variant"] == "(C)"


def test_beyond_two_standard_errors_is_highlighted(report_dir):
    _, page = _page(report_dir)
    flagged = {k[1:] for k, c in page.cells.items() if "beyond-2se" in c["classes"]}
    assert flagged == {
        ("cmnist|95.0|", "unbiased|vanilla"),  # |55 - 77.63| > 2 * max(7.07/√2, 0.44/√3)
        ("cmnist|95.0|", "unbiased|repair"),  # |76 - 82.51| = 6.51 > 2 * max(1.41/√2, 0.59/√3)
        ("cmnist|99.5|", "unbiased|vanilla"),  # n = 1: only the paper's SE 0.13/√3 counts
    }
    # Not flagged: LfF at 95.0 (|82 - 85.39| = 3.39 < 2 * 2.0), LfF at 99.5 (0.5 < 2 * 3/√3), Table 1
    # (|50 - 50.34| < 2 * 1/√2; no std on either side of the relative drop), no paper value.
    assert beyond_2se({"difference": -3.39, "std": math.sqrt(8), "n": 2, "paper_std": 0.94}) == (
        False,
        pytest.approx(2.0),
    )
    assert beyond_2se({"difference": 1.0, "std": math.nan, "n": 1, "paper_std": math.nan})[0] is None
    assert beyond_2se({"difference": math.nan, "std": 1.0, "n": 3, "paper_std": 1.0})[0] is None
    # The larger SE wins: ours 1/√4 = 0.5, the paper's 3/√3 = 1.73.
    assert beyond_2se({"difference": 3.0, "std": 1.0, "n": 4, "paper_std": 3.0}) == (False, pytest.approx(math.sqrt(3)))
    text, _ = _page(report_dir)
    assert "larger of our standard error" in text and "/√3" in text  # the rule is stated on the page


def test_best_per_row_is_marked_ties_included_and_not_in_table_1(report_dir):
    _, page = _page(report_dir)
    best = {k[1:] for k, c in page.cells.items() if "best" in c["classes"]}
    assert best == {
        ("cmnist|95.0|", "unbiased|lff"),
        ("cmnist|99.5|", "unbiased|vanilla"),
        ("cmnist|99.5|", "unbiased|lff"),
    }
    table1 = page_context(report_dir)["tables"][0]
    assert table1["number"] == 1 and table1["headers"] == [
        "Dataset",
        "Target / bias",
        "Accuracy",
        "Accuracy*",
        "Relative drop",
    ]
    drop = page.cells[("1", "cmnist|digit/color|", "relative_drop|relative_drop")]
    assert drop["spans"]["mean"] == "-48.98" and "-48.98%" in drop["text"] and "-48.82%" in drop["text"]


def test_missing_and_failed_cells_are_listed(report_dir):
    text, page = _page(report_dir)
    assert page.cells[("2", "cmnist|95.0|", "unbiased|group_dro")]["classes"] >= {"failed"}
    assert page.cells[("2", "cmnist|95.0|", "unbiased|hex")]["classes"] >= {"missing"}
    context = page_context(report_dir)
    table2 = next(t for t in context["tables"] if t["number"] == 2)
    missing = {(m["row"], m["column"], m["failed"]) for m in table2["missing"]}
    assert ("Colored MNIST / 95.0", "Group DRO", True) in missing and ("Colored MNIST / 95.0", "HEX", False) in missing
    assert len(missing) == 6 and table2["counts"]["failed"] == 1
    assert "RuntimeError: &lt;b&gt;CUDA&lt;/b&gt; out of memory" in text  # failed trials, escaped


def test_hostile_names_are_escaped(report_dir):
    text, page = _page(report_dir)
    assert HOSTILE not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not any("alert(1)" in script for script in page.scripts)
    hostile = page.cells[("2", "cmnist|95.0|", f"unbiased|{HOSTILE}")]  # attribute values escaped too
    assert hostile["spans"]["mean"] == "60.00"
    assert "Unbiased test accuracy &amp; more." in text  # the caption from table2.md


def test_no_external_urls_and_figures_are_embedded(report_dir):
    text, page = _page(report_dir)
    assert not [u for u in page.urls if u.startswith(("http://", "https://", "//"))]
    assert "http://" not in text and "https://" not in text
    assert len(page.images) == 3  # figures 2 and 4 and the group heatmap
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    decoded = [base64.b64decode(src.split(",", 1)[1]) for src in page.images]
    assert decoded[0] == (report_dir / "figures" / "figure2.png").read_bytes()
    assert decoded[2] == (report_dir / "groups_trial_abc.png").read_bytes()
    assert "default-src 'none'" in text  # the CSP forbids any fetch


def test_groups_and_diagnostics_sections(report_dir):
    context = page_context(report_dir)
    group = context["groups"][0]
    assert group["name"] == "groups_trial_abc" and group["rows"][0]["values"] == ["90.00", "51.00"]
    diagnostics = context["diagnostics"]
    assert diagnostics["rows"][0]["mean"] == "0.375" and diagnostics["rows"][0]["n"] == 1  # the last epoch


def test_a_report_without_optional_files(tmp_path):
    out = tmp_path / "bare"
    out.mkdir()
    text, page = _page(out)
    assert "wrote no tables" in text and "Figure 2 was not drawn" in text and "No provenance was supplied" in text
    assert page.images == []


def test_module_is_torch_free():
    code = (
        "import sys, debiasbench.benchmark.report.page; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'ray') or m.split('.')[:2] in (['debiasbench', 'methods'], ['debiasbench', 'datasets'], "
        "['debiasbench', 'models']) or m.startswith('debiasbench.benchmark.training')]; "
        "assert 'debiasbench.benchmark.report.page' in sys.modules and not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
