"""Array helpers shared by the corruption families: uint8 <-> [0, 1] float conversion as the
reference does it (truncation), Gaussian filtering over the spatial axes of a batch, and stacking
one random draw per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage


def _unit(images: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    return images.astype(dtype) / dtype(255.0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats to uint8 as the reference: clip, scale by 255, truncate."""
    return (np.clip(unit, 0, 1) * 255).astype(np.uint8)


def _blur(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian over the two spatial axes of a batch (N, H, W[, C])."""
    sigmas = (0, sigma, sigma) + ((0,) if x.ndim == 4 else ())
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def _stack(rngs: Sequence[np.random.Generator], draw: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
    return np.stack([draw(rng) for rng in rngs])
