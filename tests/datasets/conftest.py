"""Fixtures shared by several test files in tests/datasets."""

import numpy as np
import pytest
from corruptions_kit import N
from image_table_kit import Folder
from scipy import ndimage

import debiasbench.datasets.cmnist as cmnist
from debiasbench.datasets.base import DataPaths


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Smooth random colour images with edges and saturated corners (a stand-in for CIFAR)."""
    rng = np.random.default_rng(123)
    base = rng.integers(0, 256, size=(N, 8, 8, 3)).astype(np.float64)
    smooth = ndimage.zoom(base, (1, 4, 4, 1), order=1)
    smooth[:, :4, :4] = 255
    smooth[:, -4:, -4:] = 0
    return np.clip(smooth, 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    return Folder(tmp_path)


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
