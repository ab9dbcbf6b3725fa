"""The contracts every CIFAR-10-C corruption keeps: dtype, range, shape, seeding, batch
independence, the type lists and the errors on bad input."""

import numpy as np
import pytest
from corruptions_kit import N, rngs

from debiasbench.datasets import corruptions as C

# ---------------------------------------------------------------------------------------------
# contracts of every corruption


ALL = [(name, severity) for name in C.CORRUPTIONS for severity in C.SEVERITIES]


@pytest.mark.parametrize("name,severity", ALL)
def test_dtype_shape_and_determinism(images, name, severity):
    out = C.corrupt(images, name, severity, rngs())
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out, C.corrupt(images, name, severity, rngs()))
    if name != "Original":
        assert (out != images).any()
    if C.CORRUPTIONS[name].random:
        other = C.corrupt(images, name, severity, C.image_rngs(1, 0, range(N)))
        assert (other != out).any()


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_an_image_does_not_depend_on_its_batch(images, name):
    """Image i corrupted alone equals image i corrupted in a batch (seeded per image)."""
    together = C.corrupt(images, name, 5, rngs())
    alone = C.corrupt(images[5:6], name, 5, C.image_rngs(0, 0, [5]))
    np.testing.assert_array_equal(alone[0], together[5])


def test_every_image_index_split_and_seed_has_its_own_stream():
    grey = np.full((40, 32, 32, 3), 128, np.uint8)
    outputs = [
        C.corrupt(grey, "GaussianNoise", 3, C.image_rngs(seed, split, range(40)))
        for seed, split in ((0, 0), (0, 1), (1, 0))
    ]
    flat = np.concatenate([o.reshape(40, -1) for o in outputs])
    assert len(np.unique(flat, axis=0)) == len(flat)


def test_types_list_ten_corruptions_each():
    assert C.corruption_names(1) == (
        "Snow",
        "Frost",
        "Fog",
        "Brightness",
        "Contrast",
        "Spatter",
        "Elastic",
        "JPEG",
        "Pixelate",
        "Saturate",
    )
    assert C.corruption_names(2)[-1] == "Original" and len(C.corruption_names(2)) == 10
    assert set(C.TYPE1 + C.TYPE2) == set(C.CORRUPTIONS)


def test_bad_input_errors(images):
    with pytest.raises(ValueError, match="unknown corruption 'Snowy'.*Did you mean 'Snow'"):
        C.corrupt(images, "Snowy", 1, rngs())
    for severity in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="severities are 1..5"):
            C.corrupt(images, "Snow", severity, rngs())
    with pytest.raises(ValueError, match="type 3"):
        C.corruption_names(3)
    with pytest.raises(ValueError, match="one generator per image"):
        C.corrupt(images, "Snow", 1, rngs(2))
    with pytest.raises(ValueError, match="uint8 images"):
        C.corrupt(images.astype(np.float32), "Snow", 1, rngs())
