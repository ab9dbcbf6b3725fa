"""Fault tests for a store's trials/ folder (ISSUE 29, items 1, 5 and 9): two files holding the same
trial key (a hand copy, `cp` instead of `store merge`), a directory or a dangling symlink named like
a trial file, and `store merge` into a destination it cannot write."""

import shutil
import types
import warnings
from pathlib import Path

import pytest
from report_kit import syn as synthetic

from debiasbench.benchmark.experiments.planning import plan
from debiasbench.benchmark.store import ResultStore, StoreError


def _store(root: Path) -> tuple[ResultStore, str]:
    store = ResultStore(root)
    store.ensure_writable()
    key = synthetic.simple(store, synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4}), (0.3, 0.25))
    return store, key


def _differing_copy(tmp_path: Path, store: ResultStore, key: str) -> Path:
    """A file holding `key` with other results (from another run), copied in by hand."""
    other = ResultStore(tmp_path / "other")
    other.ensure_writable()
    config = synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4})
    synthetic.simple(other, config, (0.6, 0.55), key=key)
    copy = Path(store.root) / "trials" / "copy-from-laptop.parquet"
    shutil.copy(tmp_path / "other" / "trials" / f"{key}.parquet", copy)
    return copy


def _messages(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, " ".join(str(w.message) for w in caught)


# -- item 1: one trial key, two files ---------------------------------------------------------------------


def test_identical_copies_of_a_trial_are_read_once_with_a_warning_naming_both(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    store, key = _store(tmp_path / "s")
    original = Path(store.root) / "trials" / f"{key}.parquet"
    copy = original.with_name(f"{key} (copy).parquet")
    shutil.copy(original, copy)  # byte-identical

    code, said = _messages(lambda: main([str(store.root), "--tables", "2", "--no-figures"]))
    assert code == 0, capsys.readouterr().err  # was: pandas InvalidIndexError, naming no file
    assert f"trial {key} is held by two identical files, {original} and {copy}; reading {original}" in said
    assert "1 completed trial(s) evaluated" in capsys.readouterr().out

    trial = types.SimpleNamespace(key=key)
    (todo, done), said = _messages(lambda: plan([trial], store))  # the runner: complete, and says so
    assert done == [trial] and str(copy) in said


def test_differing_copies_of_a_trial_are_a_conflict_naming_both_files_and_the_fix(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    store, key = _store(tmp_path / "s")
    copy = _differing_copy(tmp_path, store, key)
    original = Path(store.root) / "trials" / f"{key}.parquet"

    assert main([str(store.root), "--tables", "2", "--no-figures"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert f"trial {key} is held by two files with different results, {original} and {copy}" in error
    assert "python -m debiasbench.benchmark.store merge" in error

    with pytest.raises(StoreError, match=f"{key} is held by two files with different results"):  # the runner
        plan([types.SimpleNamespace(key=key)], store)


def test_merge_applies_the_same_rule_to_copies_inside_a_store(tmp_path, capsys):
    from debiasbench.benchmark.store.__main__ import main

    source, key = _store(tmp_path / "s")
    original = Path(source.root) / "trials" / f"{key}.parquet"
    shutil.copy(original, original.with_name("copy.parquet"))
    code, said = _messages(lambda: main(["merge", str(source.root), "--into", str(tmp_path / "merged")]))
    assert code == 0 and "copied 1, dropped 1 identical duplicate(s)" in capsys.readouterr().out

    target = ResultStore(tmp_path / "target")
    target.ensure_writable()
    synthetic.simple(target, synthetic.trial("cmnist", "vanilla", {"ratio": 99.0, "difficulty": 4}), (0.3, 0.25))
    copy = _differing_copy(tmp_path, target, key)
    assert main(["merge", str(source.root), "--into", str(target.root)]) == 1
    out = capsys.readouterr().out
    assert "1 conflict(s)" in out and "held by two files with different results" in out and str(copy) in out


# -- item 9: a directory or a dangling symlink named like a trial file --------------------------------------


def test_a_directory_or_dangling_symlink_named_like_a_trial_file_is_warned_about(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main as report_main
    from debiasbench.benchmark.store.__main__ import main as store_main

    store, key = _store(tmp_path / "s")
    trials = Path(store.root) / "trials"
    (trials / "0123456789abcdef0123.parquet").mkdir()
    (trials / "fedcba9876543210fedc.parquet").symlink_to(tmp_path / "gone.parquet")

    for run in (
        store.statuses,  # the runner's scan
        lambda: report_main([str(store.root), "--tables", "2", "--no-figures"]),
        lambda: store_main(["merge", str(store.root), "--into", str(tmp_path / "merged")]),
    ):
        _, said = _messages(run)
        assert f"skipping {trials / '0123456789abcdef0123.parquet'}: a directory, not a file" in said
        assert f"skipping {trials / 'fedcba9876543210fedc.parquet'}: a symbolic link to nothing" in said
        assert "remove it" in said
    capsys.readouterr()


# -- item 5: merge into a destination it cannot write ----------------------------------------------------


def test_merge_into_an_unwritable_destination_names_into_not_results(tmp_path, capsys):
    from debiasbench.benchmark.store.__main__ import main

    store, _ = _store(tmp_path / "s")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")  # what a read-only mount also gives: nothing can be created there
    assert main(["merge", str(store.root), "--into", str(blocked / "merged")]) == 2
    out = capsys.readouterr().out
    assert "is not writable" in out and "pass --into with a directory you can write to" in out
    assert "--results" not in out
