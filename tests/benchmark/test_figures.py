"""Figures 2 and 4: the data they plot (exact values from a synthetic store) and the files."""

import importlib.util
from pathlib import Path

import pytest

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.figures import (
    FigureDataError,
    FigureOptions,
    figure2,
    figure2_data,
    figure4,
    figure4_data,
)
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.store import ResultStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", FIXTURES / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)


def _params(ratio, target="digit"):
    return {"ratio": ratio, "difficulty": 4, "target": target, "unbiased_train": False}


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("figure_store"))
    store.ensure_writable()
    for seed in (0, 1):
        for target in ("digit", "color"):
            syn.simple(
                store, syn.trial("cmnist", "vanilla", _params(99.0, target), seed, epochs=3), (0.5 + 0.1 * seed, 0.4)
            )
        syn.simple(store, syn.trial("cmnist", "lff", _params(99.0), seed, epochs=3), (0.8, 0.7 + 0.1 * seed))
        syn.simple(store, syn.trial("cmnist", "vanilla", _params(95.0), seed, epochs=3), (0.9, 0.9))
    return select(load_store(store.root))


def test_figure2_data_has_both_directions_and_the_logged_losses(selection):
    data = figure2_data(selection)
    assert set(data["direction"]) == {"malignant", "benign"} and set(data["ratio"]) == {"99.0"}
    assert data["trial_seed"].nunique() == 2 and sorted(data["epoch"].unique()) == [1, 2, 3]
    epoch2 = data[data["epoch"] == 2].groupby("samples")["loss"].unique()
    assert list(epoch2["bias-aligned"]) == [0.5] and list(epoch2["bias-conflicting"]) == [1.5]


def test_figure4_data_has_the_three_models(selection):
    data = figure4_data(selection)
    assert set(data["model"]) == {"Vanilla", "LfF biased", "LfF debiased"}
    final = data[(data["epoch"] == 3) & (data["samples"] == "bias-conflicting") & (data["model"] == "LfF debiased")]
    assert sorted(final["accuracy"].round(6)) == [70.0, 80.0]
    biased = data[(data["epoch"] == 3) & (data["samples"] == "bias-conflicting") & (data["model"] == "LfF biased")]
    assert sorted(biased["accuracy"].round(6)) == [65.0, 75.0]  # the synthetic biased role is 5 points lower
    assert set(data[data["model"] == "Vanilla"]["trial_key"]).isdisjoint(set(final["trial_key"]))


def test_ratio_option_and_a_figure_without_data(selection):
    data = figure4_data(selection, FigureOptions(ratio=95.0))
    assert set(data["ratio"]) == {"95.0"} and set(data["model"]) == {"Vanilla"}
    with pytest.raises(FigureDataError, match="--tables 1"):
        figure2_data(selection, FigureOptions(ratio=98.0))
    with pytest.raises(FigureDataError):
        figure4_data(selection, FigureOptions(difficulty=1))


def test_figure_files_png_and_pdf(selection, tmp_path):
    paths = figure2(selection, tmp_path) + figure4(selection, tmp_path)
    assert sorted(p.name for p in paths) == ["figure2.pdf", "figure2.png", "figure4.pdf", "figure4.png"]
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if path.suffix == ".png" else head.startswith(b"%PDF")
        assert path.stat().st_size > 5000


def test_report_lists_figures_it_cannot_draw(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    syn.simple(store, syn.trial("celeba", "lff", {"target": "Blond_Hair", "bias": "Male"}), (0.8, 0.7))
    markdown = build_report(str(store.root), tmp_path / "out", ReportOptions())
    assert "Figure 2 not drawn" in markdown and "Figure 4 not drawn" in markdown
    assert not (tmp_path / "out" / "figures" / "figure2.png").exists()


def test_figures_never_pool_trials_that_differ_in_more_than_the_seed():
    import pandas as pd

    from debiasbench.benchmark.report.figures import FigureOptions, _controlled_trials

    def trial(key, scaling, seed):
        return {
            "trial_key": key,
            "dataset": "cmnist",
            "method": "vanilla",
            "epochs": 100,
            "hparams_seed": 0,
            "trial_seed": seed,
            "params": {
                "ratio": 99.5,
                "difficulty": 4,
                "target": "digit",
                "unbiased_train": False,
                "input_scaling": scaling,
            },
        }

    class Sel:
        summaries = pd.DataFrame([trial("a", "reference", 0), trial("b", "reference", 1), trial("c", "unit", 0)])

    assert set(_controlled_trials(Sel, ["vanilla"], FigureOptions())["trial_key"]) == {"a", "b"}
    chosen = _controlled_trials(Sel, ["vanilla"], FigureOptions(params=(("input_scaling", "unit"),)))
    assert set(chosen["trial_key"]) == {"c"}
