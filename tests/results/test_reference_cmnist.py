"""The shipped Colored MNIST reference results (results/reference/cmnist, a compact store made with
`python -m benchmark.store compact`): the report regenerates the paper's Colored MNIST tables and
Figures 2 and 4 from it without training, and every shipped trial fills a table cell."""

from pathlib import Path

import pytest

from benchmark.report.build import ReportOptions, build_report
from benchmark.report.loading import load_store
from benchmark.report.selection import select
from benchmark.report.tables import build_table
from benchmark.store import ResultStore

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference" / "cmnist"
TABLES = (1, 2, 3, 4, 8, 9, 10)


@pytest.fixture(scope="module")
def selection():
    assert (REFERENCE / "trials").is_dir(), f"the reference set is missing: {REFERENCE}"
    return select(load_store(REFERENCE))


def test_every_shipped_trial_is_a_completed_colored_mnist_trial_of_the_paper_grid(selection):
    trials = ResultStore(REFERENCE).trials()
    assert len(trials) > 0 and set(trials["status"]) == {"completed"}
    assert set(trials["dataset"]) == {"cmnist"}
    assert len(selection.summaries) == len(trials)


def test_the_tables_use_every_shipped_trial(selection):
    used = set()
    for number in TABLES:
        result = build_table(number, selection)
        cells = result.cells
        if len(cells):
            cells = cells[(cells["dataset"] == "cmnist") & (cells["metric"] != "relative_drop")]
            assert (cells.loc[cells["n"] > 0, "mean"].between(0, 100)).all()
        used |= {k for text in result.tidy.get("trial_keys", []) for k in str(text).split(";") if k}
    assert used == set(selection.summaries["trial_key"])


def test_the_report_regenerates_tables_and_figures_in_seconds(tmp_path):
    markdown = build_report(str(REFERENCE), tmp_path, ReportOptions(tables=list(TABLES)))
    for number in TABLES:
        assert (tmp_path / f"table{number}.csv").is_file()
    assert (tmp_path / "figures" / "figure4.png").is_file()
    assert (tmp_path / "figures" / "figure2.png").is_file()
    assert (tmp_path / "index.html").is_file() and "Table 2" in markdown
