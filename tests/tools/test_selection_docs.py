"""tools/selection_docs: the selection tables of a document are rewritten from a store's
validation-protocol trials between two markers, the prose around them untouched; --check says
whether they differ; a store without such trials, or a document without the markers, is one line
naming the fix (exit 2) and nothing is written."""

import importlib.util
from pathlib import Path

import pytest

from debiasbench.benchmark.store import ResultStore
from debiasbench.tools.selection_docs import BEGIN, END, MarkerError, main, replace_block, selection_tables

_spec = importlib.util.spec_from_file_location(
    "report_synthetic", Path(__file__).parents[1] / "fixtures" / "report_golden" / "synthetic.py"
)
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)

PARAMS = {"ratio": 99.5, "difficulty": 4, "target": "digit", "unbiased_train": False}


def _store(root, protocol="validation"):
    store = ResultStore(root)
    store.ensure_writable()
    # Final-epoch test accuracy 0.60 / 0.65 (+0.01 per seed): Group DRO 61.00, LfF 66.00 on average.
    for method, final in (("group_dro", 0.60), ("lff", 0.65)):
        for seed in (0, 1, 2):
            extra = {"validation_fraction": 0.1} if protocol == "validation" else {}
            config = syn.trial("cmnist", method, PARAMS, seed, protocol=protocol, **extra)
            score = final + 0.01 * seed
            syn.simple(store, config, (score, score), first=(0.5, 0.5), valid=[(0.9, 0.1), (0.8, 0.3)])
    return str(root)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("validation"))


def test_the_tables_are_the_reports_cells_without_its_heading(store):
    tables = selection_tables(store)
    lines = tables.splitlines()
    assert lines[0] == "cmnist:"  # one cell: the report names no setting
    assert lines[2].startswith("| method | final epoch |") and "test oracle (upper bound)" in lines[2]
    # LfF first at the final epoch: 66.00, std 1 over three seeds -> t(0.975, 2) / sqrt(3) = 2.48.
    # Each method with its supervision: LfF none (○), Group DRO bias labels (●).
    assert lines[4].startswith("| LfF ○ | 66.00 [63.52, 68.48] (#1) |")
    assert lines[5].startswith("| Group DRO ● | 61.00 [58.52, 63.48] (#2) |")
    assert lines[-1].startswith("| tau with final epoch | — |")
    assert "###" not in tables and "TEST ORACLE" not in tables  # the caption stays with the report


def test_the_block_between_the_markers_is_replaced_and_the_prose_kept():
    document = f"before\n{BEGIN}\nold table\n{END}\nafter\n"
    assert replace_block(document, "NEW") == f"before\n{BEGIN}\n\nNEW\n\n{END}\nafter\n"


@pytest.mark.parametrize("document", ["no markers", f"{END}\nx\n{BEGIN}\n", f"{BEGIN}\nonly the start\n"])
def test_a_document_without_both_markers_in_order_is_refused(document):
    with pytest.raises(MarkerError, match="put a line with"):
        replace_block(document, "NEW")


def test_check_rewrite_check(store, tmp_path, capsys):
    doc = tmp_path / "results.md"
    doc.write_text(f"# Results\n\nprose\n\n{BEGIN}\n{END}\n\nmore prose\n", encoding="utf-8")
    assert main([store, str(doc), "--check"]) == 1
    assert BEGIN + "\n" + END in doc.read_text()  # --check wrote nothing
    assert main([store, str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nprose\n\n") and text.endswith(f"{END}\n\nmore prose\n")
    assert "| LfF ○ | 66.00" in text
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # written through a rename, nothing left over
    assert main([store, str(doc), "--check"]) == 0
    assert "are the store's" in capsys.readouterr().out


def test_missing_store_markers_or_trials_are_one_line_and_exit_2(store, tmp_path, capsys):
    doc = tmp_path / "results.md"
    doc.write_text("no markers\n", encoding="utf-8")
    assert main([store, str(doc)]) == 2
    assert "put a line with" in capsys.readouterr().out and doc.read_text() == "no markers\n"
    doc.write_text(f"{BEGIN}\n{END}\n", encoding="utf-8")
    assert main([str(tmp_path / "nowhere"), str(doc)]) == 2
    assert "no result store at" in capsys.readouterr().out
    paper_only = _store(tmp_path / "paper", protocol="paper")
    assert main([paper_only, str(doc)]) == 2
    assert "--protocol validation" in capsys.readouterr().out and doc.read_text() == f"{BEGIN}\n{END}\n"
