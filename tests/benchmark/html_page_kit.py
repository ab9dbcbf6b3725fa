"""Shared by the index.html tests: a report folder's known cells, the page parser, and the check
that every CSV number is in its cell."""

from __future__ import annotations

import math
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.report.page import write_index_html
from debiasbench.benchmark.report.specs import TIDY_COLUMNS

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script>"
COLUMNS = list(TIDY_COLUMNS)  # the page reads exactly the columns the report writes


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
        off = math.isnan(row["difference"]) and bool(row.get("departures"))  # off protocol: no difference
        diff = "not comparable: off the paper's protocol" if off else f"{row['difference']:+.2f}"
        out["paper"], out["diff"] = f"{row['paper_mean']:.2f}", diff
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
