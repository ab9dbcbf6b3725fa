"""image_table loading and splits: the split column, the aligned mapping, CSV and Parquet, the
stratified test fraction, ratio subsampling, the balanced test, no bias column; and an epoch
through the trainer."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
from image_table_kit import SIZES, colour_of, groups, row_ids, write_table

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS
from debiasbench.datasets.image_table import (
    ImageTable,
    _largest_remainder,
    aligned_mapping,
    ratio_counts,
    subsample_to_ratio,
)

# -- loading ----------------------------------------------------------------------------------------


def test_registered_and_defaults():
    assert DATASETS.get("image_table") is ImageTable
    params = ImageTable.make_params({"root": "photos", "table": "labels.csv", "target": "label"})
    assert (params.path_column, params.test_fraction, params.resolution, params.model, params.pretrained) == (
        "path",
        0.2,
        224,
        "resnet18",
        True,
    )
    assert (params.normalization, params.lr, params.input_scaling, params.bias) == ("imagenet", 1e-4, "unit", None)
    arrays = ImageTable.make_params({"root": "x.npy", "table": "t.csv", "target": "y", "model": "mlp"})
    assert (arrays.path_column, arrays.resolution, arrays.pretrained, arrays.normalization, arrays.lr) == (
        "index",
        None,
        False,
        "none",
        1e-3,
    )
    protocol = ImageTable.train_protocol(arrays)
    assert (protocol.lr, protocol.weight_decay, protocol.batch_size, protocol.epochs, protocol.optimizer) == (
        1e-3,
        0.0,
        256,
        100,
        "adam",
    )
    assert ImageTable.make_params(dataclasses.asdict(params)) == params  # canonical is idempotent


def test_split_column_counts_labels_and_pixels(folder):
    data = folder.load()
    train = [i for i, r in enumerate(folder.rows) if r["split"] == "train"]
    test = [i for i, r in enumerate(folder.rows) if r["split"] == "test"]
    assert (len(data.train), len(data.test)) == (27, 8)
    assert data.train.images.shape == (27, 3, 8, 8) and data.train.images.dtype == torch.uint8
    assert data.class_names == ["cat", "dog"] and data.bias_names == ["land", "water"]
    assert data.num_classes == 2 and data.num_bias_values == 2
    # Table order within each split; each sample holds its own file's pixels.
    assert row_ids(data.train) == train and row_ids(data.test) == test
    png = [k for k, i in enumerate(train) if folder.rows[i]["path"].endswith(".png")]
    expected = torch.tensor([colour_of(train[k]) for k in png], dtype=torch.uint8)
    assert torch.equal(data.train.images[png], expected[:, :, None, None].expand(-1, -1, 8, 8))  # PNG: exact
    assert data.train.targets.tolist() == [["cat", "dog"].index(folder.rows[i]["label"]) for i in train]
    assert data.train.biases.tolist() == [["land", "water"].index(folder.rows[i]["bg"]) for i in train]
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 3,
        ("dog", "land"): 10,
        ("dog", "water"): 2,
    }
    assert data.model == "mlp" and data.model_kwargs == {"in_features": 3 * 8 * 8}
    assert data.input_spec.scale == 1 / 255 and data.input_spec.mean is None


def test_aligned_mapping_by_majority(folder, caplog):
    caplog.set_level("INFO", logger="debiasbench.datasets.image_table")
    data = folder.load()
    assert data.aligned_bias.tolist() == [1, 0]  # cat -> water, dog -> land
    assert int(data.aligned_mask(data.train).sum()) == 22
    assert "cat -> water (80.0% of 15)" in caplog.text and "dog -> land (83.3% of 12)" in caplog.text
    # The rule itself: a bijection when there are as many bias values as classes (ties: identity) ...
    assert aligned_mapping(np.array([0, 0, 1]), np.array([1, 1, 0]), 2, 2).tolist() == [1, 0]
    assert aligned_mapping(np.array([0, 1]), np.array([0, 0]), 2, 2).tolist() == [0, 1]  # tie
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    b = np.array([2, 2, 1, 0, 0, 1, 1, 2])
    assert aligned_mapping(y, b, 3, 3).tolist() == [2, 0, 1]
    # ... even when one class's most frequent value is taken (CelebA's Blond_Hair/Male case).
    y, b = np.array([0] * 10 + [1] * 10), np.array([0] * 6 + [1] * 4 + [0] * 9 + [1])
    assert aligned_mapping(y, b, 2, 2).tolist() == [1, 0]
    # ... otherwise each class's most frequent value (ties: the smaller one).
    assert aligned_mapping(np.array([0, 0, 1, 1]), np.array([2, 2, 1, 2]), 2, 3).tolist() == [2, 1]


def test_integer_values_sort_numerically_and_strings_keep_names(folder):
    data = folder.load(target="size", bias="label")
    assert data.class_names == ["1", "2", "10"] and data.bias_names == ["cat", "dog"]
    train = [i for i, r in enumerate(folder.rows) if r["split"] == "train"]
    assert data.train.targets.tolist() == [SIZES.index(folder.rows[i]["size"]) for i in train]


def test_parquet_table_gives_the_same_data(folder):
    write_table(folder.root / "labels.parquet", folder.rows)
    a, b = folder.load(), folder.load(table="labels.parquet")
    for name in ("images", "targets", "biases"):
        assert torch.equal(getattr(a.train, name), getattr(b.train, name))
        assert torch.equal(getattr(a.test, name), getattr(b.test, name))
    assert a.class_names == b.class_names and a.bias_names == b.bias_names


def test_stratified_test_fraction_exact_counts_and_seed(folder):
    data = folder.load(split_column=None, test_fraction=0.25)
    # floor(n * 0.25 + 1/2) test rows per (target, bias) group of n rows.
    assert groups(data, data.test) == {("cat", "water"): 4, ("cat", "land"): 1, ("dog", "land"): 3, ("dog", "water"): 1}
    assert groups(data, data.train) == {
        ("cat", "water"): 10,
        ("cat", "land"): 4,
        ("dog", "land"): 9,
        ("dog", "water"): 3,
    }
    again, other = (
        folder.load(split_column=None, test_fraction=0.25),
        folder.load(1, split_column=None, test_fraction=0.25),
    )
    assert row_ids(again.test) == row_ids(data.test) and row_ids(other.test) != row_ids(data.test)
    assert sorted(row_ids(data.train) + row_ids(data.test)) == list(range(len(folder.rows)))
    # Without a bias the strata are the classes: cat 19 -> 5, dog 16 -> 4.
    plain = folder.load(bias=None, split_column=None, test_fraction=0.25)
    assert groups(plain, plain.test) == {("cat", None): 5, ("dog", None): 4}


def test_ratio_subsampling_exact_counts(folder):
    # Training groups: cat 12 aligned (water) + 3 conflicting; dog 10 aligned (land) + 2 conflicting.
    data = folder.load(ratio=90)  # all aligned kept, round(A * 10 / 90) conflicting: 1 and 1
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 1,
        ("dog", "land"): 10,
        ("dog", "water"): 1,
    }
    data = folder.load(ratio=80)  # cat: 12 + 3; dog: round(2.5) = 3 > 2 conflicting, so 8 aligned + 2
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 3,
        ("dog", "land"): 8,
        ("dog", "water"): 2,
    }
    assert groups(data, data.test) == {g: 2 for g in groups(data, data.test)} and len(data.test) == 8
    assert row_ids(folder.load(ratio=80).train) == row_ids(data.train)  # seeded by the data seed
    assert row_ids(folder.load(1, ratio=80).train) != row_ids(data.train)
    kept = row_ids(data.train)
    assert kept == sorted(kept)  # table order is kept
    data = folder.load(ratio=50)
    assert groups(data, data.train) == {
        ("cat", "water"): 3,
        ("cat", "land"): 3,
        ("dog", "land"): 2,
        ("dog", "water"): 2,
    }


def test_ratio_rule_and_conflicting_allocation():
    assert ratio_counts(100, 50, 95) == (100, 5)
    assert ratio_counts(100, 2, 95) == (38, 2)  # round(2 * 95 / 5) = 38 aligned
    assert ratio_counts(10, 2, 80) == (8, 2)
    assert ratio_counts(199, 10, 99.5) == (199, 1)  # 0.995 -> 1 (half up)
    assert _largest_remainder(3, [6, 3]) == [2, 1]
    assert _largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    # Three bias values: class 0 aligned with 0, conflicting groups of 6 and 3 -> 3 kept as 2 + 1.
    targets = np.array([0] * 59 + [1] * 20)
    biases = np.array([0] * 50 + [1] * 6 + [2] * 3 + [2] * 19 + [0])
    keep = subsample_to_ratio(targets, biases, np.array([0, 2]), 95, 0, lambda y, b: f"({y}, {b})")
    assert Counter(zip(targets[keep].tolist(), biases[keep].tolist())) == {
        (0, 0): 50,
        (0, 1): 2,
        (0, 2): 1,
        (1, 2): 19,
        (1, 0): 1,
    }


def test_balanced_test_exact_counts(folder):
    data = folder.load(split_column=None, test_fraction=0.25, balanced_test=True)
    assert groups(data, data.test) == {(y, b): 1 for y in ("cat", "dog") for b in ("land", "water")}
    assert len(data.train) == 26  # training split untouched
    assert row_ids(data.test) == row_ids(folder.load(split_column=None, test_fraction=0.25, balanced_test=True).test)
    even = folder.load(balanced_test=True)
    assert groups(even, even.test) == {(y, b): 2 for y in ("cat", "dog") for b in ("land", "water")}
    plain = folder.load(bias=None, split_column=None, test_fraction=0.25, balanced_test=True)
    assert groups(plain, plain.test) == {("cat", None): 4, ("dog", None): 4}  # without bias: per class


def test_without_bias_there_are_no_bias_labels(folder):
    params = folder.params(bias=None)
    assert not ImageTable.has_bias_labels_for(params) and ImageTable.has_bias_labels_for(folder.params())
    data = folder.load(bias=None)
    assert data.train.biases is None and data.test.biases is None
    assert data.num_bias_values is None and data.bias_names is None and data.aligned_bias is None
    assert data.aligned_mask(data.train) is None
    with pytest.raises(ValueError, match="ratio needs a bias column"):
        folder.params(bias=None, ratio=95)


# -- through the trainer ------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", ["bg", None])
def test_vanilla_epoch_end_to_end(folder, bias):
    params = dataclasses.asdict(folder.params(bias=bias, batch_size=8))
    trial = resolve_trial(TrialConfig("image_table", "vanilla", params, epochs=1))
    output = train_trial(trial, TrainEnv(paths=folder.paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("split", "subset", "target", "bias", "metric", "value"))))
    counts = {(r[2], r[3]): r[5] for r in rows if r[0] == "test" and r[4] == "count"}
    assert sum(counts.values()) == 8
    subsets = {r[1] for r in rows if r[0] == "test" and r[4] == "accuracy"}
    assert ({"aligned", "conflicting", "group"} <= subsets) == (bias is not None)


def test_methods_that_need_bias_labels_are_refused_without_a_bias_column(folder):
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig("image_table", "group_dro", dataclasses.asdict(folder.params(bias=None))))
