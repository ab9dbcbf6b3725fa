"""The prepared GPU check runs on the CPU too (tiny synthetic data), so it is known to work before
it first meets a GPU: every (dataset kind, method) pair of the paper grid trains one epoch with
finite numbers, and four trials share one device through fractional Ray resources."""

import pytest

from debiasbench.tools import gpu_check


def test_every_kind_of_the_paper_grid_is_checked():
    kinds = {(kind, method) for kind, method, _ in gpu_check.paper_kinds()}
    assert {("cmnist", "lff"), ("ccifar", "repair"), ("celeba", "group_dro"), ("bar", "rebias")} <= kinds
    assert len(kinds) == 19


@pytest.mark.ray
def test_the_check_passes_on_the_cpu_and_prints_one_row_per_kind_and_path(capsys):
    status = gpu_check.main(["--device", "cpu", "--tiny", "--paths", "fp32,bf16", "--kinds", "cmnist,celeba"])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = [line for line in out.splitlines() if line.startswith(("cmnist ", "celeba "))]
    assert len(rows) == (7 + 3) * 2 and all(line.rstrip().endswith("yes") for line in rows)
    assert "shared device: ok: 4/4 trials completed" in out and "all checks passed" in out


def test_a_non_finite_number_fails_the_check(monkeypatch, capsys):
    def poisoned(*args, **kwargs):
        return {"seconds": 0.1, "memory_mb": 1.0, "finite": False}

    monkeypatch.setattr(gpu_check, "check_one", poisoned)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--paths", "fp32", "--kinds", "cmnist", "--no-shared"]) == 1
    assert "FAILED" in capsys.readouterr().out
