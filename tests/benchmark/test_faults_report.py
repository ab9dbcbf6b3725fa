"""Fault tests for writing the report and comparing stores (ISSUE 29, items 3, 4 and 8): a full disk
while the run-end report is written, a read-only store, and `--compare` against a store with no
cell in common. Real file systems where the machine allows mounting (a tmpfs filled up, a tmpfs
remounted read-only), else the failure simulated at the write (each test says which)."""

import errno
import os
import pathlib
import subprocess
from pathlib import Path

import faultkit
from report_kit import syn as synthetic

from debiasbench import cli
from debiasbench.benchmark.experiments.driver import RunSummary
from debiasbench.benchmark.store import ResultStore


def _store(root: Path, dataset: str = "cmnist", ratio: float = 99.0, protocol: str = "paper") -> ResultStore:
    store = ResultStore(root)
    store.ensure_writable()
    for seed in (0, 1):
        config = synthetic.trial(dataset, "vanilla", {"ratio": ratio, "difficulty": 4}, seed=seed, protocol=protocol)
        synthetic.simple(store, config, (0.3 + seed / 100, 0.25))
    return store


def _no_empty_or_temporary_files(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if p.is_file() and (p.stat().st_size == 0 or ".tmp" in p.name)]
    assert left == [], left


def test_a_full_disk_while_the_run_end_report_is_written_is_one_line_naming_the_folder_and_out(
    tmp_path, capsys, monkeypatch
):
    import debiasbench.benchmark.experiments.driver as driver

    monkeypatch.setattr(driver, "run_grid", lambda configs, options: RunSummary(scheduled=1, completed=["a"]))
    with faultkit.tiny_filesystem(tmp_path, 1024) as tiny:
        root = tiny if tiny is not None else tmp_path / "sim"
        _store(root / "r")
        if tiny is not None:
            faultkit.fill(tiny, leave_bytes=0)  # a real, full tmpfs
        else:
            import debiasbench.benchmark.report.output as output

            monkeypatch.setattr(output.os, "fsync", faultkit.enospc)  # simulated at the write
        code = cli.main(["--grid", "smoke", "--results", str(root / "r")])
        error = capsys.readouterr().err.strip()
        assert code == 2 and error.count("\n") == 0 and "Traceback" not in error, error
        assert error.startswith(f"error: cannot write report file {root / 'r' / 'report'}/")  # was: bare [Errno 28]
        assert "the disk is full" in error and "--out DIR" in error
        _no_empty_or_temporary_files(root / "r" / "report")  # was: a 0-byte report/table2.md
        print("real tmpfs" if tiny is not None else "simulated ENOSPC (no mount permitted)")


def test_the_report_of_a_read_only_store_says_writing_failed_and_suggests_out(tmp_path, capsys, monkeypatch):
    from debiasbench.benchmark.report.cli import main

    with faultkit.tiny_filesystem(tmp_path, 2048) as tiny:
        root = tiny if tiny is not None else tmp_path / "sim"
        store = _store(root / "r")
        remounted = tiny is not None and not subprocess.run(["mount", "-o", "remount,ro", str(tiny)]).returncode
        if not remounted:

            def read_only(self, *args, **kwargs):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

            monkeypatch.setattr(pathlib.Path, "mkdir", read_only)  # simulated
        code = main([str(store.root), "--tables", "2", "--no-figures"])
        error = capsys.readouterr().err.strip()
        assert code == 2 and error.count("\n") == 0
        assert "reading the store" not in error  # was: "reading the store ... failed"
        assert f"cannot write report folder {root / 'r' / 'report'}: read-only file system" in error
        assert "--out DIR" in error
        assert main([str(store.root), "--tables", "2", "--no-figures", "--out", str(tmp_path / "out")]) == 0 or (
            not remounted  # the simulation refuses every mkdir
        )
        print("real read-only tmpfs" if remounted else "simulated EROFS (no mount permitted)")


def test_compare_with_no_dataset_in_common_says_nothing_could_be_compared(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    mine, reference = _store(tmp_path / "mine"), _store(tmp_path / "ref", dataset="ccifar1")
    out = tmp_path / "cmp"
    assert main([str(mine.root), "--compare", str(reference.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Nothing could be compared: no dataset in common" in printed and "cmnist" in printed
    assert "ccifar1" in printed and "0 differ" not in printed  # was: "21 cell(s) compared; 0 differ"


def test_compare_with_other_cells_or_another_protocol_says_why(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    mine = _store(tmp_path / "mine")
    for reference, why in (
        (_store(tmp_path / "r95", ratio=95.0), "no table cell is filled in both (common dataset(s) cmnist"),
        (
            _store(tmp_path / "rval", protocol="validation"),
            f"{mine.root} is read under protocol paper and {tmp_path / 'rval'} under validation (pass --protocol",
        ),
    ):
        assert main([str(mine.root), "--compare", str(reference.root), "--out", str(tmp_path / "cmp")]) == 0
        printed = capsys.readouterr().out
        assert f"Nothing could be compared: {why}" in printed and "0 differ" not in printed


def test_compare_with_cells_in_common_counts_only_those(tmp_path, capsys):
    from debiasbench.benchmark.report.cli import main

    mine, reference = _store(tmp_path / "mine"), _store(tmp_path / "ref")
    assert main([str(mine.root), "--compare", str(reference.root), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "cell(s) filled in both stores compared (0 only in" in printed and "0 differ by more" in printed
