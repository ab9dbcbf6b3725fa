"""`--compare`: a store against a reference, cell by cell, with the 2-standard-error rule; and the
compact copy of a store that the shipped reference set is made with."""

import importlib.util
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.cli import main
from debiasbench.benchmark.report.compare import beyond_standard_errors, compare_stores, standard_error
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.store.compact import compact_store

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", HERE / "synthetic.py")
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)


def _store(root: Path, values: dict[str, list[float]]) -> ResultStore:
    """Table 2 cells at 95% on Colored MNIST: method -> unbiased accuracy per seed."""
    store = ResultStore(root)
    for method, accuracies in values.items():
        for seed, accuracy in enumerate(accuracies):
            config = synthetic.trial("cmnist", method, {"ratio": 95.0, "difficulty": 4, "target": "digit"}, seed=seed)
            synthetic.simple(store, config, (accuracy, accuracy - 0.05))
    return store


def test_the_rule_uses_the_larger_standard_error_and_skips_cells_without_any():
    assert standard_error(2.0, 4) == 1.0 and math.isnan(standard_error(2.0, 1))
    assert beyond_standard_errors(2.5, 1.0, math.nan) == (True, 1.0)
    assert beyond_standard_errors(2.5, 1.0, 1.5) == (False, 1.5)  # 2.5 < 2 x 1.5
    assert beyond_standard_errors(9.0, math.nan, math.nan) == (None, math.nan)


def test_cells_beyond_two_standard_errors_are_flagged(tmp_path):
    mine = _store(tmp_path / "mine", {"vanilla": [0.50, 0.52, 0.54], "lff": [0.80, 0.81, 0.82], "hex": [0.6]})
    reference = _store(tmp_path / "ref", {"vanilla": [0.70, 0.72, 0.74], "lff": [0.80, 0.82, 0.84], "hex": [0.9]})
    frame = compare_stores(str(mine.root), str(reference.root), tables=[2])
    cells = frame.set_index("column")
    assert cells.loc["vanilla", "difference"] == pytest.approx(-20.0)
    assert cells.loc["vanilla", "beyond_2se"] is True  # 20 points apart, SE about 1.15
    assert cells.loc["lff", "beyond_2se"] is False  # 1 point apart, within noise
    assert cells.loc["hex", "beyond_2se"] is None  # one seed on each side: not tested
    assert cells.loc["vanilla", "difference_in_se"] == pytest.approx(-20.0 / (2.0 / math.sqrt(3)))


def test_the_cli_writes_the_comparison_and_lists_the_flagged_cells(tmp_path, capsys):
    mine = _store(tmp_path / "mine", {"vanilla": [0.50, 0.52, 0.54]})
    reference = _store(tmp_path / "ref", {"vanilla": [0.70, 0.72, 0.74]})
    assert main([str(mine.root), "--compare", str(reference.root), "--tables", "2", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "1 differ by more than 2 standard errors" in out and "⚠" in out
    assert (tmp_path / "o" / "compare.csv").is_file() and (tmp_path / "o" / "compare.md").is_file()


def test_a_compact_store_gives_the_same_tables_with_far_fewer_rows(tmp_path):
    store = ResultStore(tmp_path / "full")
    config = synthetic.trial("cmnist", "vanilla", {"ratio": 99.5, "difficulty": 4, "target": "digit"}, epochs=3)
    rows = synthetic.Rows()
    for epoch in (1, 2, 3):
        rows.evaluation(epoch, "main", "test", 0.3 + 0.1 * epoch, 0.2 + 0.1 * epoch)
        rows.add(epoch, "main", "train", "aligned", "loss", 1.0 / epoch)
        for target in range(3):
            rows.add(epoch, "main", "test", "group", "accuracy", 0.5, target, (target + 1) % 3)
    synthetic.write(store, config, rows)
    report = compact_store(str(store.root), str(tmp_path / "compact"))
    assert len(report.written) == 1 and report.rows_after == report.rows_before - 6  # groups of epochs 1, 2
    (path,) = (tmp_path / "compact" / "trials").glob("*.parquet")
    table = pq.read_table(path).to_pandas()
    assert set(table.loc[table["subset"] == "group", "epoch"]) == {3}
    full = build_report(str(store.root), tmp_path / "r1", ReportOptions(tables=[2, 3], figures=False))
    compact = build_report(str(tmp_path / "compact"), tmp_path / "r2", ReportOptions(tables=[2, 3], figures=False))
    assert (
        full.replace(str(store.root), "X").split("Files under")[0]
        == compact.replace(str(tmp_path / "compact"), "X").split("Files under")[0]
    )


def test_a_missing_store_is_an_error_that_creates_nothing(tmp_path, capsys):
    reference = _store(tmp_path / "ref", {"vanilla": [0.70]})
    assert main([str(reference.root), "--compare", str(tmp_path / "typo"), "--out", str(tmp_path / "o")]) == 2
    assert "no result store" in capsys.readouterr().err
    from debiasbench.benchmark.store.__main__ import main as store_main

    assert store_main(["compact", str(tmp_path / "typo"), "--into", str(tmp_path / "dst")]) == 2
    assert "no result store" in capsys.readouterr().err and not (tmp_path / "dst").exists()
