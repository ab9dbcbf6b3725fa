"""Colored MNIST per docs/protocol.md#colored-mnist: exact counts, the colour formula, the splits,
determinism, errors."""

import numpy as np
import pytest
import torch

from debiasbench.datasets._bias import bias_counts
from debiasbench.datasets.base import DataNotFoundError, DataPaths
from debiasbench.datasets.cmnist import COLOR_STD, PALETTE, ColoredMNIST, colorize, load_mnist


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


# On synthetic raw MNIST (the `synthetic_mnist` fixture of conftest.py: 20 train and 6 test 4 x 4
# digits per class), so these run where the real MNIST is absent too.


def test_load_names_the_ten_digits_and_the_ten_colours(synthetic_mnist):
    data = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 95.0}), synthetic_mnist)
    assert data.num_classes == 10 and data.num_bias_values == 10
    assert data.class_names == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert data.bias_names == [f"color{c}" for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)]
    assert data.aligned_bias.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # digit d goes with colour d
    assert (len(data.train), len(data.test)) == (200, 60)
    # 95% aligned: 19 of each digit's 20 training samples wear the digit's own colour.
    assert int((data.train.biases == data.train.targets).sum()) == 190
    assert data.test.biases is not None and data.test.biases.shape == (60,)
    # The MLP sees a flattened 3 x 28 x 28 colour digit: 2352 inputs.
    assert data.model == "mlp" and data.model_kwargs == {"in_features": 2352}


def test_reversed_task_on_synthetic_digits(synthetic_mnist):
    digit = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 95.0}), synthetic_mnist)
    colour = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 95.0, "target": "color"}), synthetic_mnist)
    assert colour.class_names == [f"color{c}" for c in range(10)] and colour.bias_names == [str(d) for d in range(10)]
    assert torch.equal(colour.train.targets, digit.train.biases) and torch.equal(
        colour.train.biases, digit.train.targets
    )
    assert torch.equal(colour.test.targets, digit.test.biases) and torch.equal(colour.test.images, digit.test.images)


def test_diagnosis_swaps_digit_and_colour():
    settings = ColoredMNIST.diagnosis_settings({"ratio": 99.0})
    assert settings.biased == {"ratio": 99.0, "target": "digit", "unbiased_train": False}
    assert settings.balanced == {"ratio": 99.0, "target": "digit", "unbiased_train": True}
    assert settings.reversed == {"ratio": 99.0, "target": "color", "unbiased_train": False}
    assert (settings.target, settings.bias) == ("Digit", "Color")
    assert settings.target_values == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    assert settings.bias_values == tuple(f"color{c}" for c in range(10))
    reverse = ColoredMNIST.diagnosis_settings(settings.reversed)
    assert (reverse.target, reverse.bias, reverse.target_values[0], reverse.bias_values[-1]) == (
        "Color",
        "Digit",
        "color0",
        "9",
    )
    with pytest.raises(ValueError, match="Colored MNIST diagnoses target digit or color"):
        ColoredMNIST.diagnosis_settings({"target": "shape"})


def test_raw_data_is_the_four_idx_files_in_torchvisions_layout(tmp_path):
    paths = DataPaths(data_root=tmp_path, cache_dir=tmp_path / "cache")
    assert ColoredMNIST.raw_paths(ColoredMNIST.make_params({}), paths) == [
        tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte",
        tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte",
        tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte",
        tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte",
    ]


class FakeMNIST:
    """torchvision's MNIST without files: absent unless asked to download, then one 28 x 28 zero digit."""

    calls: list[bool] = []

    def __init__(self, root: str, train: bool, download: bool) -> None:
        FakeMNIST.calls.append(download)
        if not download:
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        self.data, self.targets = torch.zeros(1, 28, 28, dtype=torch.uint8), torch.tensor([7])


def test_missing_mnist_is_downloaded_when_allowed(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    FakeMNIST.calls = []
    paths = DataPaths(data_root=tmp_path, cache_dir=tmp_path / "cache", allow_download=True)
    images, labels = load_mnist(paths, train=True)
    assert FakeMNIST.calls == [False, True] and images.shape == (1, 28, 28) and labels.tolist() == [7]


def test_colored_mnist_has_bias_labels_so_group_dro_resolves():
    from debiasbench.benchmark.experiments.resolve import resolve_trial
    from debiasbench.benchmark.trial import TrialConfig

    assert ColoredMNIST.has_bias_labels is True
    # Group DRO receives bias labels: a dataset without them is refused (tests/conftest.py's
    # registry_without_bias_labels), Colored MNIST is not.
    resolved = resolve_trial(TrialConfig("cmnist", "group_dro", {"ratio": 99.0}))
    assert (resolved.dataset, resolved.method) == ("cmnist", "group_dro")


def test_the_task_and_the_input_scaling_share_one_generated_dataset(synthetic_mnist):
    # Digit or colour as the target, and how inputs are scaled, change what the model is asked and
    # sees, not the coloured images: all four load the one cache entry the first built.
    for values in ({}, {"target": "color"}, {"input_scaling": "unit"}, {"target": "color", "input_scaling": "unit"}):
        ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 95.0, **values}), synthetic_mnist)
    assert len(list((synthetic_mnist.cache_dir / "cmnist").iterdir())) == 1
    ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 98.0}), synthetic_mnist)  # a generation setting
    assert len(list((synthetic_mnist.cache_dir / "cmnist").iterdir())) == 2


def test_make_split_assigns_colours_by_the_reference_rule_unless_told():
    from debiasbench.datasets.cmnist import make_split

    digits = np.repeat([3, 5], 20)
    split = make_split(np.zeros((40, 4, 4), np.uint8), digits, 0.9, 0.0, data_seed=0, split="train")
    # Reference rule, 20 samples at 90%: each other colour's share is 20 * 0.1 / 9 = 0.22, so for
    # digit 3 the milestones round(20 * cumsum(p)) are 0, 0, 1, 19, 19, 19, 19, 20, 20, 20: one
    # sample of colour 2, 18 of colour 3, one of colour 7, in raw order (digit 5 alike).
    assert split["train_colors"].tolist() == [2] + [3] * 18 + [7] + [2] + [5] * 18 + [7]
    assert split["train_digits"].tolist() == digits.tolist()


@pytest.mark.parametrize("name", ["train_digits", "train_colors", "test_digits", "test_colors"])
def test_a_cached_entry_holding_an_eleventh_digit_or_colour_is_rebuilt(synthetic_mnist, name):
    import json

    params = ColoredMNIST.make_params({"ratio": 95.0})
    ColoredMNIST.load(params, synthetic_mnist)
    (entry,) = (synthetic_mnist.cache_dir / "cmnist").iterdir()
    # An entry from before checksums (none to catch the change) whose labels hold the value 10.
    meta = json.loads((entry / "meta.json").read_text())
    for spec in meta["arrays"].values():
        del spec["checksum"]
    (entry / "meta.json").write_text(json.dumps(meta))
    labels = np.load(entry / f"{name}.npy")
    labels[0] = 10
    np.save(entry / f"{name}.npy", labels)
    data = ColoredMNIST.load(params, synthetic_mnist)
    split = data.train if name.startswith("train") else data.test
    assert int(split.targets.max()) == 9 and int(split.biases.max()) == 9  # rebuilt, not trained on


def test_missing_mnist_message_names_the_files_and_both_ways_to_point_at_them(tmp_path):
    paths = DataPaths(data_root=tmp_path / "nothing", cache_dir=tmp_path / "cache", allow_download=False)
    with pytest.raises(DataNotFoundError) as error:
        load_mnist(paths, train=True)
    message = str(error.value)
    assert message.startswith(f"MNIST not found under {tmp_path / 'nothing' / 'MNIST' / 'raw'}")
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert name in message
    assert message.endswith(
        "point the suite at a directory that has them with --data-root DIR or the DEBIAS_DATA_ROOT environment variable"
    )
