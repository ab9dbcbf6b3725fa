"""Golden outputs of the dataset generators: the exact arrays a small fixed configuration produces.

The expectations are literal digests and pixel values, not recomputed from the generators' constants
(palette, colour noise, input scaling, split seeds, corruption parameters), so any change to the
generated data fails here. Such a change must bump the family's `generator_version` (it is part of
every trial key and cache key) and then update the digests below in the same commit.

Colored MNIST and Corrupted CIFAR-10 run on small synthetic raw data (no download, well under a
second); one Colored MNIST configuration also runs on the real MNIST under the data root."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import debiasbench.datasets.cmnist as cmnist
from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.ccifar import CorruptedCIFAR10Type1, CorruptedCIFAR10Type2
from debiasbench.datasets.cmnist import ColoredMNIST


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        for part in (name, str(array.dtype), str(array.shape)):
            h.update(part.encode())
        h.update(array.tobytes())
    return h.hexdigest()


def synthetic_grey_digits(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in raw MNIST: random 4 x 4 grey images and shuffled digit labels."""
    rng = np.random.default_rng(seed)
    digits = np.repeat(np.arange(10), per_class)
    rng.shuffle(digits)
    return rng.integers(0, 256, size=(len(digits), 4, 4), dtype=np.uint8), digits


@pytest.fixture
def synthetic_mnist(monkeypatch, tmp_path) -> DataPaths:
    monkeypatch.setattr(
        cmnist, "load_mnist", lambda paths, train: synthetic_grey_digits(20 if train else 6, 1 if train else 2)
    )
    return DataPaths(tmp_path, tmp_path / "cache")


def test_the_ten_palette_colours_on_a_white_pixel():
    white = np.full((10, 1, 1), 255, np.uint8)
    out = cmnist.colorize(white, np.arange(10), 0.0, np.random.default_rng(0))
    assert out[:, :, 0, 0].tolist() == [
        [250, 79, 42],
        [252, 233, 89],
        [171, 117, 147],
        [199, 212, 153],
        [22, 198, 250],
        [81, 245, 113],
        [6, 60, 193],
        [141, 25, 194],
        [52, 100, 4],
        [212, 51, 68],
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"ratio": 99.5, "difficulty": 4}, "13246e0bf51b1bd855aff5bd65b622308b57e93111f2097bd3de63c8450c8554"),
        ({"ratio": 95.0, "difficulty": 1}, "312e02ceaf73b25186b6133bda11e28246270b629f19735c35a28222a0bcd67b"),
        (
            {"ratio": 99.0, "difficulty": 2, "unbiased_train": True},
            "7d1239fdfacc1c3da80db1ea6c64a1be8ec353c645c43cd553ced2bb45b0c113",
        ),
        (
            {"ratio": 98.0, "difficulty": 3, "assignment": "random"},
            "4cc55eb6e246aa3cf2e66cff42297bf10e796c36abb72d2d430c7f9a1ff1cc30",
        ),
    ],
)
def test_colored_mnist_arrays_are_pinned(synthetic_mnist, params, expected):
    config = ColoredMNIST.canonical(ColoredMNIST.make_params(params))
    assert ColoredMNIST.generator_version == "2", "bump the digests below together with the version"
    assert digest(ColoredMNIST.arrays(config, synthetic_mnist, 3)) == expected


@pytest.mark.parametrize(("scaling", "scale"), [("reference", 1 / 65025), ("unit", 1 / 255)])
def test_colored_mnist_input_scaling(synthetic_mnist, scaling, scale):
    # The reference stores [0, 1] inputs and its MLP divides by 255 again: 1 / 255^2 = 1 / 65025.
    data = ColoredMNIST.load(ColoredMNIST.make_params({"input_scaling": scaling}), synthetic_mnist)
    assert data.input_spec.scale == pytest.approx(scale, rel=1e-12)


@pytest.mark.real_data
def test_colored_mnist_on_real_mnist_is_pinned(mnist_paths):
    config = ColoredMNIST.canonical(ColoredMNIST.make_params({"ratio": 99.5, "difficulty": 4}))
    assert digest(ColoredMNIST.arrays(config, mnist_paths, 0)) == (
        "7218b43bb859ba82aa867a4e0bbe8fc62c407b2f7bd0404043732765002dab41"
    )


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (CorruptedCIFAR10Type1, "347aebb108942912b593a985d61513c2b301886ee0ae8c508bff101034939dd0"),
        (CorruptedCIFAR10Type2, "125c05c6289e810f7fab69b9d9ffadcccbddb73021591f32d60eb971603a581c"),
    ],
)
def test_corrupted_cifar10_arrays_are_pinned(cls, expected):
    rng = np.random.default_rng(5)
    train = (rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 3))
    test = (rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 2))
    params = cls.make_params({"ratio": 95.0, "difficulty": 4})
    assert cls.generator_version == "2", "bump the digests together with the version"
    assert digest(cls.generate(params, train, test, data_seed=1, workers=1, progress=False)) == expected


def test_the_digest_sees_every_byte():
    a = {"x": np.zeros(4, np.uint8)}
    b = {"x": np.array([0, 0, 0, 1], np.uint8)}
    assert digest(a) != digest(b) and digest(a) != digest({"x": np.zeros(4, np.int64)})
