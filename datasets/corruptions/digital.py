"""Type 1 digital and colour corruptions: brightness, contrast and saturation (closed forms of
scikit-image's HSV round trip), JPEG compression and pixelation (Pillow, uint8 throughout) and
the elastic transform (an affine warp, then a smoothed random displacement field sampled with
bilinear interpolation and reflection at the border)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

from debiasbench.datasets.corruptions.arrays import _to_uint8, _unit
from debiasbench.datasets.corruptions.constants import (
    BRIGHTNESS,
    CONTRAST,
    ELASTIC,
    JPEG_QUALITY,
    PIXELATE,
    SATURATE,
    SIZE,
)


def brightness(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """HSV value + c (clipped), in closed form: with hue and saturation fixed, RGB scales with the
    value V = max(R, G, B), so RGB' = RGB * V'/V; black (V = 0, S = H = 0) becomes grey V'. Equal to
    scikit-image's rgb2hsv/hsv2rgb round trip up to float rounding, and several times faster."""
    x = _unit(images)
    value = x.max(axis=-1, keepdims=True)
    new_value = np.minimum(value + BRIGHTNESS[severity - 1], 1.0)
    ratio = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    return _to_uint8(np.where(value > 0, x * ratio, new_value))


def contrast(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    x = _unit(images)
    means = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return _to_uint8((x - means) * CONTRAST[severity - 1] + means)


def saturate(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """HSV saturation * a + b (clipped), in closed form: with hue and value fixed, each channel is
    V * (1 - S * w) where w = (V - channel) / (V - min) depends on the hue only, so the new channel
    is V * (1 - S' * w). A grey pixel (S = 0) has hue 0 (red), so it becomes (V, V(1-S'), V(1-S')),
    as in scikit-image's round trip, which this equals up to float rounding."""
    scale, shift = SATURATE[severity - 1]
    x = _unit(images)
    value = x.max(axis=-1, keepdims=True)
    spread = value - x.min(axis=-1, keepdims=True)
    sat = np.divide(spread, value, out=np.zeros_like(value), where=value > 0)
    new_sat = np.clip(sat * scale + shift, 0, 1)
    weight = np.divide(value - x, spread, out=np.zeros_like(x), where=spread > 0)
    grey = np.concatenate([value, value * (1 - new_sat), value * (1 - new_sat)], axis=-1)
    return _to_uint8(np.where(spread > 0, value * (1 - new_sat * weight), grey))


def jpeg(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    quality = JPEG_QUALITY[severity - 1]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer))
    return out


def pixelate(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    small = int(SIZE * PIXELATE[severity - 1])
    out = np.empty_like(images)
    for i, image in enumerate(images):
        down = Image.fromarray(image).resize((small, small), Image.BOX)
        out[i] = np.asarray(down.resize((SIZE, SIZE), Image.BOX))
    return out


def reflect_coordinates(coords: np.ndarray, size: int) -> np.ndarray:
    """Map sample coordinates into [-0.5, size - 0.5] by half-sample symmetric reflection (scipy's
    "reflect" mode: ... 1 0 | 0 1 ... size-1 | size-1 size-2 ...)."""
    period = 2 * size
    folded = np.mod(coords + 0.5, period) - 0.5
    return np.where(folded > size - 0.5, period - 1 - folded, folded)


def bilinear_reflect(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """scipy.ndimage.map_coordinates(order=1, mode="reflect") of each (H, W, C) image of a batch at
    per-image sample positions rows, cols (N, H', W'), for all channels at once."""
    n, h, w, c = images.shape
    rows = reflect_coordinates(rows.astype(np.float64), h)
    cols = reflect_coordinates(cols.astype(np.float64), w)
    top, left = np.floor(rows), np.floor(cols)
    fy, fx = (rows - top).ravel(), (cols - left).ravel()
    # Within half a pixel of the border both neighbours are the edge pixel (the reflection).
    top0, left0 = np.clip(top, 0, h - 1).astype(np.intp), np.clip(left, 0, w - 1).astype(np.intp)
    top1, left1 = np.clip(top + 1, 0, h - 1).astype(np.intp), np.clip(left + 1, 0, w - 1).astype(np.intp)
    base = (np.arange(n) * (h * w))[:, None, None]
    corners = [(base + r * w + q).ravel() for r in (top0, top1) for q in (left0, left1)]
    weights = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]
    # One flat plane per channel: np.take on a 1-D array is much faster than 3-index fancy indexing.
    planes = np.ascontiguousarray(images.transpose(3, 0, 1, 2), dtype=np.float64).reshape(c, -1)
    out = np.empty((c, rows.size))
    for channel, plane in enumerate(planes):
        out[channel] = sum(plane.take(index) * weight for index, weight in zip(corners, weights))
    return out.reshape((c,) + rows.shape).transpose(1, 2, 3, 0)


_ELASTIC_POINTS = np.float32(
    [[SIZE // 2 + SIZE // 3] * 2, [SIZE // 2 + SIZE // 3, SIZE // 2 - SIZE // 3], [SIZE // 2 - SIZE // 3] * 2]
)


def elastic(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    alpha, sigma, affine = ELASTIC[severity - 1]
    n = len(images)
    x = _unit(images, np.float32)
    warped = np.empty_like(x)
    fields = np.empty((n, 2, SIZE, SIZE))
    for i, rng in enumerate(rngs):
        moved = _ELASTIC_POINTS + rng.uniform(-affine, affine, size=_ELASTIC_POINTS.shape).astype(np.float32)
        matrix = cv2.getAffineTransform(_ELASTIC_POINTS, moved)
        warped[i] = cv2.warpAffine(x[i], matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT_101)
        fields[i] = rng.uniform(-1, 1, size=(2, SIZE, SIZE))  # dx noise, then dy noise
    shifts = ndimage.gaussian_filter(fields, (0, 0, sigma, sigma), mode="reflect", truncate=3) * alpha
    shifts = shifts.astype(np.float32)
    grid = np.arange(SIZE, dtype=np.float32)
    rows = grid[None, :, None] + shifts[:, 1]
    cols = grid[None, None, :] + shifts[:, 0]
    return _to_uint8(bilinear_reflect(warped, rows, cols))
