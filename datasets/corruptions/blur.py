"""Type 2 blur corruptions: Gaussian, glass, defocus, motion and zoom blur, plus the centre-zoom
matrix and the line-kernel motion blur that Snow reuses. Motion Blur is ImageMagick's
MotionBlurImage re-implemented as a line kernel; Glass Blur is the reference's loop computed as
one gather per pass (see the package docstring for both)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np
from scipy import ndimage, sparse

from debiasbench.datasets.corruptions.arrays import _blur, _stack, _to_uint8, _unit
from debiasbench.datasets.corruptions.constants import (
    DEFOCUS_BLUR,
    GAUSSIAN_BLUR,
    GLASS_BLUR,
    MOTION_BLUR,
    SIZE,
    ZOOM_BLUR_END,
)


@cache
def _zoom_matrix(factor: float) -> np.ndarray:
    """The reference's clipped_zoom along one axis as a (32, 32) matrix: centre crop of ceil(32/z)
    pixels, scipy.ndimage.zoom with order 1, centre trim back to 32. Built by zooming the identity,
    so scipy's exact sampling grid is kept; the 2-D zoom of X is A @ X @ A.T."""
    crop = int(np.ceil(SIZE / factor))
    top = (SIZE - crop) // 2
    basis = np.eye(SIZE)[top : top + crop]  # (crop, 32): row r picks input pixel top + r
    zoomed = ndimage.zoom(basis, (factor, 1), order=1)
    trim = (zoomed.shape[0] - SIZE) // 2
    return zoomed[trim : trim + SIZE]


def _zoom_factors(severity: int) -> np.ndarray:
    # np.arange with a float step, as the reference: 7, 12, 16, 21, 26 factors by severity.
    return np.arange(1, ZOOM_BLUR_END[severity - 1], 0.01)


@cache
def _zoom_blur_operator(severity: int) -> sparse.csr_matrix:
    """Mean of the image and its centre zooms, as one sparse (1024, 1024) operator on a flattened channel."""
    factors = _zoom_factors(severity)
    total = sparse.identity(SIZE * SIZE, format="csr")
    for factor in factors:
        a = sparse.csr_matrix(_zoom_matrix(float(factor)))
        total = total + sparse.kron(a, a, format="csr")
    total.eliminate_zeros()
    return (total / (len(factors) + 1)).tocsr()


def _motion_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageMagick's MotionBlurImage kernel: weights over width = 2*ceil(radius)+1 taps (one-sided
    Gaussian) and the integer (dy, dx) offset of each tap along `angle` degrees."""
    width = int(2 * math.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    weights = np.exp(-(taps**2) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    point_x = width * math.sin(math.radians(angle))
    point_y = width * math.cos(math.radians(angle))
    norm = math.hypot(point_x, point_y)
    dx = np.ceil(taps * point_y / norm - 0.5).astype(np.int64)
    dy = np.ceil(taps * point_x / norm - 0.5).astype(np.int64)
    return weights, dy, dx


def motion_blur_batch(images: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """Line-kernel motion blur of a float batch (N, H, W, C), one angle per image:
    out(y, x) = sum_i w_i * in(y + dy_i, x + dx_i), with edge pixels repeated outside the image.
    Shifted slices of one edge-padded array (a dense 2-D kernel would be mostly zeros)."""
    n, h, w, _ = images.shape
    kernels = [_motion_kernel(radius, sigma, float(a)) for a in angles]
    pad = len(kernels[0][0]) - 1
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.zeros(images.shape, dtype=np.float64)
    for target, source, (weights, dy, dx) in zip(out, padded, kernels):
        for weight, top, left in zip(weights.tolist(), (pad + dy).tolist(), (pad + dx).tolist()):
            target += weight * source[top : top + h, left : left + w]
    return out


def gaussian_blur(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    return _to_uint8(_blur(_unit(images), GAUSSIAN_BLUR[severity - 1]))


def glass_blur(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    sigma, delta, iterations = GLASS_BLUR[severity - 1]  # delta is 1 at every severity
    x = (_blur(_unit(images), sigma) * 255).astype(np.uint8)
    # The reference visits rows and columns 31 down to 2 and draws each pixel's (dx, dy) with
    # randint(-1, 1), i.e. from {-1, 0}: the source pixel is above/left of (or at) the visited one,
    # hence not yet visited in this pass, so a pass is one gather from the previous pass's image.
    inner = np.arange(delta + 1, SIZE - delta + 1)
    offsets = _stack(rngs, lambda r: r.integers(-delta, delta, size=(iterations, 2, len(inner), len(inner))))
    batch = np.arange(len(images))[:, None, None]
    for it in range(iterations):
        rows = inner[None, :, None] + offsets[:, it, 0]
        cols = inner[None, None, :] + offsets[:, it, 1]
        x[:, inner[0] : inner[-1] + 1, inner[0] : inner[-1] + 1] = x[batch, rows, cols]
    return _to_uint8(_blur(x / 255.0, sigma))


@cache
def defocus_kernel(severity: int) -> np.ndarray:
    """The reference's anti-aliased disk (17x17 grid, 3x3 Gaussian blur), cropped to its non-zero
    support (the cropped rows and columns are exactly zero, so filtering is unchanged)."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    grid = np.arange(-8, 8 + 1)
    yy, xx = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= disk.sum()
    kernel = cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias_blur)
    rows, cols = np.nonzero(kernel)
    return kernel[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def defocus_blur(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    kernel = defocus_kernel(severity).astype(np.float64)
    # cv2.filter2D's default border (reflect-101) is scipy's "mirror".
    out = ndimage.correlate(_unit(images), kernel[None, :, :, None], mode="mirror")
    return _to_uint8(out)


def motion_blur(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    radius, sigma = MOTION_BLUR[severity - 1]
    angles = np.array([rng.uniform(-45, 45) for rng in rngs])
    out = motion_blur_batch(images.astype(np.float64), radius, sigma, angles)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def zoom_blur(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    n = len(images)
    channels = _unit(images, np.float32).transpose(1, 2, 0, 3).reshape(SIZE * SIZE, n * 3)
    out = _zoom_blur_operator(severity) @ channels
    return _to_uint8(np.asarray(out).reshape(SIZE, SIZE, n, 3).transpose(2, 0, 1, 3))
