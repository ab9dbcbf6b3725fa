"""Type 2 noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from debiasbench.datasets.corruptions.arrays import _stack, _to_uint8, _unit
from debiasbench.datasets.corruptions.constants import GAUSSIAN_NOISE, IMPULSE_NOISE, SHOT_NOISE, SPECKLE_NOISE


def gaussian_noise(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    c = GAUSSIAN_NOISE[severity - 1]
    noise = _stack(rngs, lambda r: r.standard_normal(images.shape[1:]))
    return _to_uint8(_unit(images) + noise * c)


def shot_noise(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    c = SHOT_NOISE[severity - 1]
    rates = _unit(images) * c
    counts = np.stack([rng.poisson(rate) for rng, rate in zip(rngs, rates)])
    return _to_uint8(counts / c)


def impulse_noise(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Salt and pepper as skimage.util.random_noise(mode="s&p"): each value independently is replaced
    with probability `amount`, by 1 or 0 with equal probability."""
    amount = IMPULSE_NOISE[severity - 1]
    draws = _stack(rngs, lambda r: r.random((2,) + images.shape[1:]))
    flipped, salt = draws[:, 0] < amount, draws[:, 1] < 0.5
    x = _unit(images)
    x[flipped & salt] = 1.0
    x[flipped & ~salt] = 0.0
    return _to_uint8(x)


def speckle_noise(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    c = SPECKLE_NOISE[severity - 1]
    x = _unit(images)
    noise = _stack(rngs, lambda r: r.standard_normal(images.shape[1:]))
    return _to_uint8(x + x * noise * c)
