"""One specification per table: the trials the grid derives for a table are exactly the trials
that fill that table's cells in the report. A store holding one completed record per trial of
table N's grid (seed 0, resolved as the driver resolves it) fills every cell of table N once."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.paper.axes import EXTENDED_METHODS, EXTENDED_TABLE
from debiasbench.benchmark.paper.grids import build_grid, table_trials
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", HERE / "synthetic.py")
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)


def _store_of(table: int, tmp_path: Path) -> tuple[ResultStore, set[str]]:
    store = ResultStore(tmp_path / f"store{table}")
    keys = set()
    for trial in resolve_all(table_trials(table)):
        config = dataclasses.asdict(trial)
        keys.add(synthetic.simple(store, config, (0.6, 0.5), key=trial.key))
    return store, keys


@pytest.mark.parametrize("table", [1, 2, 3, 4, 8, 9, 10, EXTENDED_TABLE])
def test_the_grid_of_a_table_fills_every_cell_of_that_table_once(table, tmp_path):
    store, keys = _store_of(table, tmp_path)
    result = build_table(table, select(load_store(store.root)))
    cells = result.cells
    assert len(cells) and (cells["n"] == 1).all(), cells[cells["n"] != 1][["row", "column", "n"]]
    used = {k for text in result.tidy["trial_keys"] for k in str(text).split(";") if k}
    assert used == keys  # every trial the grid runs for the table lands in one of its cells


def test_the_extended_grid_is_the_table_2_protocol_for_baselines_and_the_new_methods():
    trials = build_grid("extended")
    # ratios x (baselines, REPAIR's 4 variants counted apart, + the methods beyond the paper) x seeds
    assert len(trials) == 4 * (4 + 4 + len(EXTENDED_METHODS)) * 3
    assert {t.dataset for t in trials} == {"cmnist"}
    assert {t.dataset_params["difficulty"] for t in trials} == {4}
    assert set(EXTENDED_METHODS) <= {t.method for t in trials}
    assert {t.dataset_params["ratio"] for t in trials} == {95.0, 98.0, 99.0, 99.5}
