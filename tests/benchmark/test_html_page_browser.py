"""The headless-Chromium check of index.html (tools/check_report_page.py), where chromium is
installed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from html_page_kit import (
    REPO,
)

from debiasbench.benchmark.report.page import write_index_html

# --------------------------------------------------------------------------------------------
# Headless Chromium (tools/check_report_page.py)
# --------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed (Debian: apt-get install chromium)"
)


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "debiasbench.tools.check_report_page", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_chromium
def test_chromium_renders_the_csv_numbers(report_dir, tmp_path):
    write_index_html(report_dir)
    shot = tmp_path / "page.png"
    result = _check(str(report_dir), "--screenshot", str(shot), "--window-size", "1200,1600")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sorting self-test: ok" in result.stdout
    assert shot.read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_chromium_check_catches_a_wrong_number_and_a_script_error(report_dir):
    page = write_index_html(report_dir)
    text = page.read_text(encoding="utf-8")
    text = text.replace('<span class="mean">82.00</span>', '<span class="mean">82.01</span>', 1)
    text = text.replace("</body>", "<script>notDefinedAnywhere();</script></body>")
    page.write_text(text, encoding="utf-8")
    result = _check(str(report_dir))
    assert result.returncode == 1
    assert "mean shows '82.01', CSV gives '82.00'" in result.stdout
    assert "notDefinedAnywhere" in result.stdout
