"""Type 1 weather corruptions: snow, frost, fog (a plasma fractal) and spatter (water or mud).
Frost's textures ship with the imagecorruptions package and are loaded and resized once per
process (`frost_textures`; `warm_up` loads them before worker processes fork)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from debiasbench.datasets.corruptions.arrays import _blur, _stack, _to_uint8, _unit
from debiasbench.datasets.corruptions.blur import _zoom_matrix, motion_blur_batch
from debiasbench.datasets.corruptions.constants import (
    FOG,
    FROST,
    FROST_FILES,
    FROST_SCALE,
    MUD_COLOR,
    SIZE,
    SNOW,
    SPATTER,
    SPATTER_KERNEL,
    WATER_COLOR,
)


def snow(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    x = _unit(images, np.float32)
    layer = _stack(rngs, lambda r: r.normal(loc, scale, size=(SIZE, SIZE)))
    angles = np.array([rng.uniform(-135, -45) for rng in rngs])
    a = _zoom_matrix(float(zoom))
    layer = a @ layer @ a.T
    layer[layer < threshold] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)  # the reference saves it as an 8-bit image
    blurred = motion_blur_batch(layer8[..., None].astype(np.float64), radius, sigma, angles)
    layer = np.clip(np.rint(blurred), 0, 255) / 255.0  # ... and reads ImageMagick's 8-bit result back
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)  # cv2 RGB2GRAY
    x = blend * x + (1 - blend) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    return _to_uint8(x + layer + layer[:, ::-1, ::-1])


@lru_cache(maxsize=1)
def frost_textures() -> tuple[np.ndarray, ...]:
    """The five frost textures the reference draws from, RGB uint8, resized by 0.2 (once per process)."""
    directory = frost_directory()
    textures = []
    for name in FROST_FILES:
        bgr = cv2.imread(str(directory / name))
        if bgr is None:
            raise FileNotFoundError(f"cannot read frost texture {directory / name}; reinstall imagecorruptions-imaug")
        textures.append(np.ascontiguousarray(cv2.resize(bgr, (0, 0), fx=FROST_SCALE, fy=FROST_SCALE)[..., ::-1]))
    return tuple(textures)


def frost_directory() -> Path:
    """The frost images shipped by the `imagecorruptions` package (found without importing it)."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the Frost corruption needs the frost texture images of the imagecorruptions package: "
            "pip install imagecorruptions-imaug"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "frost"


def frost(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    image_weight, frost_weight = FROST[severity - 1]
    textures = frost_textures()
    crops = np.empty_like(images)
    which = np.array([rng.integers(len(textures)) for rng in rngs])
    starts = np.zeros((len(images), 2), dtype=np.int64)
    for i, (rng, t) in enumerate(zip(rngs, which)):
        height, width = textures[t].shape[:2]
        starts[i] = rng.integers(0, height - SIZE), rng.integers(0, width - SIZE)
    offsets = np.arange(SIZE)
    for t, texture in enumerate(textures):
        chosen = np.flatnonzero(which == t)
        if len(chosen):
            rows = starts[chosen, 0][:, None, None] + offsets[None, :, None]
            cols = starts[chosen, 1][:, None, None] + offsets[None, None, :]
            crops[chosen] = texture[rows, cols]
    out = np.clip(image_weight * images.astype(np.float64) + frost_weight * crops, 0, 255)
    return out.astype(np.uint8)


def plasma_fractal(noise: np.ndarray, wibble_decay: float) -> np.ndarray:
    """Diamond-square height maps (N, 32, 32) in [0, 1] on a torus, as the reference's plasma_fractal,
    for a batch. `noise` (N, 1023) holds each image's uniform draws in [-1, 1), consumed per level as
    squares, then the two diamond sets; the reference's perturbation wibble * U(-wibble, wibble) is
    wibble**2 * U(-1, 1)."""
    n = len(noise)
    grid = np.zeros((n, SIZE, SIZE))
    step, wibble, used = SIZE, 100.0, 0

    def perturb(mean: np.ndarray) -> np.ndarray:
        nonlocal used
        count = mean.shape[1] * mean.shape[2]
        values = noise[:, used : used + count].reshape(mean.shape)
        used += count
        return mean / 4 + wibble * wibble * values

    while step >= 2:
        half = step // 2
        corners = grid[:, 0::step, 0::step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares = squares + np.roll(squares, -1, axis=2)
        grid[:, half::step, half::step] = perturb(squares)
        centres = grid[:, half::step, half::step]
        corners = grid[:, 0::step, 0::step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        grid[:, 0::step, half::step] = perturb(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        grid[:, half::step, 0::step] = perturb(top)
        step //= 2
        wibble /= wibble_decay
    grid -= grid.min(axis=(1, 2), keepdims=True)
    return grid / grid.max(axis=(1, 2), keepdims=True)


PLASMA_DRAWS = SIZE * SIZE - 1  # every cell but the (0, 0) corner gets one perturbation


def fog(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    strength, decay = FOG[severity - 1]
    noise = _stack(rngs, lambda r: r.random(PLASMA_DRAWS)) * 2.0 - 1.0
    x = _unit(images)
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + strength * plasma_fractal(noise, decay)[..., None]
    return _to_uint8(x * max_val / (max_val + strength))


def spatter(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    loc, scale, sigma, threshold, intensity, mode = SPATTER[severity - 1]
    x = _unit(images, np.float32)
    liquid = _blur(_stack(rngs, lambda r: r.normal(loc, scale, size=(SIZE, SIZE))), sigma)
    liquid[liquid < threshold] = 0
    if mode == "water":
        liquid8 = (np.clip(liquid, 0, 1) * 255).astype(np.uint8)
        dist = np.empty(liquid8.shape, np.float32)
        for i, layer in enumerate(liquid8):
            d = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
            _, d = cv2.threshold(d, 20, 20, cv2.THRESH_TRUNC)
            d = cv2.equalizeHist(cv2.blur(d, (3, 3)).astype(np.uint8))
            d = cv2.filter2D(d, cv2.CV_8U, SPATTER_KERNEL)
            dist[i] = cv2.blur(d, (3, 3))
        m = liquid8.astype(np.float32) * dist
        peak = m.max(axis=(1, 2), keepdims=True)
        m = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0) * intensity
        return _to_uint8(x + m[..., None] * WATER_COLOR)
    m = _blur((liquid > threshold).astype(np.float32), intensity)
    m[m < 0.8] = 0
    m = m[..., None]
    return _to_uint8(x * (1 - m) + MUD_COLOR * m)
