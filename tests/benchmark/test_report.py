"""The report end to end on synthetic stores: every table in every format, LaTeX well-formedness,
bold on the best, Table 1's relative drop, BAR classes and counts, settings that must not be
averaged, new methods and attribute pairs, the per-group view, the CLI and write_report."""

import hashlib
import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.paper.axes import CONTROLLED, MALIGNANT
from benchmark.report.build import ReportOptions, build_report, write_report
from benchmark.report.cli import main
from benchmark.report.loading import load_store
from benchmark.report.render import render_latex
from benchmark.report.selection import select
from benchmark.report.tables import build_table
from benchmark.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", FIXTURES / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)

RATIOS = (95.0, 98.0, 99.0, 99.5)
BAR_TRAIN = {"climbing": 326, "diving": 520, "fishing": 163, "racing": 336, "throwing": 317, "pole vaulting": 279}
BAR_TEST = {"climbing": 105, "diving": 159, "fishing": 42, "racing": 132, "throwing": 85, "pole vaulting": 131}


def _value(*parts) -> float:
    digest = int(hashlib.md5(repr(parts).encode()).hexdigest()[:6], 16)
    return round(0.2 + 0.7 * digest / 0xFFFFFF, 4)


def _controlled(ratio, difficulty, target, unbiased=False):
    return {"ratio": ratio, "difficulty": difficulty, "target": target, "unbiased_train": unbiased}


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


def check_latex(tex: str, n_columns: int) -> None:
    """Compile-ready structure: balanced braces and math, escaped specials, matching environments,
    the right number of cells per row."""
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    depth = 0
    for i, char in enumerate(body):
        escaped = i > 0 and body[i - 1] == "\\"
        if char == "{" and not escaped:
            depth += 1
        elif char == "}" and not escaped:
            depth -= 1
            assert depth >= 0, f"unbalanced '}}' at {i}: {body[max(0, i - 40) : i + 1]!r}"
    assert depth == 0, "unbalanced braces"
    assert not re.search(r"(?<!\\)_", body), "unescaped underscore"
    assert not re.search(r"(?<!\\)[%#]", body), "unescaped % or #"
    assert len(re.findall(r"(?<!\\)\$", body)) % 2 == 0, "unbalanced $"
    for env in ("table", "tabular"):
        assert body.count(rf"\begin{{{env}}}") == body.count(rf"\end{{{env}}}") == 1
    assert "..." not in body and "…" not in body, "truncated text"
    tabular = body.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    for line in tabular.splitlines():
        if line.strip() and line.strip() != r"\midrule":
            assert line.endswith(r"\\"), line
            assert len(re.findall(r"(?<!\\)&", line)) == n_columns - 1, line


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


def test_settings_and_hyperparameter_variants_are_never_averaged(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    p = _controlled(95.0, 4, "digit")
    syn.simple(store, syn.trial("cmnist", "vanilla", p, 0, epochs=2), (0.5, 0.4))
    syn.simple(store, syn.trial("cmnist", "vanilla", p, 0, epochs=3), (0.7, 0.6))
    syn.simple(store, syn.trial("cmnist", "lff", p, 0, {"q": 0.5}, epochs=2), (0.8, 0.8))
    syn.simple(store, syn.trial("cmnist", "lff", p, 0, {"q": 0.7}, epochs=2), (0.9, 0.9))
    table = build_table(2, select(load_store(store.root)))
    filled = table.tidy[table.tidy["n"] > 0]
    assert sorted(zip(filled["setting"], filled["method_variant"], filled["mean"].round(1))) == [
        ("epochs=2", "", 50.0),
        ("epochs=2", "q=0.5", 80.0),
        ("epochs=2", "q=0.7", 90.0),
        ("epochs=3", "", 70.0),
    ]
    assert "Setting" in table.row_headers
    assert [c.label for c in table.columns][:3] == ["Vanilla", "LfF [q=0.5]", "LfF [q=0.7]"]
    check_latex(render_latex(table, None), len(table.row_headers) + len(table.columns))


def test_new_methods_and_attribute_pairs_get_their_own_columns_and_rows(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    config = syn.trial("cmnist", "my_method", _controlled(95.0, 4, "digit"))
    config["supervision"] = "bias-tailored"
    syn.simple(store, config, (0.6, 0.5))
    syn.simple(store, syn.trial("celeba", "lff", {"target": "Wearing_Lipstick", "bias": "Heavy_Makeup"}), (0.7, 0.6))
    sel = select(load_store(store.root))
    table2 = build_table(2, sel)
    assert table2.columns[-1].label == "my_method" and table2.columns[-1].marker == "◐"
    assert r"my\_method" in render_latex(table2, sel)
    table5 = build_table(5, sel)
    assert table5.rows[-1].labels == ("Wearing_Lipstick", "HeavyMakeup")
    assert r"Wearing\_Lipstick" in render_latex(table5, sel)


def _group_store(root: Path) -> tuple[ResultStore, str]:
    store = ResultStore(root)
    store.ensure_writable()
    config = syn.trial("cmnist", "lff", _controlled(99.0, 4, "digit"), epochs=2)
    rows = syn.Rows()
    for epoch in (1, 2):
        for role in ("debiased", "biased"):
            rows.evaluation(epoch, role, "test", 0.5, 0.4)
            for t in range(3):
                for b in range(3):
                    accuracy = 0.9 if t == b else (0.1 * t + 0.01 * b + (0.5 if role == "debiased" else 0))
                    rows.add(epoch, role, "test", "group", "accuracy", accuracy if epoch == 2 else 0.0, t, b)
                    rows.add(epoch, role, "test", "group", "count", 10 + t, t, b)
    return store, syn.write(store, config, rows)


def test_group_view_of_a_trial_and_of_a_cell(tmp_path):
    store, key = _group_store(tmp_path / "store")
    out = tmp_path / "groups"
    assert main([str(store.root), "--groups", key[:8], "--out", str(out)]) == 0
    matrix = pd.read_csv(out / f"groups_trial_{key}_matrix.csv", index_col=0)
    assert matrix.loc[2, "1"] == pytest.approx(100 * (0.2 + 0.01 + 0.5))  # debiased role, final epoch
    assert matrix.loc[1, "1"] == pytest.approx(90.0)
    assert (out / f"groups_trial_{key}.png").stat().st_size > 0
    text = (out / f"groups_trial_{key}.md").read_text()
    assert "| unbiased | 50.00 |" in text and "Worst groups" in text and "(0, 1): 51.0 on 10" in text
    assert main([str(store.root), "--groups", key, "--role", "biased", "--out", str(out)]) == 0
    biased = pd.read_csv(out / f"groups_trial_{key}_matrix.csv", index_col=0)
    assert biased.loc[2, "1"] == pytest.approx(21.0)
    assert main([str(store.root), "--groups", "table=2,dataset=cmnist,row=99.0,column=lff", "--out", str(out)]) == 0
    assert (out / "groups_cell_2_cmnist_99.0_lff_matrix.csv").is_file()


def test_cli_errors_name_the_fix(tmp_path, capsys):
    store, _ = _group_store(tmp_path / "store")
    assert main([str(store.root), "--groups", "nosuchkey", "--out", str(tmp_path / "o")]) == 2
    assert "matches no completed trial" in capsys.readouterr().err
    assert main([str(store.root), "--selector", "val_accuracy", "--no-figures", "--out", str(tmp_path / "o")]) == 2
    assert "--protocol validation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(store.root), "--tables", "12"])


def _mean(table, column, dataset="cmnist", row="95.0"):
    tidy = table.tidy
    return tidy[(tidy["dataset"] == dataset) & (tidy["row"] == row) & (tidy["column"] == column)]["mean"].item()


def test_validation_selectors_and_the_test_oracle_are_labelled(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    p = _controlled(95.0, 4, "digit")
    syn.simple(
        store,
        syn.trial("cmnist", "vanilla", p, 0, protocol="validation"),
        (0.5, 0.4),
        first=(0.6, 0.5),
        valid=[(0.5, 0.9), (0.7, 0.1)],
    )
    syn.simple(
        store,
        syn.trial("cmnist", "lff", p, 0, protocol="validation"),
        (0.8, 0.7),
        first=(0.2, 0.1),
        valid=[(0.5, 0.9), (0.7, 0.1)],
    )
    data = load_store(store.root)
    worst = build_table(2, select(data, "validation", "val_worst_group"))
    assert _mean(worst, "vanilla") == pytest.approx(60.0)  # epoch 1
    sel = select(data, "validation", "val_worst_group")
    tex = render_latex(worst, sel)
    assert r"\SupNone{}\ensuremath{^\ddagger}" in tex and "validation bias labels" in tex
    oracle_sel = select(data, "validation", "test_oracle")
    oracle = build_table(2, oracle_sel)
    assert _mean(oracle, "lff") == pytest.approx(80.0) and _mean(oracle, "vanilla") == pytest.approx(60.0)
    assert "TEST ORACLE" in render_latex(oracle, oracle_sel)
    # A store holding only validation-protocol trials is reported under that protocol by default.
    markdown = write_report(str(store.root), tmp_path / "report", figures=False)
    assert "Selection protocol: validation; epoch selector: last" in markdown


def test_write_report_is_run_all_s_entry_point(tmp_path):
    store, _ = _group_store(tmp_path / "store")
    markdown = write_report(str(store.root), None, figures=False)
    assert "### Table 2" in markdown
    assert (Path(store.root) / "report" / "table2.tex").is_file()
    assert "### Table 2" in write_report(str(store.root), tmp_path / "elsewhere", figures=False)
    assert (tmp_path / "elsewhere" / "report.md").is_file()


def test_empty_store_and_explicit_tables(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    markdown = build_report(str(store.root), tmp_path / "out", ReportOptions(figures=False))
    assert "0 completed trial(s)" in markdown and not list((tmp_path / "out").glob("table*"))
    markdown = build_report(str(store.root), tmp_path / "out", ReportOptions(tables=[4], figures=False))
    assert "No data" in (tmp_path / "out" / "table4.md").read_text()
    tidy = pd.read_csv(tmp_path / "out" / "table4.csv")
    assert len(tidy) == 18 and (tidy["n"] == 0).all()  # 3 datasets x 2 metrics x 3 methods, none dropped
    assert math.isnan(tidy["mean"].iloc[0])


def test_the_report_imports_no_torch():
    code = (
        "import sys, benchmark.report, benchmark.report.tables, benchmark.report.figures, benchmark.report.selectors; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_caption_names_the_hex_nglcm_input_that_produced_the_numbers(tmp_path):
    from benchmark.report.render import caption

    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    p = _controlled(95.0, 4, "digit")
    syn.simple(store, syn.trial("cmnist", "hex", p, 0, {"nglcm_input": "per_channel"}), (0.5, 0.4))
    sel = select(load_store(store.root))
    assert "HEX: NGLCM input per_channel." in caption(build_table(2, sel), sel)
    assert "NGLCM" not in caption(build_table(10, sel), sel)  # no HEX trial in Table 10


def test_method_diagnostics_are_written_and_summarised_at_the_last_epoch(tmp_path):
    from benchmark.store import TrialRecord

    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    trial = {
        "dataset": "cmnist",
        "method": "group_dro",
        "supervision": "bias-labels",
        "predictor_role": "main",
        "dataset_params": _controlled(95.0, 4, "digit"),
        "method_hparams": {},
        "trial_seed": 0,
        "data_seed": 0,
        "hparams_seed": 0,
        "epochs": 2,
        "protocol": "paper",
    }
    rows = {
        "epoch": [1, 2, 1],
        "role": ["-"] * 3,
        "split": ["train"] * 3,
        "subset": ["method"] * 3,
        "target": [None] * 3,
        "bias": [None] * 3,
        "metric": ["q_max", "q_max", "accuracy"],
        "value": [0.1, 0.3, 0.5],
    }
    store.write_trial(TrialRecord(trial=trial, key="k", status="completed", metrics=rows))
    markdown = build_report(str(tmp_path / "store"), tmp_path / "out", ReportOptions(figures=False))
    written = pd.read_csv(tmp_path / "out" / "diagnostics.csv")
    assert written[["epoch", "metric", "value"]].values.tolist() == [
        [1, "accuracy", 0.5],
        [1, "q_max", 0.1],
        [2, "q_max", 0.3],
    ]
    assert "| q_max | 0.3 | 1 |" in markdown and "| accuracy |" not in markdown  # last epoch (2) only
