"""Golden test: a small synthetic store with known values gives known CSV numbers and exactly the
committed Markdown and LaTeX (tests/fixtures/report_golden/). The store has a missing method (HEX),
a failed trial (Group DRO), a trial stopped early by a scheduler, an interrupted (partial) one,
REPAIR variants, a cell with
fewer seeds, and a trial of another protocol. Regenerate the golden files after an intended format change with
DEBIASBENCH_UPDATE_GOLDEN=1 pytest tests/benchmark/test_report_golden.py."""

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from report_kit import syn

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.render import render_latex, render_markdown
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"


def params(ratio, difficulty=4):
    return {
        "ratio": ratio,
        "difficulty": difficulty,
        "target": "digit",
        "unbiased_train": False,
        "input_scaling": "reference",
    }


def make_golden_store(root: Path) -> ResultStore:
    store = ResultStore(root)
    store.ensure_writable()
    p95 = params(95.0)
    for seed, final in ((0, (0.50, 0.40)), (1, (0.60, 0.50))):
        syn.simple(store, syn.trial("cmnist", "vanilla", p95, seed), final)
    for seed, final in ((0, (0.80, 0.78)), (1, (0.84, 0.82))):
        syn.simple(store, syn.trial("cmnist", "lff", p95, seed, {"q": 0.7}), final)
    variants = {"T": ((0.70, 0.69), (0.72, 0.71)), "C": ((0.75, 0.60), (0.77, 0.62))}
    for variant, finals in variants.items():
        for seed, final in enumerate(finals):
            syn.simple(store, syn.trial("cmnist", "repair", p95, seed, {"variant": variant}), final)
    syn.write(
        store,
        syn.trial("cmnist", "group_dro", p95, 0),
        status="failed",
        error="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory",
    )
    syn.simple(store, syn.trial("cmnist", "vanilla", params(99.5), 0), (0.30, 0.20))
    syn.simple(store, syn.trial("cmnist", "lff", params(99.5), 0, {"q": 0.7}), (0.30, 0.20))
    # Stopped early by a scheduler (partial metrics): finished, but never in a table.
    stopped = syn.Rows()
    stopped.evaluation(1, "debiased", "test", 0.99, 0.99)
    syn.write(store, syn.trial("cmnist", "lff", p95, 2, {"q": 0.7}), stopped, status="stopped")
    # Interrupted mid-run under a scheduler: unfinished, neither stopped nor tabulated.
    syn.write(store, syn.trial("cmnist", "lff", p95, 3, {"q": 0.7}), stopped, status="partial")
    # Another protocol: must not leak into the paper tables.
    syn.simple(
        store,
        syn.trial("cmnist", "vanilla", p95, 0, protocol="validation"),
        (0.99, 0.99),
        valid=[(0.5, 0.2), (0.6, 0.3)],
    )
    return store


@pytest.fixture(scope="module")
def golden_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden_store")
    make_golden_store(root)
    return root


@pytest.fixture(scope="module")
def selection(golden_store):
    return select(load_store(golden_store), "paper", "last")


def _cell(tidy, row, column, kind="cell", variant=None):
    hit = tidy[
        (tidy["dataset"] == "cmnist") & (tidy["row"] == row) & (tidy["column"] == column) & (tidy["kind"] == kind)
    ]
    if variant is not None:
        hit = hit[hit["repair_variant"] == variant]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def test_table2_csv_numbers(selection):
    tidy = build_table(2, selection).tidy
    vanilla = _cell(tidy, "95.0", "vanilla")
    assert vanilla["mean"] == pytest.approx(55.0) and vanilla["std"] == pytest.approx(math.sqrt(50))
    assert vanilla["n"] == 2 and vanilla["seeds"] == "0;1" and vanilla["epochs"] == "2;2"
    assert vanilla["paper_mean"] == 77.63 and vanilla["paper_std"] == 0.44
    assert vanilla["difference"] == pytest.approx(55.0 - 77.63)
    lff = _cell(tidy, "95.0", "lff")
    assert (lff["mean"], lff["std"], lff["n"]) == (pytest.approx(82.0), pytest.approx(math.sqrt(8)), 2)
    repair = _cell(tidy, "95.0", "repair")
    assert repair["repair_variant"] == "C" and repair["mean"] == pytest.approx(76.0)
    assert _cell(tidy, "95.0", "repair", "repair_variant", "T")["mean"] == pytest.approx(71.0)
    assert _cell(tidy, "95.0", "repair", "repair_variant", "C")["std"] == pytest.approx(math.sqrt(2))
    dro = _cell(tidy, "95.0", "group_dro")
    assert dro["n"] == 0 and dro["n_failed"] == 1 and math.isnan(dro["mean"])
    hex_ = _cell(tidy, "95.0", "hex")
    assert hex_["n"] == 0 and hex_["n_failed"] == 0
    single = _cell(tidy, "99.5", "vanilla")
    assert single["n"] == 1 and math.isnan(single["std"]) and single["mean"] == pytest.approx(30.0)
    # Every cell of the paper's layout is present, filled or not: 3 datasets x 4 ratios x 5 methods.
    assert len(tidy[tidy["kind"] == "cell"]) == 60


def test_table3_repair_best_variant_is_chosen_per_cell(selection):
    tidy = build_table(3, selection).tidy
    repair = _cell(tidy, "95.0", "repair")
    assert repair["repair_variant"] == "T" and repair["mean"] == pytest.approx(70.0)  # C is 61.0 here
    assert _cell(tidy, "95.0", "vanilla")["mean"] == pytest.approx(45.0)


def test_other_protocol_is_its_own_table(golden_store):
    sel = select(load_store(golden_store), "validation", "val_accuracy")
    tidy = build_table(2, sel).tidy
    cell = _cell(tidy, "95.0", "vanilla")
    assert cell["n"] == 1 and cell["mean"] == pytest.approx(99.0) and cell["epochs"] == "2"
    assert cell["protocol"] == "validation" and cell["selector"] == "val_accuracy"
    assert tidy[(tidy["n"] > 0)]["column"].tolist() == ["vanilla"]


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DEBIASBENCH_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def test_golden_markdown_and_latex(selection):
    table = build_table(2, selection)
    _check_golden("table2.md", render_markdown(table, selection) + "\n")
    _check_golden("table2.tex", render_latex(table, selection))
    table3 = build_table(3, selection)
    _check_golden("table3.tex", render_latex(table3, selection))


def test_report_lists_missing_cells_failed_trials_and_other_protocols(golden_store, tmp_path):
    markdown = build_report(str(golden_store), tmp_path, ReportOptions(figures=False))
    assert "1 stored under another protocol" in markdown and "--protocol validation" in markdown
    assert "1 stopped early by a scheduler (never tabulated)" in markdown
    assert "1 trial(s) were interrupted mid-run" in markdown
    assert "RuntimeError: CUDA out of memory" in markdown
    table2 = (tmp_path / "table2.md").read_text()
    assert "| failed |" in table2 and "| — |" in table2
    assert "Colored MNIST / 95.0: HEX, Group DRO (failed)" in table2
    assert "Corrupted CIFAR-10¹ / 95.0: all columns" in table2
    # 95% t intervals by hand (t(0.975, 1 df) = 12.706): LfF 80, 84 -> sem 2.83 / sqrt(2) = 2, so
    # 82 +- 25.41; REPAIR-C 75, 77 -> sem 1, so 76 +- 12.71. One seed (n=1) has no interval.
    assert "**82.00** ± 2.83 [56.59, 107.41]" in table2 and "76.00 ± 1.41 [63.29, 88.71] (C)" in table2
    assert "**30.00** (n=1)" in table2
    failed = pd.read_csv(tmp_path / "failed_trials.csv")
    assert failed["method"].tolist() == ["group_dro"]
    # Tables 2, 3 and 10 have data (Vanilla and LfF at difficulty 4 fill Table 10's columns too);
    # Tables 8 and 9 need ratio 99, Table 7 BAR.
    written = sorted(int(p.stem[5:]) for p in tmp_path.glob("table*.csv"))
    assert written == [2, 3, 10]
    assert "Not filled by this store: Table 1, Table 4, Table 5, Table 6, Table 8, Table 9." in markdown
