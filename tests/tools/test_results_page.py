"""tools/results_page: the docs' results pages, built from the shipped reference sets; several stores
read as one fill a table whose columns come from different sets (the extended comparison)."""

from pathlib import Path

import pytest

from debiasbench.tools.results_page import main, results_markdown

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


def _rows(page: str, metric: str, column: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("| 95.0 |") and f"| {metric} | {column} |" in line]


def test_two_stores_fill_the_extended_table_from_both():
    stores = [str(REFERENCE / "cmnist"), str(REFERENCE / "cmnist_extended")]
    page = results_markdown(stores, "cmnist", "CMD", tables=[11])
    assert "## Extended table" in page and "## Table 2" not in page
    # Vanilla comes from the paper set (3 seeds, beside the paper's 77.63), JTT from the extended set.
    (vanilla,) = _rows(page, "unbiased", "Vanilla")
    assert "76.34 ± 2.24" in vanilla and "77.63 ± 0.44" in vanilla
    (jtt,) = _rows(page, "unbiased", "jtt")
    assert jtt.split("|")[4].strip() not in ("—", "")
    assert "`CMD`" in page and "cmnist_extended" in page


def test_one_store_gives_only_its_own_columns():
    page = results_markdown(str(REFERENCE / "cmnist_extended"), "cmnist", "CMD", tables=[11])
    (vanilla,) = _rows(page, "unbiased", "Vanilla")
    assert vanilla.split("|")[4].strip() == "—"


def test_a_malformed_table_list_is_an_error_naming_the_form(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(REFERENCE / "cmnist"), "--tables", "two", "--out", str(tmp_path / "page.md")])
    assert "e.g. 2,3 or 11" in capsys.readouterr().err
    assert not (tmp_path / "page.md").exists()


def test_explanations_annotate_every_flagged_cell_and_name_the_unexplained(tmp_path):
    why = tmp_path / "why.csv"
    why.write_text(
        "table,row,column,verdict,link,summary\n*,*,group_dro,explained,results.md#g,early stopping\n",
        encoding="utf-8",
    )
    out = tmp_path / "page.md"
    assert main([str(REFERENCE / "cmnist"), "--tables", "2", "--explanations", str(why), "--out", str(out)]) == 0
    flagged = out.read_text().split("## Cells beyond 2 standard errors of the paper")[1].split("## Cells not")[0]
    items = [line for line in flagged.splitlines() if line.startswith("- ")]
    dro = [line for line in items if "/ Group DRO:" in line]
    assert dro and all(line.endswith("— explained: early stopping ([details](results.md#g))") for line in dro)
    others = [line for line in items if line not in dro]
    assert others and all(line.endswith("— **no explanation recorded**") for line in others)
    assert f"{len(items)} cells: {len(dro)} explained, {len(others)} no explanation recorded." in flagged
    assert f"--explanations {why}" in out.read_text()


def test_a_bad_explanations_file_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    why = tmp_path / "why.csv"
    why.write_text("table,row,column,verdict,link,summary\n2,99,repair,maybe,a.md#x,s\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main([str(REFERENCE / "cmnist"), "--explanations", str(why), "--out", str(tmp_path / "page.md")])
    assert f"{why}:2: verdict must be one of" in capsys.readouterr().err
    assert not (tmp_path / "page.md").exists()
