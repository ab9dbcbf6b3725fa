"""A store holding only own-data trials (image_table, no bias labels) gets a comparison table in
every format and on the page, with the user's class names, escaped, also in the group view; and a
table cell whose trials depart from the paper's protocol says so and is not compared with the paper."""

import json

import pandas as pd
import pytest
from report_kit import check_latex, syn

from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.cli import main
from debiasbench.benchmark.store import ResultStore

# Class names a user might write: Markdown, HTML and LaTeX syntax, and matplotlib's mathtext.
CLASSES = ["<b>cat|1</b>", "dog $x$", "100%_owl"]  # sorted order: "100%_owl", "<b>cat|1</b>", "dog $x$"
ACCURACY = {"vanilla": [(0.90, 0.50, 0.70), (0.80, 0.60, 0.70)], "lff": [(0.85, 0.75, 0.65), (0.95, 0.65, 0.75)]}


@pytest.fixture(scope="module")
def own_store(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder = data / "my_images"
    folder.mkdir()
    rows = [{"path": f"img{i}.png", "label": CLASSES[i % 3], "split": "train" if i < 9 else "test"} for i in range(12)]
    pd.DataFrame(rows).to_csv(folder / "attributes.csv", index=False)
    root = tmp_path_factory.mktemp("own_store")
    store = ResultStore(root)
    store.ensure_writable()
    params = {"root": "my_images", "table": "attributes.csv", "target": "label", "bias": None, "split_column": "split"}
    for method, seeds in ACCURACY.items():
        for seed, accuracies in enumerate(seeds):
            config = syn.trial("image_table", method, params, seed, epochs=1)
            rows = syn.Rows()
            role = config["predictor_role"]
            for index, value in enumerate(accuracies):  # per class, in the dataset's (sorted) class order
                rows.add(1, role, "test", "class", "accuracy", value, target=index)
                rows.add(1, role, "test", "class", "count", 10, target=index)
            rows.add(1, role, "test", "all", "accuracy", sum(accuracies) / 3)
            rows.add(1, role, "test", "all", "sample_accuracy", sum(accuracies) / 3)
            rows.add(1, role, "test", "all", "worst_group_accuracy", min(accuracies))
            syn.write(store, config, rows)
    return root, data


def test_own_data_store_gets_a_comparison_table_in_every_format(own_store, tmp_path):
    root, data = own_store
    out = tmp_path / "report"
    markdown = build_report(str(root), out, ReportOptions(data_root=str(data), figures=False))
    assert "no tables" not in markdown and "comparison_image_table.{csv,tex,md}" in markdown
    tidy = pd.read_csv(out / "comparison_image_table.csv", keep_default_na=False)
    cells = tidy[tidy["kind"] == "cell"]
    # Vanilla's per-class accuracy of "100%_owl" (class 0): seeds 90 and 80 -> 85 ± 7.07, n = 2.
    owl = cells[(cells["method"] == "vanilla") & (cells["column"] == "100%_owl")].iloc[0]
    assert float(owl["mean"]) == pytest.approx(85.0) and int(owl["n"]) == 2
    # t(0.975, 1) = 12.706, sem = 7.071 / sqrt(2) = 5 -> 85 +- 63.53.
    assert (float(owl["ci_low"]), float(owl["ci_high"])) == pytest.approx((21.47, 148.53), abs=0.01)
    assert set(cells["column"]) == {"unbiased", *CLASSES}  # no bias labels: per class instead
    md = (out / "comparison_image_table.md").read_text()
    assert r"\<b\>cat\|1\</b\>" in md and r"dog \$x\$" in md  # Markdown-escaped headers
    tex = (out / "comparison_image_table.tex").read_text()
    assert r"100\%\_owl" in tex and r"\textless" in tex and "<b>" not in tex
    check_latex(tex, 5)  # compile-ready: Method + Unbiased + three classes
    page = (out / "index.html").read_text()
    assert "&lt;b&gt;cat|1&lt;/b&gt;" in page and "<b>cat" not in page  # HTML-escaped
    assert 'id="comparison_image_table"' in page


def test_group_view_prints_class_names(own_store, tmp_path, capsys):
    root, data = own_store
    key = sorted(p.stem for p in (root / "trials").glob("*.parquet"))[0]
    assert main([str(root), "--groups", key, "--out", str(tmp_path), "--data-root", str(data)]) == 0
    printed = capsys.readouterr().out
    assert r"\<b\>cat\|1\</b\>" in printed and r"100%\_owl" in printed and r"dog \$x\$" in printed
    matrix = pd.read_csv(next(tmp_path.glob("groups_*_matrix.csv")), index_col=0)
    assert list(matrix.index) == sorted(CLASSES)


def test_off_protocol_cells_say_so_and_are_not_flagged(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    accuracies = {"climbing": 0.5, "diving": 0.4, "fishing": 0.3, "racing": 0.6, "throwing": 0.2, "vaulting": 0.7}
    for seed in (0, 1):
        config = syn.trial("bar", "vanilla", {"pretrained": False, "resolution": 64}, seed=seed, epochs=1)
        rows = syn.Rows()
        for index, name in enumerate(accuracies):
            rows.add(1, "main", "test", "class", "accuracy", accuracies[name] + 0.01 * seed, target=index)
        rows.add(1, "main", "test", "all", "accuracy", 0.45 + 0.01 * seed)
        rows.add(1, "main", "test", "all", "worst_group_accuracy", 0.2)
        syn.write(store, config, rows)
    out = tmp_path / "report"
    build_report(str(store.root), out, ReportOptions(tables=[6], figures=False))
    md = (out / "table6.md").read_text()
    assert "NOT THE PAPER'S PROTOCOL: epochs=1 (paper: 90); " in md
    assert "resolution=64 (paper: 224)" in md and "pretrained=False (paper: True)" in md
    assert "not comparable" in md and "Δ" not in md.split("\n| ")[-1]
    tidy = pd.read_csv(out / "table6.csv")
    cells = tidy[(tidy["kind"] == "cell") & (tidy["n"] > 0)]
    assert cells["paper_mean"].notna().all() and cells["difference"].isna().all()
    assert "beyond-2se" not in (out / "index.html").read_text().split("<tbody>", 1)[1].split("</table>", 1)[0]
    assert "off the paper&#39;s protocol" in (out / "index.html").read_text()
    assert json.loads(json.dumps(list(cells["departures"])))[0].startswith("epochs=1")


@pytest.mark.parametrize("recorded", [True, False])
def test_a_method_beyond_the_paper_off_its_defaults_says_so(tmp_path, recorded):
    """DisEnt at its paper's learning rate: the extended table names the hyper-parameter set off the
    method's recorded defaults; a trial stored before defaults were recorded claims nothing."""
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    defaults = {"lr": None, "q": 0.7}
    extra = {"method_defaults": defaults} if recorded else {}
    for seed in (0, 1):
        config = syn.trial(
            "cmnist", "disent", {"ratio": 99.5, "difficulty": 4}, seed=seed, hparams={"lr": 0.01, "q": 0.7}, **extra
        )
        rows = syn.Rows()
        rows.evaluation(100, "main", "test", 0.6 + 0.01 * seed, conflicting=0.55)
        syn.write(store, config, rows)
    out = tmp_path / "report"
    build_report(str(store.root), out, ReportOptions(tables=[11], figures=False))
    md = (out / "table_extended.md").read_text()
    assert ("NOT THE PAPER'S PROTOCOL: disent.lr=0.01 (default: None)." in md) is recorded
    assert "q=0.7" not in md  # at its default: not a departure
