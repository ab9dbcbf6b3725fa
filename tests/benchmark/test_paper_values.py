"""The transcribed reference values against the paper text itself (parsed here, independently)."""

import re
from pathlib import Path

import pytest

from debiasbench.benchmark.paper.axes import BAR_CLASSES, BASELINES, DIFFICULTIES, RATIOS, difficulty_row, ratio_row
from debiasbench.benchmark.paper.values import PAPER, paper_cell, paper_value

RATIO_ROWS = tuple(ratio_row(r) for r in RATIOS)
DIFFICULTY_ROWS = tuple(difficulty_row(d) for d in DIFFICULTIES)

PAPER_TEXT = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "002_8bbaa7f5cc723bd1.txt"
PAIR = re.compile(r"(-?\d+\.\d+)\s*(?:</b>)?\s*(?:±|\$\\pm\$)\s*(\d+\.\d+)")
DROP = re.compile(r"(-?\d+\.\d+)%")
CONTROLLED = ("cmnist", "ccifar1", "ccifar2")


def _table_lines(text: str, number: int) -> list[str]:
    """The tab-separated data lines that follow the caption 'Table N:' (first occurrence)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
    out = []
    for line in lines[start + 1 :]:
        if "\t" in line:
            out.append(line)
        elif out and line.strip():
            break
    return out


def _pairs(text: str, number: int) -> list[tuple[float, float]]:
    return [(float(m), float(s)) for line in _table_lines(text, number) for m, s in PAIR.findall(line)]


@pytest.fixture(scope="module")
def paper_text() -> str:
    if not PAPER_TEXT.is_file():
        pytest.skip(f"paper text not found at {PAPER_TEXT}")
    return PAPER_TEXT.read_text(encoding="utf-8")


def _expected(table: int, rows, metrics_columns) -> list[tuple[float, float]]:
    return [PAPER[(table, ds, row, metric, column)] for ds, row in rows for metric, column in metrics_columns]


def test_table1_every_cell(paper_text):
    rows = [
        (ds, row)
        for ds in CONTROLLED
        for row in (("color/digit", "digit/color") if ds == "cmnist" else ("corruption/object", "object/corruption"))
    ]
    assert _pairs(paper_text, 1) == _expected(1, rows, [("unbiased", "biased_train"), ("unbiased", "unbiased_train")])
    drops = [float(x) for line in _table_lines(paper_text, 1) for x in DROP.findall(line)]
    assert drops == [PAPER[(1, ds, row, "relative_drop", "relative_drop")][0] for ds, row in rows]


@pytest.mark.parametrize(
    "table,row_values", [(2, RATIO_ROWS), (3, RATIO_ROWS), (8, DIFFICULTY_ROWS), (9, DIFFICULTY_ROWS)]
)
def test_controlled_tables_every_cell(paper_text, table, row_values):
    metric = "unbiased" if table in (2, 8) else "conflicting"
    rows = [(ds, r) for ds in CONTROLLED for r in row_values]
    assert _pairs(paper_text, table) == _expected(table, rows, [(metric, m) for m in BASELINES])


@pytest.mark.parametrize(
    "table,rows,methods",
    [
        (4, [(ds, "99.0") for ds in CONTROLLED], ("vanilla", "lff_ce", "lff")),
        (5, [("celeba", "Blond_Hair/Male"), ("celeba", "Heavy_Makeup/Male")], ("vanilla", "lff", "group_dro")),
        (10, [("cmnist", r) for r in RATIO_ROWS], ("vanilla", "lff", "lff_rubi")),
    ],
)
def test_two_block_tables_every_cell(paper_text, table, rows, methods):
    columns = [(metric, m) for metric in ("unbiased", "conflicting") for m in methods]
    assert _pairs(paper_text, table) == _expected(table, rows, columns)


def test_table6_and_table7(paper_text):
    rows = [("bar", m) for m in ("vanilla", "rebias", "lff")]
    assert _pairs(paper_text, 6) == _expected(6, rows, [("accuracy", c) for c in (*BAR_CLASSES, "average")])
    counts = [[int(x) for x in line.split("\t")[1:]] for line in _table_lines(paper_text, 7)[1:]]
    assert counts == [
        [int(PAPER[(7, "bar", split, "count", c)][0]) for c in (*BAR_CLASSES, "total")] for split in ("train", "test")
    ]


def test_spot_checks_and_lookups():
    assert paper_cell(2, "ccifar1", "99.0", "unbiased", "lff") == (41.37, 2.34)  # quoted in the paper's text
    assert paper_cell(3, "ccifar2", "98.0", "conflicting", "hex") == (6.60, 7.23)
    assert paper_cell(6, "bar", "rebias", "accuracy", "diving") == (51.57, 4.54)
    assert paper_cell(7, "bar", "train", "count", "total") == (1941, None)
    assert paper_cell(2, "cmnist", "99.0", "unbiased", "no_such_method") is None
    assert paper_value("unbiased", "cmnist", 99, 4, "lff_ce") == (49.90, 1.67)  # from Table 4
    assert paper_value("conflicting", "cmnist", 95.0, 4, "lff_rubi") == (75.84, 0.36)  # from Table 10
    assert paper_value("unbiased", "ccifar2", 99.0, 2, "repair") == (39.57, 0.61)  # from Table 8
    tables = {key[0] for key in PAPER}
    assert tables == set(range(1, 11))
