"""Check a report's index.html in headless Chromium: the numbers the browser shows equal the CSVs.

    python -m debiasbench.tools.check_report_page REPORT_DIR [--screenshot OUT.png] [--write] [--results RESULTS]

Opens REPORT_DIR/index.html from the file system (no server, network blocked) twice:
  1. `--dump-dom` of index.html#selftest: the DOM after the page's scripts ran. The page's own
     self-test clicks every sortable header twice and records whether the rows came out ordered;
     the checker reads that, the script-ready marker, and every table cell, and compares each
     cell's mean, std, n, paper value, paper std and difference with tableN.csv (formatted to the
     printed precision here, independently of the page's code). Any console message (errors,
     uncaught exceptions, Content-Security-Policy refusals) fails the check, as does a src or href
     that leaves the file.
  2. `--screenshot` (with --screenshot OUT.png) of the page as it opens.
Exit status 0 when everything matches, 1 with the problems listed, 2 when it cannot run.
`--write` first (re)writes index.html with benchmark.report.page.write_index_html.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
NUMBER_FIELDS = ("mean", "std", "n-value", "paper", "paper-std", "diff")


@dataclass
class Cell:
    attrs: dict[str, str]
    classes: set[str]
    text: str = ""
    spans: dict[str, str] = field(default_factory=dict)


class PageParser(HTMLParser):
    """Table cells with data-row-id/data-col-id (their text, per span class), <html>'s data-*
    attributes, and every src/href."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[tuple[str, str, str], Cell] = {}
        self.root: dict[str, str] = {}
        self.links: list[tuple[str, str]] = []
        self._stack: list[tuple[str, set[str]]] = []
        self._cell: Cell | None = None
        self._cell_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.root = values
        for name in ("src", "href"):
            if name in values:
                self.links.append((tag, values[name]))
        if tag in VOID:
            return
        classes = set(values.get("class", "").split())
        self._stack.append((tag, classes))
        if tag == "td" and "data-row-id" in values and "data-col-id" in values and self._cell is None:
            self._cell = Cell(values, classes)
            self._cell_depth = len(self._stack)
            self.cells[(values.get("data-table", ""), values["data-row-id"], values["data-col-id"])] = self._cell

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while self._stack:
            open_tag, _ = self._stack.pop()
            if self._cell is not None and len(self._stack) < self._cell_depth:
                self._cell = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is None:
            return
        self._cell.text += data
        for tag, classes in self._stack[self._cell_depth :]:
            if tag == "span":
                for name in classes:
                    self._cell.spans[name] = self._cell.spans.get(name, "") + data


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


# --------------------------------------------------------------------------------------------
# What the CSVs say the cells must show
# --------------------------------------------------------------------------------------------
def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _value(x: float, metric: str) -> str:
    if math.isnan(x):
        return ""
    if metric == "count":
        return str(int(round(x)))
    return f"{x:.2f}"  # the relative drop's "%" follows the number, outside its span


NOT_COMPARABLE = "not comparable: off the paper's protocol"


def expected_cells(report_dir: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """(table, row_id, col_id) -> the text each number span must hold ('state' for empty cells)."""
    out = {}
    for path in sorted(report_dir.glob("table*.csv")):
        number = path.stem[len("table") :]
        if not number.isdigit():
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["kind"] != "cell":
                    continue
                n = int(_float(row["n"])) if not math.isnan(_float(row["n"])) else 0
                mean = _float(row["mean"])
                if n <= 0 or math.isnan(mean):
                    failed = _float(row["n_failed"]) > 0
                    out[(number, row["row_id"], row["col_id"])] = {"state": "failed" if failed else "missing"}
                    continue
                paper_mean, paper_std = _float(row["paper_mean"]), _float(row["paper_std"])
                difference, std = _float(row["difference"]), _float(row["std"])
                expected = {"state": "ok", "mean": _value(mean, row["metric"]), "n-value": str(n)}
                if not math.isnan(std):
                    expected["std"] = f"{std:.2f}"
                if not math.isnan(paper_mean):
                    expected["paper"] = _value(paper_mean, "count" if row["metric"] == "count" else "")
                    # Off the paper's protocol: no difference, the page says why (benchmark/report/cells.py).
                    expected["diff"] = (
                        NOT_COMPARABLE if math.isnan(difference) and row.get("departures") else f"{difference:+.2f}"
                    )
                if not math.isnan(paper_std):
                    expected["paper-std"] = f"{paper_std:.2f}"
                out[(number, row["row_id"], row["col_id"])] = expected
    return out


def compare(expected: dict[tuple[str, str, str], dict[str, str]], page: PageParser) -> list[str]:
    problems = []
    for key, want in expected.items():
        cell = page.cells.get(key)
        where = f"table {key[0]} row {key[1]!r} column {key[2]!r}"
        if cell is None:
            problems.append(f"{where}: no cell on the page")
            continue
        state = cell.attrs.get("data-state", "")
        if state != want["state"]:
            problems.append(f"{where}: state {state!r}, CSV says {want['state']!r}")
            continue
        if state != "ok":
            shown = cell.text.strip()
            if shown != ("failed" if state == "failed" else "—"):
                problems.append(f"{where}: shows {shown!r} for a {state} cell")
            continue
        for name in NUMBER_FIELDS:
            got = cell.spans.get(name, "").strip()
            if got != want.get(name, ""):
                problems.append(f"{where}: {name} shows {got!r}, CSV gives {want.get(name, '')!r}")
    extra = set(page.cells) - set(expected)
    problems += [f"table {k[0]} row {k[1]!r} column {k[2]!r}: on the page but not in the CSV" for k in sorted(extra)]
    return problems


# --------------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------------
def chromium_path(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def run_chromium(binary: str, url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="check-report-page-") as profile:
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def console_messages(stderr: str) -> list[str]:
    return [line.split("]", 1)[-1].strip() for line in stderr.splitlines() if ":CONSOLE" in line]


@dataclass
class CheckResult:
    problems: list[str]
    cells: int
    selftest: str
    screenshot: Path | None


def check(
    report_dir: Path,
    screenshot: Path | None = None,
    binary: str | None = None,
    window: str = "1400,4000",
    timeout: float = 120.0,
) -> CheckResult:
    index = (report_dir / "index.html").resolve()
    if not index.is_file():
        raise FileNotFoundError(f"{index} does not exist; write it first (--write)")
    binary = chromium_path(binary)
    if binary is None:
        raise FileNotFoundError("no chromium found; install it (Debian: apt-get install chromium) or pass --chromium")
    url = index.as_uri()
    dumped = run_chromium(binary, url + "#selftest", ["--dump-dom"], timeout)
    problems = []
    if dumped.returncode != 0 or not dumped.stdout.strip():
        problems.append(f"chromium --dump-dom failed (exit {dumped.returncode}): {dumped.stderr.strip()[-500:]}")
    page = parse_page(dumped.stdout)
    problems += [f"console: {m}" for m in console_messages(dumped.stderr)]
    if page.root.get("data-js") != "ready":
        problems.append('the page\'s script did not finish (no data-js="ready" on <html>)')
    if page.root.get("data-js-errors"):
        problems.append(f"script errors: {page.root['data-js-errors']}")
    selftest = page.root.get("data-selftest", "")
    if not selftest.startswith("ok"):
        problems.append(f"sorting self-test: {selftest or 'did not run'}")
    for tag, link in page.links:
        if not link.startswith(("data:", "#")) and ("://" in link or link.startswith("//")):
            problems.append(f"<{tag}> points outside the file: {link[:80]}")
    expected = expected_cells(report_dir)
    if not expected:
        problems.append(f"no tableN.csv with cells under {report_dir}")
    problems += compare(expected, page)
    shot = None
    if screenshot is not None:
        screenshot = screenshot.resolve()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        taken = run_chromium(binary, url, [f"--screenshot={screenshot}", f"--window-size={window}"], timeout)
        problems += [f"console (screenshot run): {m}" for m in console_messages(taken.stderr)]
        if not screenshot.is_file() or screenshot.stat().st_size == 0:
            problems.append(f"no screenshot written (exit {taken.returncode}): {taken.stderr.strip()[-500:]}")
        else:
            shot = screenshot
    return CheckResult(problems, len(expected), selftest, shot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.tools.check_report_page", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the page as it opens")
    parser.add_argument("--window-size", default="1400,4000", help="width,height of the screenshot (default 1400,4000)")
    parser.add_argument("--chromium", help="browser binary (default: chromium on PATH)")
    parser.add_argument("--write", action="store_true", help="write index.html first (benchmark.report.page)")
    parser.add_argument("--results", help="with --write: result store for the provenance section")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per browser run")
    args = parser.parse_args(argv)
    try:
        if args.write:
            from debiasbench.benchmark.report.page import write_index_html
            from debiasbench.benchmark.report.provenance import provenance_from_store

            write_index_html(args.report_dir, provenance_from_store(args.results) if args.results else None)
        result = check(args.report_dir, args.screenshot, args.chromium, args.window_size, args.timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print(f"FAIL {problem}")
    status = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
    print(
        f"{status}: {result.cells} table cells compared with the CSVs; sorting self-test: {result.selftest or '-'}"
        + (f"; screenshot {result.screenshot}" if result.screenshot else "")
    )
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
