"""The corruptions by name, the two Corrupted CIFAR-10 types (ten corruptions each, in bias-value
order), the per-image random streams and the entry points: `corrupt` for one batch and
`corrupt_chunk` for a worker process (a top-level function, so it pickles by module path under
both the fork and the spawn start method)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from debiasbench.datasets.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, motion_blur, zoom_blur
from debiasbench.datasets.corruptions.constants import SEVERITIES, SIZE
from debiasbench.datasets.corruptions.digital import brightness, contrast, elastic, jpeg, pixelate, saturate
from debiasbench.datasets.corruptions.noise import gaussian_noise, impulse_noise, shot_noise, speckle_noise
from debiasbench.datasets.corruptions.weather import fog, frost, frost_textures, snow, spatter

TYPE1 = ("Snow", "Frost", "Fog", "Brightness", "Contrast", "Spatter", "Elastic", "JPEG", "Pixelate", "Saturate")
TYPE2 = (
    "GaussianNoise",
    "ShotNoise",
    "ImpulseNoise",
    "SpeckleNoise",
    "GaussianBlur",
    "DefocusBlur",
    "GlassBlur",
    "MotionBlur",
    "ZoomBlur",
    "Original",
)
CORRUPTION_TYPES = {1: TYPE1, 2: TYPE2}

_STREAM_CORRUPTION = 2  # distinct from the bias-assignment streams of datasets/_bias users


def image_rngs(data_seed: int, split_code: int, indices: Sequence[int] | np.ndarray) -> list[np.random.Generator]:
    """One independent generator per image, seeded by (data seed, split, image index)."""
    return [np.random.default_rng([int(data_seed), int(split_code), _STREAM_CORRUPTION, int(i)]) for i in indices]


def original(images: np.ndarray, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Type 2's tenth bias value: the image unchanged."""
    return images.copy()


@dataclass(frozen=True)
class Corruption:
    name: str
    function: Callable[[np.ndarray, int, Sequence[np.random.Generator]], np.ndarray]
    random: bool  # False: a deterministic function of the image


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
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
        raise ValueError(
            f"invalid severity {severity!r}: CIFAR-10-C severities are 1..5 "
            "(the paper's difficulty k is severity k + 1)"
        )
    return int(severity)


def corrupt(images: np.ndarray, name: str, severity: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Apply one corruption to a batch: uint8 (N, 32, 32, 3) in, uint8 (N, 32, 32, 3) out; `rngs`
    holds one generator per image (see `image_rngs`)."""
    corruption = get_corruption(name)
    severity = check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(
            f"corruptions take uint8 images of shape (N, {SIZE}, {SIZE}, 3); got {images.dtype} {images.shape}"
        )
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


def corrupt_chunk(
    images: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    severity: int,
    data_seed: int,
    split_code: int,
    start: int,
) -> np.ndarray:
    """Corrupt images[i] with names[labels[i]]; image i has global index start + i (which seeds it).
    A top-level function so worker processes can run it."""
    cv2.setNumThreads(1)  # parallelism comes from the worker processes
    out = np.empty_like(images)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        rngs = image_rngs(data_seed, split_code, start + members)
        out[members] = corrupt(images[members], names[int(value)], severity, rngs)
    return out
