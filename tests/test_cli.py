"""The command line (debiasbench.cli, also `python run_all.py` and `debiasbench`): listing, dry runs,
and clear errors for bad input."""

from debiasbench import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_methods_with_supervision_and_datasets(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0
    assert "lff" in out and "○ none" in out and "cmnist" in out and "ratio" in out
    assert "on cmnist: ◐ bias-tailored" in out  # REPAIR's per-dataset supervision


def test_unknown_method_lists_valid_names(capsys, tmp_path):
    code, _, err = run(capsys, "--grid", "smoke", "--methods", "lfff", "--results", str(tmp_path), "--dry-run")
    assert code == 2 and "unknown method 'lfff'" in err and "Did you mean 'lff'" in err and "vanilla" in err


def test_unknown_dataset_grid_and_table(capsys, tmp_path):
    assert "unknown dataset" in run(capsys, "--datasets", "mnist", "--dry-run", "--results", str(tmp_path))[2]
    assert "unknown grid" in run(capsys, "--grid", "huge", "--dry-run", "--results", str(tmp_path))[2]
    assert (
        "unknown table" in run(capsys, "--grid", "paper", "--tables", "12", "--dry-run", "--results", str(tmp_path))[2]
    )


def test_invalid_ratio_is_rejected_before_anything_runs(capsys, tmp_path):
    code, _, err = run(capsys, "--grid", "smoke", "--dataset-param", "ratio=0.99", "--results", str(tmp_path / "r"))
    assert code == 2 and "invalid ratio 0.99" in err and "percentage" in err
    assert not (tmp_path / "r").exists()


def test_unwritable_results_path(capsys, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, _, err = run(capsys, "--grid", "smoke", "--results", str(blocker / "x"))
    assert code == 2 and "not writable" in err


def test_dry_run_lists_trials_and_counts(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "--grid",
        "paper",
        "--tables",
        "2,3",
        "--datasets",
        "cmnist",
        "--methods",
        "vanilla,lff",
        "--dry-run",
        "--results",
        str(tmp_path),
    )
    assert code == 0
    assert "24 trial(s) to run, 0 already complete" in out  # 4 ratios x 2 methods x 3 seeds


def test_a_dry_run_with_everything_stored_says_there_is_nothing_to_run(capsys, tmp_path):
    import shutil
    from pathlib import Path

    from debiasbench.benchmark.store import ResultStore

    shipped = Path(__file__).resolve().parents[1] / "results" / "reference" / "cmnist_validation"
    trials = ResultStore(shipped).trials()
    (tmp_path / "trials").mkdir()
    for key in trials.loc[trials["method"] == "vanilla", "trial_key"]:
        shutil.copy(shipped / "trials" / f"{key}.parquet", tmp_path / "trials")
    code, out, _ = run(
        capsys,
        *("--grid", "extended", "--datasets", "cmnist", "--ratios", "95,99.5", "--methods", "vanilla"),
        *("--protocol", "validation", "--dry-run", "--results", str(tmp_path)),
    )
    assert code == 0 and "0 trial(s) to run, 6 already complete; nothing to run" in out
