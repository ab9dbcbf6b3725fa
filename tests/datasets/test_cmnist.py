"""Colored MNIST per docs/protocol.md#colored-mnist: exact counts, the colour formula, the splits,
determinism, errors."""

import numpy as np
import pytest
import torch

from debiasbench.datasets._bias import bias_counts
from debiasbench.datasets.base import DataNotFoundError, DataPaths
from debiasbench.datasets.cmnist import COLOR_STD, PALETTE, ColoredMNIST, colorize


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
        np.testing.assert_array_equal(cells[y], bias_counts(class_sizes[y], 0.995, 10, y))


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
    # The reference rule is positional: the data seed changes the colour noise, not the assignment.
    np.testing.assert_array_equal(other_seed["train_colors"], first.train.biases.numpy())
    assert not np.array_equal(other_seed["train_images"], first.train.images.numpy())


def test_reference_assignment_is_positional_in_mnist_order(cmnist_995):
    train = cmnist_995.train
    for y in (0, 7):
        biases = train.biases[train.targets == y].numpy()
        aligned_block = np.flatnonzero(biases == y)
        # One consecutive aligned block, with the conflicting blocks in colour order around it.
        assert (np.diff(aligned_block) == 1).all()
        assert (np.diff(biases) >= 0).all()


def test_random_assignment_has_the_same_cells_and_other_samples(mnist_paths, cmnist_995):
    shuffled = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 99.5, "assignment": "random"}), mnist_paths)
    cells = lambda split: torch.bincount(split.targets * 10 + split.biases, minlength=100)  # noqa: E731
    torch.testing.assert_close(cells(shuffled.train), cells(cmnist_995.train))
    torch.testing.assert_close(cells(shuffled.test), cells(cmnist_995.test))
    assert (shuffled.train.biases != cmnist_995.train.biases).any()
    other_seed = ColoredMNIST.arrays(
        ColoredMNIST.make_params({"ratio": 99.5, "assignment": "random"}), mnist_paths, data_seed=1
    )
    assert not np.array_equal(other_seed["train_colors"], shuffled.train.biases.numpy())


def test_reversed_task_swaps_target_and_bias_on_the_same_images(mnist_paths, cmnist_995):
    reversed_task = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 99.5, "target": "color"}), mnist_paths)
    torch.testing.assert_close(reversed_task.train.images, cmnist_995.train.images)
    torch.testing.assert_close(reversed_task.train.targets, cmnist_995.train.biases)
    torch.testing.assert_close(reversed_task.train.biases, cmnist_995.train.targets)


def test_unbiased_training_set_is_uniform(mnist_paths):
    data = ColoredMNIST.load(ColoredMNIST.make_params({"unbiased_train": True}), mnist_paths)
    assert data.aligned_mask(data.train).float().mean().item() == pytest.approx(0.1, abs=1e-3)
    assert ColoredMNIST.make_params({"unbiased_train": True, "ratio": 95}).ratio == 10.0


@pytest.mark.parametrize(
    "values,message",
    [
        ({"ratio": 0.995}, "percentage"),
        ({"ratio": 100}, "strictly between"),
        ({"ratio": 5}, "strictly between"),
        ({"difficulty": 5}, "difficulty"),
        ({"target": "shape"}, "target"),
        ({"input_scaling": "x"}, "input_scaling"),
        ({"assignment": "shuffled"}, "reference, random"),
        ({"ratio": "abc"}, "is a number"),
        ({"colour": 1}, "no parameter"),
    ],
)
def test_invalid_parameters_name_the_problem(values, message):
    with pytest.raises(ValueError, match=message):
        ColoredMNIST.make_params(values)


def test_missing_mnist_says_where_to_put_it(tmp_path):
    paths = DataPaths(data_root=tmp_path / "nothing", cache_dir=tmp_path / "cache", allow_download=False)
    with pytest.raises(DataNotFoundError, match=r"MNIST/raw.*--data-root"):
        ColoredMNIST.load(ColoredMNIST.make_params({}), paths)
