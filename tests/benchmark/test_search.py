"""Hyper-parameter search: deterministic draws, validation-only metrics, ASHA-stopped trials kept
as 'stopped', and the best configuration chosen on the validation metric."""

import json

import pytest

from debiasbench.benchmark.experiments.search import best_configurations, check_metric, search_results, summary_table
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.methods.base import METHODS, resolve_hparams


def test_draws_are_deterministic_and_independent_per_parameter():
    lff = METHODS.get("lff")
    a, b = resolve_hparams(lff, "cmnist", 3), resolve_hparams(lff, "cmnist", 3)
    assert a == b and resolve_hparams(lff, "cmnist", 0) == lff.Hparams()
    draws = {resolve_hparams(lff, "cmnist", k) for k in range(1, 20)}
    assert len(draws) > 3
    # Removing a parameter from the space does not shift the other's draws.
    original = dict(lff.search_space)
    try:
        lff.search_space = {"q": original["q"]}
        q_alone = [resolve_hparams(lff, "cmnist", k).q for k in range(1, 10)]
    finally:
        lff.search_space = original
    assert q_alone == [resolve_hparams(lff, "cmnist", k).q for k in range(1, 10)]


def test_test_metrics_cannot_be_optimised():
    with pytest.raises(ValueError, match="validation metric"):
        check_metric("test_accuracy")


@pytest.mark.ray
def test_asha_search_records_stopped_trials_and_picks_best(tmp_path, toy_plugin):
    from debiasbench.benchmark.experiments.driver import RunOptions, run_grid
    from debiasbench.benchmark.store import ResultStore

    configs = [TrialConfig("toy", "lff", epochs=4, protocol="validation", hparams_seed=k) for k in range(4)]
    options = RunOptions(
        results=str(tmp_path / "r"),
        data_root=str(tmp_path),
        cache_dir=str(tmp_path / "c"),
        num_cpus=2,
        device="cpu",
        plugins=(toy_plugin,),
        progress="off",
        scheduler="asha",
    )
    summary = run_grid(configs, options)
    assert len(summary.completed) + len(summary.stopped) == 4 and not summary.failed
    store = ResultStore(tmp_path / "r")
    assert store.finished_keys() == set(summary.completed) | set(summary.stopped)
    assert not store.keys_with_status("partial")
    last_epoch = store.read().groupby("trial_key")["epoch"].max()
    assert all(last_epoch[k] < 4 for k in summary.stopped) and all(last_epoch[k] == 4 for k in summary.completed)
    results = search_results(store.read())
    assert len(results) == 4 and results["valid_accuracy"].between(0, 1).all()
    best = best_configurations(results)
    assert len(best) == 1 and best["valid_accuracy"].item() == results["valid_accuracy"].max()
    assert "searched" in summary_table(results) and "defaults" in summary_table(results)
    assert json.loads(results.loc[results.hparams_seed == 0, "method_hparams"].item())["q"] == 0.7
    rerun = run_grid(configs, options)  # stopped trials count as finished
    assert rerun.scheduled == 0
