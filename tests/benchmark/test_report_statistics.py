"""The statistics of the report on a small known store whose intervals, probabilities and ranks are
computed by hand below: 95% t intervals per cell, Welch intervals and P(A > B) per pair, the
aggregate over cells, mean ranks, the Friedman test and the Nemenyi critical difference, and the
files (comparison_cmnist.*, pairwise.csv, ranking.csv, resolution.csv, critical_difference.*)."""

import math

import pandas as pd
import pytest
from report_kit import syn

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.comparison import comparison_tables
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.stats_report import StatsOptions, cell_values, leading_comparisons, pairwise, ranking
from debiasbench.benchmark.store import ResultStore

# Final-epoch (unbiased, conflicting) accuracy per ratio, method and seed 0, 1, 2.
VALUES = {
    95.0: {
        "vanilla": [(0.50, 0.40), (0.52, 0.42), (0.54, 0.44)],
        "lff": [(0.70, 0.60), (0.72, 0.62), (0.74, 0.64)],
        "group_dro": [(0.66, 0.65), (0.71, 0.67), (0.76, 0.69)],
    },
    98.0: {
        "vanilla": [(0.38, 0.28), (0.40, 0.30), (0.42, 0.32)],
        "lff": [(0.58, 0.48), (0.60, 0.50), (0.62, 0.52)],
        "group_dro": [(0.48, 0.38), (0.50, 0.40), (0.52, 0.42)],
    },
    99.0: {  # LfF and Group DRO identical: a tie
        "vanilla": [(0.28, 0.18), (0.30, 0.20), (0.32, 0.22)],
        "lff": [(0.48, 0.38), (0.50, 0.40), (0.52, 0.42)],
        "group_dro": [(0.48, 0.38), (0.50, 0.40), (0.52, 0.42)],
    },
}
HPARAMS = {"lff": {"q": 0.7}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats_store")
    store = ResultStore(root)
    store.ensure_writable()
    for ratio, methods in VALUES.items():
        for method, seeds in methods.items():
            params = {"ratio": ratio, "difficulty": 4, "target": "digit", "unbiased_train": False}
            for seed, final in enumerate(seeds):
                syn.simple(store, syn.trial("cmnist", method, params, seed, HPARAMS.get(method)), final)
    return root


@pytest.fixture(scope="module")
def values(store):
    sel = select(load_store(store))
    return cell_values([t for _, t in comparison_tables(sel)], sel.summaries)


def _cell(tidy, ratio, method, metric="unbiased"):
    cells = tidy[(tidy["kind"] == "cell") & (tidy["metric"] == metric) & (tidy["method"] == method)]
    return cells[cells["row"].str.contains(f"ratio={ratio}")].iloc[0]


def test_comparison_table_has_t_intervals(store):
    sel = select(load_store(store))
    ((stem, table),) = comparison_tables(sel)
    assert stem == "comparison_cmnist"
    # Vanilla at 95%: 50, 52, 54 -> mean 52, std 2, sem 2/sqrt(3) = 1.1547; t(0.975, 2 df) = 4.3027,
    # half-width 4.9683 -> [47.03, 56.97].
    vanilla = _cell(table.tidy, "95.0", "vanilla")
    assert vanilla["n"] == 3 and vanilla["mean"] == pytest.approx(52.0) and vanilla["std"] == pytest.approx(2.0)
    assert (vanilla["ci_low"], vanilla["ci_high"]) == pytest.approx((47.0317, 56.9683), abs=1e-3)
    # Every column of a dataset with bias labels: unbiased, aligned, conflicting, worst-group.
    assert [c.metric for c in table.columns] == ["unbiased", "aligned", "conflicting", "worst_group"]


def test_pairwise_per_cell_and_aggregated(values):
    pairs = pairwise(values, StatsOptions())
    cell = pairs[
        (pairs["scope"] == "cell")
        & (pairs["method_a"] == "LfF")
        & (pairs["method_b"] == "Vanilla")
        & pairs["cell"].str.contains("ratio=95.0")
        & pairs["cell"].str.endswith("unbiased")
    ].iloc[0]
    # LfF 70, 72, 74 against Vanilla 50, 52, 54: difference 20; Welch se = sqrt(4/3 + 4/3) = 1.63299,
    # df = (8/3)^2 / (2 * (4/3)^2 / 2) = 4, t(0.975, 4) = 2.77645 -> 20 +- 4.5339. Every seed pair: P = 1.
    assert cell["difference"] == pytest.approx(20.0)
    assert (cell["difference_low"], cell["difference_high"]) == pytest.approx((15.4661, 24.5339), abs=1e-3)
    assert cell["p_a_better"] == 1.0 and cell["resolved"]

    lff_gdro = pairs[(pairs["method_a"] == "LfF") & (pairs["method_b"] == "Group DRO")]
    at95 = lff_gdro[lff_gdro["cell"].str.contains("ratio=95.0") & lff_gdro["cell"].str.endswith("unbiased")].iloc[0]
    # LfF 70, 72, 74 against Group DRO 66, 71, 76: LfF wins 70>66, 72>66, 72>71, 74>66, 74>71 = 5 of 9 pairs.
    assert at95["p_a_better"] == pytest.approx(5 / 9)
    assert not at95["resolved"]  # a 1-point difference with stds 2 and 5 over 3 seeds
    aggregate = lff_gdro[lff_gdro["scope"] == "aggregate"].iloc[0]
    # Per cell P(LfF > Group DRO): 95 unbiased 5/9, 95 conflicting 0 (60-64 vs 65-69), 98 both 1,
    # 99 both 0.5 (identical seeds: 3 wins + 3 ties of 9 pairs) -> mean (5/9 + 0 + 1 + 1 + 0.5 + 0.5) / 6.
    assert aggregate["cells"] == 6
    assert aggregate["p_a_better"] == pytest.approx((5 / 9 + 3) / 6)
    # Differences per cell: 1, -5, 10, 10, 0, 0 -> mean 16 / 6 = 2.6667 (LfF is A: its mean is higher).
    assert aggregate["difference"] == pytest.approx(16 / 6)
    assert aggregate["difference_low"] <= aggregate["difference"] <= aggregate["difference_high"]
    assert 0.0 <= aggregate["p_a_better_low"] <= aggregate["p_a_better"] <= aggregate["p_a_better_high"] <= 1.0


def test_ranking_friedman_and_critical_difference(values):
    outcome = ranking(values, StatsOptions())
    table = outcome.table.set_index("method")
    # Ranks per cell (95 unbiased, 95 conflicting, 98 u, 98 c, 99 u, 99 c):
    #   LfF        1, 2, 1, 1, 1.5, 1.5 -> sum 8,  mean 1.3333
    #   Group DRO  2, 1, 2, 2, 1.5, 1.5 -> sum 10, mean 1.6667
    #   Vanilla    3, 3, 3, 3, 3,   3   -> sum 18, mean 3
    assert table["mean_rank"].to_dict() == pytest.approx({"LfF": 8 / 6, "Group DRO": 10 / 6, "Vanilla": 3.0})
    assert (table["cells"] == 6).all()
    # Vanilla is last in every bootstrap resample (at least 8 points below either other method).
    assert (table.loc["Vanilla", "rank_low"], table.loc["Vanilla", "rank_high"]) == (3.0, 3.0)
    result = outcome.autorank_result
    # Friedman: chi2 = 12 / (N k (k+1)) * sum R^2 - 3 N (k+1) = 12/72 * (64 + 100 + 324) - 72 = 9.3333,
    # tie-corrected by 1 - sum(t^3 - t) / (N k (k^2 - 1)) = 1 - 2 * 6 / 144 = 0.91667 -> 10.1818;
    # p = exp(-10.1818 / 2) (chi-square, 2 df) = 0.006154.
    assert result.omnibus == "friedman" and result.pvalue == pytest.approx(0.006154, rel=1e-3)
    # Nemenyi: CD = q(0.05, k=3) * sqrt(k (k+1) / (6 N)) = 2.343 * sqrt(12 / 36) = 1.3528.
    assert result.posthoc == "nemenyi" and result.cd == pytest.approx(1.3528, abs=1e-3)


def test_leading_comparison_per_cell(values):
    leading = leading_comparisons(values, StatsOptions(metrics=("unbiased",)))
    by_ratio = {row["condition"].split("ratio=")[1].split(",")[0]: row for _, row in leading.iterrows()}
    assert (by_ratio["95.0"]["method_a"], by_ratio["95.0"]["method_b"]) == ("LfF", "Group DRO")
    assert not by_ratio["95.0"]["resolved"]
    # At 98%: LfF 58-62 against Group DRO 48-52, difference 10 with Welch interval 10 +- 4.53: resolved.
    assert by_ratio["98.0"]["resolved"] and by_ratio["98.0"]["difference"] == pytest.approx(10.0)
    # With a precision target of +-20 points the 95% cell counts as resolved too (interval half-width ~10.6).
    wide = leading_comparisons(values, StatsOptions(metrics=("unbiased",), precision=20.0))
    assert wide["resolved"].all()
    # A named pair instead of best against runner-up.
    named = leading_comparisons(values, StatsOptions(metrics=("unbiased",), pair=("vanilla", "lff")))
    assert set(named["method_a"]) == {"Vanilla"} and (named["difference"] < 0).all()


def test_report_writes_the_statistics_files_and_the_page_shows_them(store, tmp_path):
    out = tmp_path / "report"
    markdown = build_report(str(store), out, ReportOptions(figures=False))
    for name in ("comparison_cmnist.csv", "comparison_cmnist.md", "comparison_cmnist.tex", "pairwise.csv"):
        assert (out / name).is_file(), name
    for name in ("ranking.csv", "resolution.csv", "critical_difference.png", "critical_difference.pdf"):
        assert (out / name).is_file(), name
    ranking_csv = pd.read_csv(out / "ranking.csv")
    assert list(ranking_csv.columns) == ["method", "cells", "mean_rank", "rank_low", "rank_high"]
    assert ranking_csv["method"].tolist() == ["LfF", "Group DRO", "Vanilla"]
    assert "Friedman test over 6 cells and 3 methods" in markdown
    assert "[47.03, 56.97]" in (out / "comparison_cmnist.md").read_text()
    page = (out / "index.html").read_text()
    assert 'id="statistics"' in page and 'id="comparison_cmnist"' in page and 'id="ranking"' in page
    assert "Critical-difference diagram" in page and "[47.03, 56.97]" in page
    assert not math.isnan(pd.read_csv(out / "table2.csv")["ci_low"].dropna().iloc[0])


def test_cli_selects_the_ranked_cells_and_methods(store, tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    out = tmp_path / "cli"
    args = [
        str(store),
        "--out",
        str(out),
        "--no-figures",
        "--rank-metrics",
        "unbiased",
        "--rank-methods",
        "lff,vanilla",
    ]
    assert main(args + ["--rank-conditions", "ratio=95.0,ratio=98.0"]) == 0
    ranking_csv = pd.read_csv(out / "ranking.csv")
    # Two cells (95% and 98%, unbiased), LfF first in both.
    assert ranking_csv.set_index("method")["mean_rank"].to_dict() == {"LfF": 1.0, "Vanilla": 2.0}
    assert (ranking_csv["cells"] == 2).all()
    assert "no Friedman test: 2 shared cell(s), autorank needs 5" in capsys.readouterr().out
    assert main([str(store), "--out", str(out), "--rank-metrics", "accuracy"]) == 2
    assert "unknown --rank-metrics ['accuracy']; choose from unbiased, aligned, conflicting, worst_group" in (
        capsys.readouterr().err
    )
