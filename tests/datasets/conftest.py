"""Fixtures shared by several test files in tests/datasets."""

import numpy as np
import pytest
from corruptions_kit import N
from image_table_kit import Folder
from scipy import ndimage


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
