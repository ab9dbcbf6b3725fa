"""The Ray Tune runner end to end on the toy plugin: trials land in the store, a failing trial is
recorded rather than fatal, and rerunning the same grid runs nothing."""

import pytest

from debiasbench.benchmark.experiments.driver import RunOptions, run_grid
from debiasbench.benchmark.store import ResultStore
from debiasbench.benchmark.trial import TrialConfig

pytestmark = pytest.mark.ray


def test_grid_runs_records_failures_and_resumes(tmp_path, toy_plugin):
    configs = [
        TrialConfig("toy", "vanilla", epochs=2),
        TrialConfig("toy", "lff", epochs=2),
        TrialConfig("toy", "always_fails", epochs=1),
    ]
    options = RunOptions(
        results=str(tmp_path / "results"),
        data_root=str(tmp_path),
        cache_dir=str(tmp_path / "cache"),
        num_cpus=2,
        max_failures=0,
        device="cpu",
        plugins=(toy_plugin,),
        progress="off",
    )
    summary = run_grid(configs, options)
    assert len(summary.completed) == 2 and len(summary.failed) == 1
    assert "always fails" in next(iter(summary.failed.values()))

    store = ResultStore(tmp_path / "results")
    trials = store.trials().set_index("method")
    assert trials.loc["vanilla", "status"] == "completed" and trials.loc["always_fails", "status"] == "failed"
    assert "RuntimeError" in trials.loc["always_fails", "error"]
    assert trials.loc["lff", "seconds_per_epoch"] > 0 and trials.loc["lff", "peak_memory_mb"] > 0
    epochs = store.read().query("method == 'lff' and metric == 'accuracy' and subset == 'all'")["epoch"]
    assert sorted(epochs.unique()) == [1, 2]
    assert (tmp_path / "results" / "logs").is_dir()
    assert not (tmp_path / "results" / "checkpoints").exists() or not any(
        (tmp_path / "results" / "checkpoints").iterdir()
    )

    rerun = run_grid(configs[:2], options)
    assert rerun.scheduled == 0 and rerun.skipped == 2
