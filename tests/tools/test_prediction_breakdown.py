"""tools/prediction_breakdown: aligned and conflicting accuracy, and how often a conflicting sample is
predicted as its bias's class, from the stored predictions of a small known store."""

from debiasbench.benchmark.store import ResultStore, TrialRecord
from debiasbench.tools.prediction_breakdown import breakdown, main


def _trial(method: str, predictor_role: str, ratio: float) -> dict:
    return {
        "dataset": "cmnist",
        "method": method,
        "supervision": "none",
        "predictor_role": predictor_role,
        "dataset_params": {"ratio": ratio},
        "method_hparams": {},
        "trial_seed": 0,
        "data_seed": 0,
        "hparams_seed": 0,
        "epochs": 1,
        "protocol": "paper",
    }


METRICS = {"epoch": [1], "role": ["main"], "split": ["test"], "subset": ["all"], "metric": ["accuracy"], "value": [0.5]}
# Two aligned samples (target == bias) and four conflicting ones.
TARGET = [0, 1, 0, 1, 2, 2]
BIAS = [0, 1, 1, 2, 0, 1]


def _store(tmp_path) -> ResultStore:
    store = ResultStore(tmp_path)
    store.ensure_writable()
    # A bias follower: right on both aligned samples, predicts the bias's class on 3 of 4 conflicting.
    follower = [0, 1, 1, 2, 0, 2]
    # An anti-bias model: wrong on both aligned samples, never the bias's class, right on 2 conflicting.
    against = [1, 0, 0, 1, 1, 0]
    rows = {"index": list(range(6)), "target": TARGET, "bias": BIAS}
    store.write_trial(
        TrialRecord(
            trial=_trial("vanilla", "main", 95.0),
            key="v",
            status="completed",
            metrics=METRICS,
            predictions={"role": ["main"] * 6, **rows, "prediction": follower},
        )
    )
    # The predictor role is read; the other role's predictions are ignored.
    store.write_trial(
        TrialRecord(
            trial=_trial("learned_mixin", "main", 95.0),
            key="l",
            status="completed",
            metrics=METRICS,
            predictions={
                "role": ["main"] * 6 + ["biased"] * 6,
                "index": list(range(6)) * 2,
                "target": TARGET * 2,
                "bias": BIAS * 2,
                "prediction": against + follower,
            },
        )
    )
    store.write_trial(TrialRecord(trial=_trial("vanilla", "main", 99.5), key="f", status="failed", error="x"))
    return store


def test_breakdown_counts_each_subset_by_hand(tmp_path):
    frame = breakdown(_store(tmp_path)).set_index("method")
    assert len(frame) == 2  # the failed trial has no predictions to read
    vanilla, mixin = frame.loc["vanilla"], frame.loc["learned_mixin"]
    assert (vanilla.aligned_accuracy, vanilla.conflicting_accuracy) == (100.0, 25.0)
    assert vanilla.conflicting_predicted_as_bias_class == 75.0
    assert (mixin.aligned_accuracy, mixin.conflicting_accuracy) == (0.0, 50.0)
    assert mixin.conflicting_predicted_as_bias_class == 0.0


def test_filters_and_the_command(tmp_path, capsys):
    store = _store(tmp_path)
    assert list(breakdown(store, method="learned_mixin")["method"]) == ["learned_mixin"]
    assert breakdown(store, ratio=99.5).empty
    assert main([str(tmp_path), "--method", "vanilla"]) == 0
    out = capsys.readouterr().out
    assert "method: vanilla" in out and "75.0" in out
    assert main([str(tmp_path), "--ratio", "98"]) == 1
