"""The Colored MNIST export (tools/export_cmnist_image_table.py) loads through image_table as the
built-in dataset's own arrays, and trains to the same numbers."""

import dataclasses
import json

import pytest
import torch

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import Split
from debiasbench.datasets.cmnist import ColoredMNIST
from debiasbench.datasets.image_table import ImageTable
from debiasbench.tools.export_cmnist_image_table import main as export_main

pytestmark = pytest.mark.real_data

N_TRAIN, N_TEST = 600, 200
CMNIST = {"ratio": 95.0, "assignment": "random"}  # conflicting samples spread over the first rows too


@pytest.fixture(scope="module")
def exported(mnist_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmnist_export")
    export_main(
        [
            "--data-root",
            str(mnist_paths.data_root),
            "--cache-dir",
            str(mnist_paths.cache_dir),
            "--out",
            str(out),
            "--ratio",
            "95",
            "--param",
            "assignment=random",
            "--limit-train",
            str(N_TRAIN),
            "--limit-test",
            str(N_TEST),
            "--quiet",
        ]
    )
    return json.loads((out / "image_table.json").read_text())


def _first_rows(split: Split, n: int) -> Split:
    return Split(images=split.images[:n], targets=split.targets[:n], biases=split.biases[:n])


def test_export_loads_bit_identical(exported, mnist_paths):
    built_in = ColoredMNIST.load(ColoredMNIST.make_params(CMNIST), mnist_paths)
    data = ImageTable.load(ImageTable.make_params(exported), mnist_paths)
    for mine, theirs, n in ((data.train, built_in.train, N_TRAIN), (data.test, built_in.test, N_TEST)):
        assert torch.equal(mine.images, theirs.images[:n])
        assert torch.equal(mine.targets, theirs.targets[:n]) and torch.equal(mine.biases, theirs.biases[:n])
    assert data.class_names == built_in.class_names and data.bias_names == built_in.bias_names
    assert torch.equal(data.aligned_bias, built_in.aligned_bias)
    assert data.input_spec == built_in.input_spec
    assert (data.model, data.model_kwargs) == (built_in.model, built_in.model_kwargs)
    assert int((~data.aligned_mask(data.train)).sum()) > 10  # the subset has conflicting samples


def test_one_vanilla_epoch_gives_identical_numbers(exported, mnist_paths, monkeypatch):
    original = ColoredMNIST.load

    def first_rows(cls, params, paths, data_seed=0):
        data = original(params, paths, data_seed)
        return dataclasses.replace(data, train=_first_rows(data.train, N_TRAIN), test=_first_rows(data.test, N_TEST))

    monkeypatch.setattr(ColoredMNIST, "load", classmethod(first_rows))
    env = TrainEnv(paths=mnist_paths, device="cpu", num_threads=1, save_predictions=False)
    outputs = [
        train_trial(resolve_trial(TrialConfig(dataset, "vanilla", params, epochs=1)), env)
        for dataset, params in (("cmnist", CMNIST), ("image_table", exported))
    ]

    def numbers(output):
        return [row for row in zip(*(output.metrics[c] for c in output.metrics)) if "seconds" not in row]

    assert numbers(outputs[0]) == numbers(outputs[1])
    accuracy = [
        v
        for v, s, sub, m in zip(*(outputs[1].metrics[c] for c in ("value", "split", "subset", "metric")))
        if (s, sub, m) == ("test", "all", "accuracy")
    ]
    assert len(accuracy) == 1 and 0.0 < accuracy[0] <= 1.0
