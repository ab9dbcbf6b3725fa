"""The CIFAR-10-C corruptions (docs/protocol.md#corrupted-cifar-10) with closed forms, against
direct evaluation of the reference formulas (to within one intensity level: the reference
truncates its float result to uint8, so a last-bit difference in the float can move a value by
one level), and the constants table."""

import colorsys
import io

import numpy as np
import pytest
from corruptions_kit import rngs
from PIL import Image
from scipy import ndimage

from debiasbench.datasets import corruptions as C


def assert_within_one_level(actual: np.ndarray, expected: np.ndarray) -> None:
    diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert diff.max() <= 1, f"max difference {diff.max()} levels"


def assert_truncated(actual: np.ndarray, unit: np.ndarray, eps: float = 1e-3) -> None:
    """actual == floor(clip(unit, 0, 1) * 255), allowing only values within eps of an integer to
    land on either side (float rounding). Rounding instead of truncating fails this."""
    value = np.clip(unit, 0, 1) * 255
    low, high = np.floor(value - eps), np.floor(value + eps)
    actual = actual.astype(np.float64)
    bad = (actual < np.clip(low, 0, 255)) | (actual > np.clip(high, 0, 255))
    assert not bad.any(), (
        f"{bad.sum()} values are not the truncated formula, e.g. {actual[bad][:3]} vs {value[bad][:3]}"
    )


def gaussian_kernel(sigma: float, truncate_at: float = 4.0) -> np.ndarray:
    radius = int(truncate_at * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * taps**2 / sigma**2)
    return weights / weights.sum()


def correlate_2d(image: np.ndarray, kernel: np.ndarray, pad_mode: str) -> np.ndarray:
    """Direct sum over kernel taps of a padded (H, W, C) image."""
    kh, kw = kernel.shape
    padded = np.pad(image, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode=pad_mode)
    out = np.zeros_like(image, dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            out += kernel[dy, dx] * padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out


# ---------------------------------------------------------------------------------------------
# constants (docs/protocol.md#corrupted-cifar-10, CIFAR-10-C severities 1..5)


def test_constants_are_the_cifar10c_table():
    assert C.GAUSSIAN_NOISE == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert C.SHOT_NOISE == (500, 250, 100, 75, 50)
    assert C.IMPULSE_NOISE == (0.01, 0.02, 0.03, 0.05, 0.07)
    assert C.SPECKLE_NOISE == (0.06, 0.10, 0.12, 0.16, 0.20)
    assert C.GAUSSIAN_BLUR == (0.4, 0.6, 0.7, 0.8, 1.0)
    assert C.GLASS_BLUR == ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
    assert C.DEFOCUS_BLUR == ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
    assert C.MOTION_BLUR == ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))
    assert C.ZOOM_BLUR_END == (1.06, 1.11, 1.16, 1.21, 1.26)
    assert C.SNOW == (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )
    assert C.FROST == ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
    assert C.FOG == ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))
    assert C.BRIGHTNESS == (0.05, 0.1, 0.15, 0.2, 0.3)
    assert C.CONTRAST == (0.75, 0.5, 0.4, 0.3, 0.15)
    assert C.SATURATE == ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))
    assert C.JPEG_QUALITY == (80, 65, 58, 50, 40)
    assert C.PIXELATE == (0.95, 0.9, 0.85, 0.75, 0.65)
    np.testing.assert_allclose(
        np.array(C.ELASTIC) / 32,
        [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
    )
    assert C.SPATTER == (
        (0.62, 0.1, 0.7, 0.7, 0.5, "water"),
        (0.65, 0.1, 0.8, 0.7, 0.5, "water"),
        (0.65, 0.3, 1, 0.69, 0.5, "water"),
        (0.65, 0.1, 0.7, 0.69, 0.6, "mud"),
        (0.65, 0.1, 0.5, 0.68, 0.6, "mud"),
    )


def test_float_results_are_truncated_not_rounded():
    # 0.7 of a level above 100 must give 100 (the reference's np.uint8 of a float array)
    np.testing.assert_array_equal(C._to_uint8(np.array([100.7, 254.99, 0.2]) / 255), [100, 254, 0])


# ---------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_contrast_formula(images, severity):
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    assert_truncated(C.corrupt(images, "Contrast", severity, rngs()), (x - means) * C.CONTRAST[severity - 1] + means)


def _hsv_map(images: np.ndarray, change) -> np.ndarray:
    """The HSV round trip pixel by pixel with the standard library's colorsys, in [0, 1]."""
    out = np.empty(images.shape)
    for index in np.ndindex(images.shape[:3]):
        h, s, v = colorsys.rgb_to_hsv(*(images[index] / 255.0))
        out[index] = colorsys.hsv_to_rgb(*change(h, s, v))
    return out


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_brightness_adds_to_hsv_value(images, severity):
    c = C.BRIGHTNESS[severity - 1]
    expected = _hsv_map(images[:3], lambda h, s, v: (h, s, min(max(v + c, 0), 1)))
    assert_truncated(C.corrupt(images[:3], "Brightness", severity, rngs(3)), expected)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_saturate_scales_hsv_saturation(images, severity):
    a, b = C.SATURATE[severity - 1]
    expected = _hsv_map(images[:3], lambda h, s, v: (h, min(max(s * a + b, 0), 1), v))
    assert_truncated(C.corrupt(images[:3], "Saturate", severity, rngs(3)), expected)


def _box_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BOX resampling from n_in to n_out pixels: output o averages, with equal weights,
    the input pixels whose centres lie within half a (scaled) pixel of o's centre."""
    scale = n_in / n_out
    width = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    offsets = (np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / width
    m = ((offsets > -0.5) & (offsets <= 0.5)).astype(np.float64)
    return m / m.sum(1, keepdims=True)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_pixelate_is_box_down_then_box_up(images, severity):
    small = int(32 * C.PIXELATE[severity - 1])
    down, up = _box_matrix(32, small), _box_matrix(small, 32)
    # Pillow works in fixed point and rounds to 8 bits after each 1-D pass: one level of slack.
    reduced = np.rint(np.einsum("ai,nijc,bj->nabc", down, images.astype(np.float64), down))
    expected = np.clip(np.rint(np.einsum("ai,nijc,bj->nabc", up, reduced, up)), 0, 255)
    assert_within_one_level(C.corrupt(images, "Pixelate", severity, rngs()), expected)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_jpeg_is_a_pillow_round_trip_at_the_quality(images, severity):
    out = C.corrupt(images, "JPEG", severity, rngs())
    for image, result in zip(images[:3], out[:3]):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=C.JPEG_QUALITY[severity - 1])
        np.testing.assert_array_equal(result, np.asarray(Image.open(io.BytesIO(buffer.getvalue()))))


def test_jpeg_error_grows_with_severity(images):
    errors = [np.abs(C.corrupt(images, "JPEG", s, rngs()).astype(int) - images).mean() for s in C.SEVERITIES]
    assert errors == sorted(errors) and errors[0] > 0


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_gaussian_blur_formula(images, severity):
    k = gaussian_kernel(C.GAUSSIAN_BLUR[severity - 1])
    expected = np.stack([correlate_2d(i / 255.0, np.outer(k, k), "edge") for i in images])
    assert_truncated(C.corrupt(images, "GaussianBlur", severity, rngs()), expected)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_defocus_blur_is_an_antialiased_disk(images, severity):
    radius, alias = C.DEFOCUS_BLUR[severity - 1]
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-0.5 * np.arange(-1, 2) ** 2 / alias**2)
    g /= g.sum()  # OpenCV's 3x3 Gaussian for that sigma, applied with reflect-101 borders
    kernel = correlate_2d(disk[..., None], np.outer(g, g), "reflect")[..., 0]
    expected = np.stack([correlate_2d(i / 255.0, kernel, "reflect") for i in images])
    assert_truncated(C.corrupt(images, "DefocusBlur", severity, rngs()), expected)


def _reference_clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    crop = int(np.ceil(32 / factor))
    top = (32 - crop) // 2
    zoomed = ndimage.zoom(image[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - 32) // 2
    return zoomed[trim : trim + 32, trim : trim + 32]


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_zoom_blur_averages_centre_zooms(images, severity):
    factors = np.arange(1, C.ZOOM_BLUR_END[severity - 1], 0.01)
    assert len(factors) == (7, 12, 16, 21, 26)[severity - 1]  # the reference's np.arange quirk
    expected = []
    for image in images[:4]:
        x = (image / 255.0).astype(np.float32)
        total = x + sum(_reference_clipped_zoom(x, z) for z in factors)
        expected.append(total / (len(factors) + 1))
    assert_truncated(C.corrupt(images[:4], "ZoomBlur", severity, rngs(4)), np.stack(expected))


def test_original_is_identity(images):
    np.testing.assert_array_equal(C.corrupt(images, "Original", 3, rngs()), images)
