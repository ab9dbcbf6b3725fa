"""The report on small synthetic stores: settings that must not be averaged, new methods and
attribute pairs, the per-group view, the CLI and write_report, selector labels, captions and
method diagnostics."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_kit import REPO, _controlled, check_latex, syn

from debiasbench.benchmark.report.build import ReportOptions, build_report, write_report
from debiasbench.benchmark.report.cli import main
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.render import render_latex
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore


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
        "import sys, debiasbench.benchmark.report, debiasbench.benchmark.report.tables, "
        "debiasbench.benchmark.report.figures, debiasbench.benchmark.report.selectors; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_caption_names_the_hex_nglcm_input_that_produced_the_numbers(tmp_path):
    from debiasbench.benchmark.report.render import caption

    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    p = _controlled(95.0, 4, "digit")
    syn.simple(store, syn.trial("cmnist", "hex", p, 0, {"nglcm_input": "per_channel"}), (0.5, 0.4))
    sel = select(load_store(store.root))
    assert "HEX: NGLCM input per_channel." in caption(build_table(2, sel), sel)
    assert "NGLCM" not in caption(build_table(10, sel), sel)  # no HEX trial in Table 10


def test_method_diagnostics_are_written_and_summarised_at_the_last_epoch(tmp_path):
    from debiasbench.benchmark.store import TrialRecord

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
