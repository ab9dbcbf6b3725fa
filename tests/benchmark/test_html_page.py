"""The report's index.html: every CSV number in the page's cells, the 2-SE highlight, best per row,
missing and failed cells, escaping, no external URLs, embedded figures, provenance; and the
headless-Chromium check (tools/check_report_page.py) where chromium is installed."""

from __future__ import annotations

import base64
import importlib
import importlib.util
import math
import shutil
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from benchmark.report.page import beyond_2se, page_context, write_index_html
from benchmark.report.provenance import provenance_from_store

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>"
COLUMNS = [
    "table",
    "dataset",
    "row",
    "setting",
    "metric",
    "column",
    "method",
    "method_variant",
    "repair_variant",
    "kind",
    "mean",
    "std",
    "n",
    "n_failed",
    "paper_mean",
    "paper_std",
    "difference",
    "seeds",
    "epochs",
    "selector",
    "protocol",
    "trial_keys",
    "row_id",
    "col_id",
]


def _png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid RGB PNG (no plotting library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\x40\x80\xc0" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _cell(
    row: str,
    column: str,
    mean: float,
    std: float,
    n: int,
    paper: float = math.nan,
    paper_std: float = math.nan,
    n_failed: int = 0,
    kind: str = "cell",
    variant: str = "",
    metric: str = "unbiased",
    table: int = 2,
    dataset: str = "cmnist",
) -> dict:
    return {
        "table": table,
        "dataset": dataset,
        "row": row,
        "setting": "",
        "metric": metric,
        "column": column,
        "method": column,
        "method_variant": "",
        "repair_variant": variant,
        "kind": kind,
        "mean": mean,
        "std": std,
        "n": n,
        "n_failed": n_failed,
        "paper_mean": paper,
        "paper_std": paper_std,
        "difference": mean - paper,
        "seeds": "0;1" if n == 2 else ("0" if n == 1 else ""),
        "epochs": "",
        "selector": "last",
        "protocol": "paper",
        "trial_keys": "",
        "row_id": f"{dataset}|{row}|",
        "col_id": f"{metric}|{column}",
    }


def _known_cells() -> list[dict]:
    nan = math.nan
    return [
        # 95.0: Vanilla far below the paper (beyond 2 SE); LfF best and within 2 SE; a hostile method
        # name without a paper value; Group DRO failed; HEX missing; REPAIR with its two variants.
        _cell("95.0", "vanilla", 55.0, math.sqrt(50), 2, 77.63, 0.44),
        _cell("95.0", "lff", 82.0, math.sqrt(8), 2, 85.39, 0.94),
        _cell("95.0", "hex", nan, nan, 0, 70.80, 0.89),
        _cell("95.0", "repair", 76.0, math.sqrt(2), 2, 82.51, 0.59, variant="C"),
        _cell("95.0", "repair", 71.0, math.sqrt(2), 2, 82.51, 0.59, kind="repair_variant", variant="T"),
        _cell("95.0", "repair", 76.0, math.sqrt(2), 2, 82.51, 0.59, kind="repair_variant", variant="C"),
        _cell("95.0", "group_dro", nan, nan, 0, 84.50, 0.46, n_failed=1),
        _cell("95.0", HOSTILE, 60.0, nan, 1),
        # 99.5: a tie for the best (both marked), single seeds: only the paper's SE counts.
        _cell("99.5", "vanilla", 30.0, nan, 1, 35.34, 0.13),
        _cell("99.5", "lff", 30.0, nan, 1, 30.5, 3.0),
        _cell("99.5", "hex", nan, nan, 0, 30.33, 1.53),
        _cell("99.5", "repair", nan, nan, 0),
        _cell("99.5", "group_dro", nan, nan, 0),
        _cell("99.5", HOSTILE, nan, nan, 0),
    ]


def _table1_cells() -> list[dict]:
    # Table 1: one method, no best; the relative drop prints with a percent sign.
    biased = _cell("digit/color", "biased_train", 50.0, 1.0, 2, 50.34, 0.16, table=1)
    unbiased = _cell("digit/color", "unbiased_train", 98.0, 0.5, 2, 98.36, 0.05, table=1)
    drop = _cell("digit/color", "relative_drop", -48.98, math.nan, 2, -48.82, math.nan, table=1, metric="relative_drop")
    return [biased, unbiased, drop]


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    pd.DataFrame(_known_cells(), columns=COLUMNS).to_csv(out / "table2.csv", index=False)
    pd.DataFrame(_table1_cells(), columns=COLUMNS).to_csv(out / "table1.csv", index=False)
    (out / "table2.md").write_text(
        "### Table 2\n\nTable 2: Unbiased test accuracy & more.\n\n| a |\n", encoding="utf-8"
    )
    for number in (2, 4):
        (out / "figures" / f"figure{number}.png").write_bytes(_png(number, number))
    pd.DataFrame({"target": [0, 1], "0": [90.0, 60.0], "1": [51.0, 90.0]}).to_csv(
        out / "groups_trial_abc_matrix.csv", index=False
    )
    (out / "groups_trial_abc.png").write_bytes(_png(3, 3))
    pd.DataFrame(
        [
            {
                "trial_key": "abc",
                "dataset": "cmnist",
                "method": HOSTILE,
                "dataset_params": "{}",
                "method_hparams": "{}",
                "trial_seed": 0,
                "selection_protocol": "paper",
                "epoch": e,
                "metric": "q_max",
                "value": v,
            }
            for e, v in ((1, 0.1), (2, 0.375))
        ]
    ).to_csv(out / "diagnostics.csv", index=False)
    pd.DataFrame(
        [
            {
                "trial_key": "f00",
                "dataset": "cmnist",
                "method": "group_dro",
                "dataset_params": "{}",
                "method_hparams": "{}",
                "trial_seed": 0,
                "selection_protocol": "paper",
                "error": "Traceback\nRuntimeError: <b>CUDA</b> out of memory",
            }
        ]
    ).to_csv(out / "failed_trials.csv", index=False)
    return out


class Page(HTMLParser):
    """The parsed page: report cells keyed by (table, row_id, col_id) with their classes and the text
    of each span class; REPAIR variant rows; every src/href; every <script> body."""

    VOID = {"br", "img", "meta", "link", "input", "hr", "source", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[tuple[str, str, str], dict] = {}
        self.variants: dict[tuple[str, str, str], dict] = {}
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self.images: list[str] = []
        self.stack: list[tuple[str, dict]] = []
        self.feed(text)
        self.close()

    def _current(self) -> list[dict]:
        return [attrs["_record"] for _, attrs in self.stack if "_record" in attrs]

    def handle_starttag(self, tag, attrs):
        values = {k: v or "" for k, v in attrs}
        for name in ("src", "href"):
            if name in values:
                self.urls.append(values[name])
        if tag == "img":
            self.images.append(values.get("src", ""))
        if tag in self.VOID:
            return
        if tag == "td" and "data-col-id" in values:
            record = {"classes": set(values.get("class", "").split()), "attrs": values, "spans": {}, "text": ""}
            self.cells[(values["data-table"], values["data-row-id"], values["data-col-id"])] = record
            values["_record"] = record
        if tag == "tr" and "data-variant" in values:
            record = {"attrs": values, "spans": {}, "text": ""}
            self.variants[(values["data-row-id"], values["data-col-id"], values["data-variant"])] = record
            values["_record"] = record
        self.stack.append((tag, values))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "script":
            self.scripts.append(data)
        for record in self._current():
            record["text"] += data
            for open_tag, attrs in self.stack:
                if open_tag == "span":
                    for name in attrs.get("class", "").split():
                        record["spans"][name] = record["spans"].get(name, "") + data


def _page(report_dir: Path, provenance=None) -> tuple[str, Page]:
    path = write_index_html(report_dir, provenance)
    assert path == report_dir / "index.html"
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def _numbers_of(row: pd.Series) -> dict[str, str]:
    out = {"mean": f"{row['mean']:.2f}", "n-value": str(int(row["n"]))}
    if not math.isnan(row["std"]):
        out["std"] = f"{row['std']:.2f}"
    if not math.isnan(row["paper_mean"]):
        out["paper"], out["diff"] = f"{row['paper_mean']:.2f}", f"{row['difference']:+.2f}"
    if not math.isnan(row["paper_std"]):
        out["paper-std"] = f"{row['paper_std']:.2f}"
    return out


def _assert_every_csv_number_shown(report_dir: Path, page: Page) -> int:
    checked = 0
    for path in sorted(report_dir.glob("table*.csv")):
        tidy = pd.read_csv(
            path,
            dtype={"row_id": str, "col_id": str, "repair_variant": str},
            keep_default_na=False,
            na_values={c: [""] for c in ("mean", "std", "paper_mean", "paper_std", "difference")},
        )
        number = path.stem[5:]
        for _, row in tidy.iterrows():
            if row["kind"] == "repair_variant":
                shown = page.variants[(row["row_id"], row["col_id"], row["repair_variant"])]["spans"]
                want = {k: v for k, v in _numbers_of(row).items() if k in ("mean", "std", "paper", "diff", "n-value")}
            else:
                cell = page.cells[(number, row["row_id"], row["col_id"])]
                if int(row["n"]) == 0:
                    assert cell["text"].strip() == ("failed" if int(row["n_failed"]) else "—")
                    continue
                shown, want = cell["spans"], _numbers_of(row)
            for name, value in want.items():
                assert shown.get(name, "").strip() == value, (path.name, row["row_id"], row["col_id"], name)
                checked += 1
    return checked


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
        "import sys, benchmark.report.page; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'methods', 'datasets', 'models', 'ray') or m.startswith('benchmark.training')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --------------------------------------------------------------------------------------------
# The real report: the golden store written by the report itself, and the store's provenance
# --------------------------------------------------------------------------------------------
def _report_api():
    for name in ("benchmark.report.cli", "benchmark.report"):
        try:
            module = importlib.import_module(name)
            return module.build_report, module.ReportOptions
        except (ImportError, AttributeError):
            continue
    pytest.fail("no build_report found in benchmark.report(.cli)")


def _store_api():
    try:
        from benchmark.store import ResultStore, TrialRecord
    except ImportError:
        from benchmark.store.store import ResultStore, TrialRecord
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


# --------------------------------------------------------------------------------------------
# Headless Chromium (tools/check_report_page.py)
# --------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed (Debian: apt-get install chromium)"
)


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.check_report_page", *args], cwd=REPO, capture_output=True, text=True, timeout=300
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
