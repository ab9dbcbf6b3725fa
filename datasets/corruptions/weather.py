"""The 20 corruptions of Corrupted CIFAR-10 types 1 and 2 (SPEC 2.2), with the CIFAR-10-C
32x32 constants of Hendrycks & Dietterich, re-implemented on NumPy/SciPy/OpenCV/Pillow and
vectorised across a batch where the math allows.

Conventions
- Input and output: uint8 arrays (N, 32, 32, 3), HWC, RGB.
- Randomness: one `numpy.random.Generator` per image (see `image_rngs`), so an image's corruption
  depends only on (data seed, split, index), never on batching or on the number of workers.
- Float results in [0, 255] become uint8 by TRUNCATION (`astype(np.uint8)`), exactly as the
  reference does (`np.uint8` of a float array). JPEG and Pixelate are uint8 all the way (Pillow).
  Motion Blur is ROUNDED: the reference's result there is an 8-bit PNG written by ImageMagick.
- Severity is the CIFAR-10-C severity 1..5; the paper's difficulty k uses severity k + 1.

Where this differs from the reference (deliberately, and only in these ways)
- The random numbers come from a different generator (per-image PCG64 streams), so individual
  images differ from the reference's; the distributions are the same.
- Motion Blur (and Snow's motion-blurred layer) is ImageMagick's MotionBlurImage algorithm
  re-implemented as a line kernel (one-sided Gaussian weights over 2*radius+1 taps, offsets
  rounded along the angle, edge pixels repeated), instead of calling ImageMagick through Wand.
- Glass Blur reproduces what the reference's loop actually does: its tuple "swap" of two numpy
  views copies the neighbour into the pixel and leaves the neighbour unchanged, and the
  neighbour offsets are drawn from {-1, 0} (`randint(-1, 1)`); that makes one pass a gather,
  which is computed for all pixels at once.
- Frost loads and resizes each texture once per process instead of once per image.
- Brightness and Saturate use the closed form of scikit-image's rgb2hsv -> change -> hsv2rgb round
  trip (see their docstrings); it equals the round trip up to float rounding, which after
  truncation moves a small fraction of values by one level (measured: at most 1 level, <3%).
- Elastic samples with our own bilinear interpolation with scipy's "reflect" boundary (equal to
  map_coordinates(order=1, mode="reflect") up to float rounding).
- Spatter: if no pixel of an image's liquid layer survives the threshold, the reference divides
  0 by 0 (NaN); here that image is left unchanged. Liquid values above 1 are clipped before the
  uint8 conversion instead of wrapping around (neither happens at the constants used here in
  practice).
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage, sparse

SIZE = 32
SEVERITIES = (1, 2, 3, 4, 5)

TYPE1 = ("Snow", "Frost", "Fog", "Brightness", "Contrast", "Spatter", "Elastic", "JPEG", "Pixelate", "Saturate")
TYPE2 = ("GaussianNoise", "ShotNoise", "ImpulseNoise", "SpeckleNoise", "GaussianBlur", "DefocusBlur",
         "GlassBlur", "MotionBlur", "ZoomBlur", "Original")
CORRUPTION_TYPES = {1: TYPE1, 2: TYPE2}

# CIFAR-10-C constants, indexed by severity - 1 (SPEC 2.2).
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT_NOISE = (500, 250, 100, 75, 50)
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)
SPECKLE_NOISE = (0.06, 0.10, 0.12, 0.16, 0.20)
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))  # sigma, max_delta, iterations
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))  # radius, alias_blur
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))  # radius, sigma
ZOOM_BLUR_END = (1.06, 1.11, 1.16, 1.21, 1.26)  # np.arange(1, end, 0.01), as the reference
SNOW = ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # image weight, frost weight
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))  # strength, wibble decay
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
JPEG_QUALITY = (80, 65, 58, 50, 40)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
ELASTIC = tuple((SIZE * a, SIZE * s, SIZE * f) for a, s, f in
                ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)))
SPATTER = ((0.62, 0.1, 0.7, 0.7, 0.5, "water"), (0.65, 0.1, 0.8, 0.7, 0.5, "water"), (0.65, 0.3, 1, 0.69, 0.5, "water"),
           (0.65, 0.1, 0.7, 0.69, 0.6, "mud"), (0.65, 0.1, 0.5, 0.68, 0.6, "mud"))

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # the reference draws these 5 of 6
FROST_SCALE = 0.2
WATER_COLOR = np.array([175, 238, 238], np.float32) / 255.0  # pale turquoise (RGB)
MUD_COLOR = np.array([63, 42, 20], np.float32) / 255.0
SPATTER_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)

_STREAM_CORRUPTION = 2  # distinct from the bias-assignment streams of datasets/_bias users


def image_rngs(data_seed: int, split_code: int, indices: Sequence[int] | np.ndarray) -> list[np.random.Generator]:
    """One independent generator per image, seeded by (data seed, split, image index)."""
    return [np.random.default_rng([int(data_seed), int(split_code), _STREAM_CORRUPTION, int(i)]) for i in indices]


# ----------------------------------------------------------------------------------------------
# helpers


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


@lru_cache(maxsize=None)
def _zoom_matrix(factor: float) -> np.ndarray:
    """The reference's clipped_zoom along one axis as a (32, 32) matrix: centre crop of ceil(32/z)
    pixels, scipy.ndimage.zoom with order 1, centre trim back to 32. Built by zooming the identity,
    so scipy's exact sampling grid is kept; the 2-D zoom of X is A @ X @ A.T."""
    crop = int(np.ceil(SIZE / factor))
    top = (SIZE - crop) // 2
    basis = np.eye(SIZE)[top:top + crop]  # (crop, 32): row r picks input pixel top + r
    zoomed = ndimage.zoom(basis, (factor, 1), order=1)
    trim = (zoomed.shape[0] - SIZE) // 2
    return zoomed[trim:trim + SIZE]


def _zoom_factors(severity: int) -> np.ndarray:
    # np.arange with a float step, as the reference: 7, 12, 16, 21, 26 factors by severity.
    return np.arange(1, ZOOM_BLUR_END[severity - 1], 0.01)


@lru_cache(maxsize=None)
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
    weights = np.exp(-(taps ** 2) / (2.0 * sigma * sigma))
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
            target += weight * source[top:top + h, left:left + w]
    return out


# ----------------------------------------------------------------------------------------------
# type 2: noise and blur


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
        x[:, inner[0]:inner[-1] + 1, inner[0]:inner[-1] + 1] = x[batch, rows, cols]
    return _to_uint8(_blur(x / 255.0, sigma))


@lru_cache(maxsize=None)
def defocus_kernel(severity: int) -> np.ndarray:
    """The reference's anti-aliased disk (17x17 grid, 3x3 Gaussian blur), cropped to its non-zero
    support (the cropped rows and columns are exactly zero, so filtering is unchanged)."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    grid = np.arange(-8, 8 + 1)
    yy, xx = np.meshgrid(grid, grid)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    kernel = cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias_blur)
    rows, cols = np.nonzero(kernel)
    return kernel[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


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


def original(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    return images.copy()


# ----------------------------------------------------------------------------------------------
# type 1: weather, digital and colour


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
        values = noise[:, used:used + count].reshape(mean.shape)
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


_ELASTIC_POINTS = np.float32([[SIZE // 2 + SIZE // 3] * 2,
                              [SIZE // 2 + SIZE // 3, SIZE // 2 - SIZE // 3],
                              [SIZE // 2 - SIZE // 3] * 2])


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
    shifts = (ndimage.gaussian_filter(fields, (0, 0, sigma, sigma), mode="reflect", truncate=3) * alpha)
    shifts = shifts.astype(np.float32)
    grid = np.arange(SIZE, dtype=np.float32)
    rows = grid[None, :, None] + shifts[:, 1]
    cols = grid[None, None, :] + shifts[:, 0]
    return _to_uint8(bilinear_reflect(warped, rows, cols))


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


# ----------------------------------------------------------------------------------------------
# registry and entry points


@dataclass(frozen=True)
class Corruption:
    name: str
    function: Callable[[np.ndarray, int, Sequence[np.random.Generator]], np.ndarray]
    random: bool  # False: a deterministic function of the image


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c for c in (
        Corruption("GaussianNoise", gaussian_noise, True),
        Corruption("ShotNoise", shot_noise, True),
        Corruption("ImpulseNoise", impulse_noise, True),
        Corruption("SpeckleNoise", speckle_noise, True),
        Corruption("GaussianBlur", gaussian_blur, False),
        Corruption("DefocusBlur", defocus_blur, False),
        Corruption("GlassBlur", glass_blur, True),
        Corruption("MotionBlur", motion_blur, True),
        Corruption("ZoomBlur", zoom_blur, False),
        Corruption("Original", original, False),
        Corruption("Snow", snow, True),
        Corruption("Frost", frost, True),
        Corruption("Fog", fog, True),
        Corruption("Brightness", brightness, False),
        Corruption("Contrast", contrast, False),
        Corruption("Spatter", spatter, True),
        Corruption("Elastic", elastic, True),
        Corruption("JPEG", jpeg, False),
        Corruption("Pixelate", pixelate, False),
        Corruption("Saturate", saturate, False),
    )
}


def corruption_names(kind: int) -> tuple[str, ...]:
    """The ten corruptions of Corrupted CIFAR-10 type `kind` (1 or 2), in bias-value order."""
    if kind not in CORRUPTION_TYPES:
        raise ValueError(f"unknown Corrupted CIFAR-10 type {kind!r}: choose 1 or 2")
    return CORRUPTION_TYPES[kind]


def get_corruption(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        close = difflib.get_close_matches(name, list(CORRUPTIONS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown corruption {name!r}.{hint} Valid corruptions: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ValueError(f"invalid severity {severity!r}: CIFAR-10-C severities are 1..5 "
                         "(the paper's difficulty k is severity k + 1)")
    return int(severity)


def corrupt(images: np.ndarray, name: str, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Apply one corruption to a batch: uint8 (N, 32, 32, 3) in, uint8 (N, 32, 32, 3) out; `rngs`
    holds one generator per image (see `image_rngs`)."""
    corruption = get_corruption(name)
    severity = check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"corruptions take uint8 images of shape (N, {SIZE}, {SIZE}, 3); got "
                         f"{images.dtype} {images.shape}")
    if len(rngs) != len(images):
        raise ValueError(f"need one generator per image: {len(rngs)} generators for {len(images)} images")
    if len(images) == 0:
        return images.copy()
    out = corruption.function(np.ascontiguousarray(images), severity, rngs)
    return np.ascontiguousarray(out, dtype=np.uint8)


def warm_up(names: Sequence[str]) -> None:
    """Do the one-off work (the frost textures) once, before worker processes fork."""
    if "Frost" in names:
        frost_textures()


def corrupt_chunk(images: np.ndarray, labels: np.ndarray, names: Sequence[str], severity: int,
                  data_seed: int, split_code: int, start: int) -> np.ndarray:
    """Corrupt images[i] with names[labels[i]]; image i has global index start + i (which seeds it).
    A top-level function so worker processes can run it."""
    cv2.setNumThreads(1)  # parallelism comes from the worker processes
    out = np.empty_like(images)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        rngs = image_rngs(data_seed, split_code, start + members)
        out[members] = corrupt(images[members], names[int(value)], severity, rngs)
    return out
