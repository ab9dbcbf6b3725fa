"""The four mitigation strategies of the background notes on the own-data path: one run each on an
image folder the test writes (cats mostly on water, dogs mostly on land), through the real trainer,
with every group of the balanced test split evaluated."""

import dataclasses

import pytest
from image_table_kit import Folder

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig


@pytest.fixture
def folder(tmp_path):
    return Folder(tmp_path)


@pytest.mark.parametrize(
    "method,model",
    [
        ("balanced_batches", "mlp"),
        ("smote", "mlp"),
        ("occamnets", "mlp"),
        ("occamnets", "simple_convnet"),
        ("adversarial", "mlp"),
    ],
)
def test_one_run_on_an_own_image_folder(folder, method, model):
    params = dataclasses.asdict(folder.params(batch_size=8, model=model))
    trial = resolve_trial(TrialConfig("image_table", method, params, epochs=2))
    output = train_trial(trial, TrainEnv(paths=folder.paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("epoch", "split", "subset", "target", "bias", "metric", "value"))))
    counts = {(r[3], r[4]): r[6] for r in rows if r[0] == 2 and r[1] == "test" and r[5] == "count"}
    assert counts == {(y, b): 2 for y in (0, 1) for b in (0, 1)}  # the test split: 2 per group
    accuracy = [r[6] for r in rows if r[1] == "test" and r[2] == "all" and r[5] == "accuracy"]
    assert len(accuracy) == 2 and all(0 <= a <= 1 for a in accuracy)
