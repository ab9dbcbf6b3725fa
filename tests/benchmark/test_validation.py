import pytest
import torch

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.training.holdout import holdout_indices
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths


def test_holdout_is_stratified_keeps_the_bias_and_is_seeded():
    # 1,000 aligned samples per class and 3 conflicting in each of two cells.
    targets = torch.tensor([0] * 1003 + [1] * 1003)
    biases = torch.tensor([0] * 1000 + [1] * 3 + [1] * 1000 + [0] * 3)
    train, valid = holdout_indices(targets, biases, 0.1, seed=0)
    assert len(set(train.tolist()) & set(valid.tolist())) == 0 and len(train) + len(valid) == 2006
    conflicting_in_valid = (biases[valid] != targets[valid]).sum().item()
    assert conflicting_in_valid == 2  # one from each conflicting cell: every group that has any
    assert (biases[valid] == targets[valid]).sum().item() == 200
    again, _ = holdout_indices(targets, biases, 0.1, seed=0)
    other, _ = holdout_indices(targets, biases, 0.1, seed=1)
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_validation_protocol_trains_on_the_rest_and_evaluates_valid(tmp_path, toy_plugin):
    env = TrainEnv(paths=DataPaths(tmp_path, tmp_path / "c"), device="cpu", num_threads=1)
    summaries = []
    output = train_trial(
        resolve_trial(TrialConfig("toy", "vanilla", epochs=1, protocol="validation")), env, on_epoch=summaries.append
    )
    splits = set(output.metrics["split"])
    assert {"train", "test", "valid"} <= splits
    rows = zip(
        output.metrics["split"],
        output.metrics["subset"],
        output.metrics["role"],
        output.metrics["metric"],
        output.metrics["value"],
    )
    valid_count = sum(
        v
        for split, subset, role, metric, v in rows
        if (split, subset, role, metric) == ("valid", "group", "main", "count")
    )
    _, valid_rows = holdout_indices(*_toy_labels(tmp_path), 0.1, seed=0)
    assert valid_count == len(valid_rows)  # exactly the held-out rows are evaluated as "valid"
    assert 0 <= summaries[0]["valid_accuracy"] <= 1 and "valid_worst_group_accuracy" in summaries[0]
    paper = resolve_trial(TrialConfig("toy", "vanilla", epochs=1))
    assert paper.key != resolve_trial(TrialConfig("toy", "vanilla", epochs=1, protocol="validation")).key
    # The fraction only enters the key where it matters.
    assert paper.key == resolve_trial(TrialConfig("toy", "vanilla", epochs=1, validation_fraction=0.2)).key


def _toy_labels(tmp_path):
    from debiasbench.datasets.base import DATASETS

    toy = DATASETS.get("toy")
    train = toy.load(toy.make_params({}), DataPaths(tmp_path, tmp_path / "c"), 0).train
    return train.targets, train.biases


def test_bad_protocol_and_fraction(toy_plugin):
    with pytest.raises(InvalidTrialError, match="selection protocol"):
        resolve_trial(TrialConfig("toy", "vanilla", protocol="oracle"))
    with pytest.raises(InvalidTrialError, match="validation_fraction"):
        resolve_trial(TrialConfig("toy", "vanilla", protocol="validation", validation_fraction=1.5))
