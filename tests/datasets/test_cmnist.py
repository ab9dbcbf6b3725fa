"""Colored MNIST per SPEC 2.1: exact counts, the colour formula, the splits, determinism, errors."""

import numpy as np
import pytest
import torch

from datasets._bias import assign_bias, bias_counts
from datasets.base import DataNotFoundError, DataPaths
from datasets.cmnist import COLOR_STD, PALETTE, ColoredMNIST, colorize


@pytest.mark.parametrize("n,ratio", [(5923, 0.995), (6742, 0.95), (980, 0.1), (1135, 0.99), (7, 0.98)])
def test_bias_counts_are_exact(n, ratio):
    counts = bias_counts(n, ratio, 10)
    assert counts.sum() == n
    assert counts[0] == round(ratio * n)
    assert counts[1:].max() - counts[1:].min() <= 1  # the rest spread evenly


def test_assign_bias_counts_per_class_and_seeded():
    targets = np.repeat(np.arange(10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    a = assign_bias(targets, 0.1, 10, np.random.default_rng(0))
    b = assign_bias(targets, 0.1, 10, np.random.default_rng(0))
    c = assign_bias(targets, 0.1, 10, np.random.default_rng(1))
    assert (a == b).all() and (a != c).any()
    for y in range(10):
        counts = np.bincount(a[targets == y], minlength=10)
        np.testing.assert_array_equal(counts[[y] + [v for v in range(10) if v != y]],
                                      bias_counts((targets == y).sum(), 0.1, 10))


def test_colorize_multiplies_grey_by_clamped_noisy_palette_colour_and_truncates():
    gray = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    biases = np.array([0, 3, 9, 4, 4])
    out = colorize(gray, biases, 0.05, np.random.default_rng(7))
    noise = np.random.default_rng(7).standard_normal((5, 3), dtype=np.float32) * np.float32(0.05)
    colors = np.clip(PALETTE[biases] + noise, 0, 1)
    expected = np.floor(gray[:, None].astype(np.float32) * colors[:, :, None, None]).astype(np.uint8)
    assert out.dtype == np.uint8 and out.shape == (5, 3, 28, 28)
    np.testing.assert_array_equal(out, expected)


@pytest.fixture(scope="module")
def cmnist_995(mnist_paths):
    return ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 99.5, "difficulty": 4}), mnist_paths)


def test_train_split_exact_group_counts(cmnist_995):
    train = cmnist_995.train
    assert len(train) == 60000
    cells = torch.bincount(train.targets * 10 + train.biases, minlength=100).view(10, 10).numpy()
    class_sizes = cells.sum(1)
    for y in range(10):
        expected = bias_counts(class_sizes[y], 0.995, 10)
        assert cells[y, y] == expected[0]
        np.testing.assert_array_equal(np.delete(cells[y], y), expected[1:])


def test_test_split_is_unbiased_with_every_cell_populated(cmnist_995):
    test = cmnist_995.test
    assert len(test) == 10000
    cells = torch.bincount(test.targets * 10 + test.biases, minlength=100).view(10, 10)
    assert (cells >= 85).all() and (cells <= 115).all()
    assert cmnist_995.aligned_mask(test).float().mean().item() == pytest.approx(0.1, abs=1e-3)


def test_colour_noise_matches_difficulty(cmnist_995):
    # The brightest pixel of a digit (grey 255 in most MNIST digits) reveals its colour.
    images = cmnist_995.train.images[:3000].float() / 255
    biases = cmnist_995.train.biases[:3000]
    peak = images.flatten(2).max(2).values  # (n, 3) ~ colour * max grey
    full = peak.max(1).values > 0.5
    error = (peak[full] - torch.from_numpy(PALETTE)[biases[full]]).abs()
    assert error.median() < 3 * COLOR_STD[4] + 2 / 255


def test_generation_is_cached_and_deterministic(mnist_paths):
    params = ColoredMNIST.make_params({"ratio": 99.5, "difficulty": 4})
    first = ColoredMNIST.load(params, mnist_paths, data_seed=0)
    again = ColoredMNIST.load(params, mnist_paths, data_seed=0)
    torch.testing.assert_close(first.train.images, again.train.images)
    other_seed = ColoredMNIST.arrays(params, mnist_paths, data_seed=1)
    assert not np.array_equal(other_seed["train_colors"], first.train.biases.numpy())


def test_reversed_task_swaps_target_and_bias_on_the_same_images(mnist_paths, cmnist_995):
    reversed_task = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 99.5, "target": "color"}), mnist_paths)
    torch.testing.assert_close(reversed_task.train.images, cmnist_995.train.images)
    torch.testing.assert_close(reversed_task.train.targets, cmnist_995.train.biases)
    torch.testing.assert_close(reversed_task.train.biases, cmnist_995.train.targets)


def test_unbiased_training_set_is_uniform(mnist_paths):
    data = ColoredMNIST.load(ColoredMNIST.make_params({"unbiased_train": True}), mnist_paths)
    assert data.aligned_mask(data.train).float().mean().item() == pytest.approx(0.1, abs=1e-3)
    assert ColoredMNIST.make_params({"unbiased_train": True, "ratio": 95}).ratio == 10.0


@pytest.mark.parametrize("values,message", [
    ({"ratio": 0.995}, "percentage"), ({"ratio": 100}, "strictly between"), ({"ratio": 5}, "strictly between"),
    ({"difficulty": 5}, "difficulty"), ({"target": "shape"}, "target"), ({"input_scaling": "x"}, "input_scaling"),
    ({"colour": 1}, "no parameter"),
])
def test_invalid_parameters_name_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        ColoredMNIST.make_params(values)


def test_missing_mnist_says_where_to_put_it(tmp_path):
    paths = DataPaths(data_root=tmp_path / "nothing", cache_dir=tmp_path / "cache", allow_download=False)
    with pytest.raises(DataNotFoundError, match=r"MNIST/raw.*--data-root"):
        ColoredMNIST.load(ColoredMNIST.make_params({}), paths)
