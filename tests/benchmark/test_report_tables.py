"""The report end to end on a full synthetic store: every table in every format, LaTeX
well-formedness, the paper values, bold on the best, Table 1's relative drop, BAR classes and
counts."""

from pathlib import Path

import pandas as pd
import pytest
from report_kit import REPO, _controlled, _value, check_latex, syn

from debiasbench.benchmark.paper.axes import CONTROLLED, MALIGNANT
from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

RATIOS = (95.0, 98.0, 99.0, 99.5)
BAR_TRAIN = {"climbing": 326, "diving": 520, "fishing": 163, "racing": 336, "throwing": 317, "pole vaulting": 279}
BAR_TEST = {"climbing": 105, "diving": 159, "fishing": 42, "racing": 132, "throwing": 85, "pole vaulting": 131}


def make_full_store(root: Path) -> ResultStore:
    """One seed of every trial Tables 1-6 and 8-10 need (deduplicated like the paper grid)."""
    store = ResultStore(root)
    store.ensure_writable()
    configs = {}

    def add(config):
        configs[syn.key_of(config)] = config

    for ds in CONTROLLED:
        for target in MALIGNANT[ds]:
            for unbiased in (False, True):
                add(syn.trial(ds, "vanilla", _controlled(99.0, 4, target, unbiased)))
        cells = [(r, 4) for r in RATIOS] + [(99.0, d) for d in (1, 2, 3)]
        for ratio, difficulty in cells:
            for method in ("vanilla", "lff", "hex", "group_dro"):
                add(syn.trial(ds, method, _controlled(ratio, difficulty, MALIGNANT[ds][0])))
            for variant in "TRCS":
                add(
                    syn.trial(
                        ds, "repair", _controlled(ratio, difficulty, MALIGNANT[ds][0]), hparams={"variant": variant}
                    )
                )
        add(syn.trial(ds, "lff_ce", _controlled(99.0, 4, MALIGNANT[ds][0])))
    for ratio in RATIOS:
        add(syn.trial("cmnist", "lff_rubi", _controlled(ratio, 4, "digit")))
    for target in ("Blond_Hair", "Heavy_Makeup"):
        for method in ("vanilla", "lff", "group_dro"):
            add(syn.trial("celeba", method, {"target": target, "bias": "Male"}))
    for key, config in configs.items():
        syn.simple(store, config, (_value(key, "u"), _value(key, "c")))
    for method in ("vanilla", "rebias", "lff"):
        syn.bar_trial(
            store,
            method,
            0,
            {c: _value(method, c) for c in ("climbing", "diving", "fishing", "racing", "throwing", "vaulting")},
        )
    return store


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("full_store")
    make_full_store(root)
    return root


@pytest.fixture(scope="module")
def bar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    syn.write_bar_metadata(root, BAR_TRAIN, BAR_TEST)
    return root


@pytest.fixture(scope="module")
def full_report(full_store, bar_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("full_report")
    markdown = build_report(str(full_store), out, ReportOptions(data_root=str(bar_root), figures=False))
    return out, markdown


def test_every_table_renders_in_all_three_formats(full_report):
    out, markdown = full_report
    for number in range(1, 11):
        tidy = pd.read_csv(out / f"table{number}.csv")
        cells = tidy[tidy["kind"] != "repair_variant"]
        assert len(cells) and (cells["n"] > 0).all(), f"table {number} has missing cells"
        md = (out / f"table{number}.md").read_text()
        assert md.startswith(f"### Table {number}") and "—" not in md and "Missing cells" not in md
        tex = (out / f"table{number}.tex").read_text()
        header = [line for line in tex.splitlines() if line.startswith(r"\begin{tabular}")][0]
        check_latex(tex, len(header.split("{")[2].rstrip("}")))
        assert "Selection protocol: paper" in tex or number == 7
    assert "Not filled" not in markdown


def test_paper_values_beside_every_paper_cell(full_report):
    out, _ = full_report
    for number in (2, 3, 4, 5, 6, 8, 9, 10):
        tidy = pd.read_csv(out / f"table{number}.csv")
        cells = tidy[tidy["kind"] == "cell"]
        assert cells["paper_mean"].notna().all(), number
        assert (cells["difference"] - (cells["mean"] - cells["paper_mean"])).abs().max() < 1e-9
    table1 = pd.read_csv(out / "table1.csv")
    assert table1["paper_mean"].notna().all()


def test_no_cell_is_truncated_and_the_best_is_bold(full_report):
    out, _ = full_report
    for number in (2, 5, 10):
        tidy = pd.read_csv(out / f"table{number}.csv")
        tex = (out / f"table{number}.tex").read_text()
        for mean in tidy[tidy["kind"] == "cell"]["mean"]:
            assert f"{mean:.2f}" in tex
        cells = tidy[tidy["kind"] == "cell"]
        for (row_id, metric), group in cells.groupby(["row_id", "metric"]):
            best = f"{group['mean'].round(2).max():.2f}"
            assert rf"\textbf{{{best}}}" in tex, (number, row_id, metric)
    tex2 = (out / "table2.tex").read_text()
    assert tex2.count(r"\textbf{") == 12  # one best per row (3 datasets x 4 ratios), values are distinct


def test_table1_relative_drop(full_report):
    out, _ = full_report
    tidy = pd.read_csv(out / "table1.csv", keep_default_na=False, na_values=[""])
    for _row_id, group in tidy.groupby("row_id"):
        by_column = group.set_index("column")["mean"]
        expected = 100 * (by_column["biased_train"] - by_column["unbiased_train"]) / by_column["unbiased_train"]
        assert by_column["relative_drop"] == pytest.approx(expected)
    md = (out / "table1.md").read_text()
    assert "| Colored MNIST | Color | Digit |" in md and "%" in md


def test_table6_and_7_bar(full_report, bar_root):
    out, _ = full_report
    table6 = pd.read_csv(out / "table6.csv")
    vanilla = table6[table6["row"] == "vanilla"].set_index("column")["mean"]
    assert vanilla["diving"] == pytest.approx(100 * _value("vanilla", "diving"))
    classes = [_value("vanilla", c) for c in ("climbing", "diving", "fishing", "racing", "throwing", "vaulting")]
    assert vanilla["average"] == pytest.approx(100 * sum(classes) / 6)
    table7 = pd.read_csv(out / "table7.csv")
    counts = table7.set_index(["row", "column"])["mean"]
    assert counts[("train", "vaulting")] == 279 and counts[("train", "total")] == 1941
    assert counts[("test", "total")] == 654 and (table7["difference"] == 0).all()
    assert r"\textbf" not in (out / "table7.tex").read_text()


@pytest.mark.real_data
def test_table7_from_the_real_bar_metadata():
    root = REPO.parent / "shared" / "data"
    if not (root / "BAR" / "metadata.json").is_file():
        pytest.skip("real BAR metadata not available")
    tidy = build_table(7, None, str(root)).tidy
    counts = tidy.pivot(index="row", columns="column", values="mean")
    names = ["climbing", "diving", "fishing", "racing", "throwing", "vaulting", "total"]
    assert counts.loc["train", names].tolist() == [326, 520, 163, 336, 317, 279, 1941]
    assert counts.loc["test", names].tolist() == [105, 159, 42, 132, 85, 131, 654]


def test_bar_class_indices_are_named_by_their_counts(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    alphabetical = ("climbing", "diving", "fishing", "vaulting", "racing", "throwing")  # "pole vaulting" sorts 4th
    accuracies = {"climbing": 0.1, "diving": 0.2, "fishing": 0.3, "racing": 0.4, "throwing": 0.5, "vaulting": 0.6}
    syn.bar_trial(store, "lff", 0, accuracies, order=alphabetical)
    sel = select(load_store(store.root))
    tidy = build_table(6, sel).tidy
    row = tidy[tidy["row"] == "lff"].set_index("column")["mean"]
    assert row["vaulting"] == pytest.approx(60.0) and row["racing"] == pytest.approx(40.0)
    assert not build_table(6, sel).notes
