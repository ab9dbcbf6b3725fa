"""The stochastic CIFAR-10-C corruptions (docs/protocol.md#corrupted-cifar-10): noise by its
statistics, and the glass, motion, frost and fog building blocks against their references."""

import numpy as np
import pytest
from corruptions_kit import rngs
from scipy import ndimage

from debiasbench.datasets import corruptions as C


def truncate(unit: np.ndarray) -> np.ndarray:
    return (np.clip(unit, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# stochastic corruptions: statistics on a flat mid-grey image (values away from the clip range)


GREY = np.full((64, 32, 32, 3), 128, np.uint8)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_gaussian_noise_std(severity):
    noise = (C.corrupt(GREY, "GaussianNoise", severity, rngs(64)).astype(np.float64) - 128) / 255
    assert noise.std() == pytest.approx(C.GAUSSIAN_NOISE[severity - 1], rel=0.05)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_speckle_noise_std(severity):
    noise = (C.corrupt(GREY, "SpeckleNoise", severity, rngs(64)).astype(np.float64) - 128) / 255
    assert noise.std() == pytest.approx(128 / 255 * C.SPECKLE_NOISE[severity - 1], rel=0.05)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_shot_noise_is_poisson(severity):
    c = C.SHOT_NOISE[severity - 1]
    out = C.corrupt(GREY, "ShotNoise", severity, rngs(64)).astype(np.float64) / 255
    # counts ~ Poisson(x c): std of counts / c is sqrt(x / c); the mean stays x (up to truncation)
    assert out.std() == pytest.approx(np.sqrt(128 / 255 / c), rel=0.06)
    assert out.mean() == pytest.approx(128 / 255, abs=1.5 / 255)


@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_impulse_noise_fraction(severity):
    out = C.corrupt(GREY, "ImpulseNoise", severity, rngs(64))
    amount = C.IMPULSE_NOISE[severity - 1]
    assert (out == 255).mean() == pytest.approx(amount / 2, rel=0.1)
    assert (out == 0).mean() == pytest.approx(amount / 2, rel=0.1)
    assert ((out == 0) | (out == 255) | (out == 128)).all()


def test_glass_blur_pass_equals_the_reference_loop(images):
    """The vectorised pass equals the reference's sequential loop with its numpy-view 'swap'."""
    severity = 5
    sigma, delta, iterations = C.GLASS_BLUR[severity - 1]
    out = C.corrupt(images[:3], "GlassBlur", severity, rngs(3))
    for i, rng in enumerate(rngs(3)):
        offsets = rng.integers(-delta, delta, size=(iterations, 2, 30, 30))
        x = (ndimage.gaussian_filter(images[i] / 255.0, (sigma, sigma, 0), mode="nearest") * 255).astype(np.uint8)
        for it in range(iterations):
            for h in range(32 - delta, delta, -1):
                for w in range(32 - delta, delta, -1):
                    dy, dx = offsets[it, 0, h - 2, w - 2], offsets[it, 1, h - 2, w - 2]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
        expected = truncate(ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest"))
        np.testing.assert_array_equal(out[i], expected)


def test_motion_blur_is_imagemagick_line_kernel(images):
    """Compare one image with a direct evaluation of ImageMagick's MotionBlurImage sum."""
    radius, sigma = C.MOTION_BLUR[4]
    angle = C.image_rngs(0, 0, [0])[0].uniform(-45, 45)
    width = 2 * radius + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    image = images[0].astype(np.float64)
    expected = np.zeros_like(image)
    for i, w in enumerate(weights):
        ox = int(np.ceil(i * np.cos(np.radians(angle)) - 0.5))
        oy = int(np.ceil(i * np.sin(np.radians(angle)) - 0.5))
        rows = np.clip(np.arange(32) + oy, 0, 31)
        cols = np.clip(np.arange(32) + ox, 0, 31)
        expected += w * image[rows][:, cols]
    out = C.corrupt(images[:1], "MotionBlur", 5, rngs(1))
    np.testing.assert_array_equal(out[0], np.clip(np.rint(expected), 0, 255).astype(np.uint8))


def test_frost_blends_a_crop_of_one_of_the_first_five_textures():
    black = np.zeros((8, 32, 32, 3), np.uint8)
    severity = 4
    image_weight, frost_weight = C.FROST[severity - 1]
    out = C.corrupt(black, "Frost", severity, rngs(8))
    textures = C.frost_textures()
    assert len(textures) == 5
    for i, rng in enumerate(rngs(8)):
        t = rng.integers(5)
        top = rng.integers(0, textures[t].shape[0] - 32)
        left = rng.integers(0, textures[t].shape[1] - 32)
        crop = textures[t][top : top + 32, left : left + 32].astype(np.float64)
        np.testing.assert_array_equal(out[i], np.clip(frost_weight * crop, 0, 255).astype(np.uint8))


def test_bilinear_reflect_equals_scipy_map_coordinates():
    rng = np.random.default_rng(0)
    images = rng.random((3, 32, 32, 3))
    rows = np.arange(32)[None, :, None] + rng.uniform(-5, 5, (3, 32, 32))
    cols = np.arange(32)[None, None, :] + rng.uniform(-5, 5, (3, 32, 32))
    out = C.bilinear_reflect(images, rows, cols)
    for i in range(3):
        coords = np.stack(
            [
                np.repeat(rows[i][..., None], 3, -1),
                np.repeat(cols[i][..., None], 3, -1),
                np.broadcast_to(np.arange(3), (32, 32, 3)),
            ]
        )
        expected = ndimage.map_coordinates(images[i], coords.reshape(3, -1), order=1, mode="reflect")
        np.testing.assert_allclose(out[i], expected.reshape(32, 32, 3), atol=1e-9)


def test_fog_plasma_fractal_is_a_normalised_torus_map():
    noise = np.random.default_rng(0).random((3, C.PLASMA_DRAWS)) * 2 - 1
    maps = C.plasma_fractal(noise, 2.0)
    assert maps.shape == (3, 32, 32)
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    assert not np.allclose(maps[0], maps[1])
