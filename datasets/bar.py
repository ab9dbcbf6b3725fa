"""BAR, Biased Action Recognition (docs/protocol.md#bar): six action classes whose training images share a
place (climbing on rock walls, diving into water, ...) while every test image shows the action in
another place. There are no bias labels, so only methods with supervision `none` or
`bias-tailored` run on it, and evaluation reports per-class accuracy and their mean.

Layout under the data root, as published:

    <root>/BAR/train/<action>_<n>.jpg   1,941 images
    <root>/BAR/test/<action>_<n>.jpg      654 images
    <root>/BAR/metadata.json            per image key "<action>_<n>": {"cls", "train", source, ...}

The class of an image is read from metadata.json (the vaulting class is spelt "pole vaulting"
there). Images are decoded once into a cached uint8 array: the shorter side resized to
round(resolution * 256 / 224), then a centre square crop of that size. Training takes a
RandomResizedCrop to `resolution` plus a horizontal flip and evaluation the central
resolution x resolution crop, both on the device: the usual Resize(256) + CenterCrop(224)
evaluation, and RandomResizedCrop drawn from the stored square rather than the full photograph.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from debiasbench.benchmark.paper.axes import BAR_CLASS_ALIASES, BAR_CLASSES
from debiasbench.benchmark.paper.bar import bar_class_counts, read_bar_metadata
from debiasbench.datasets._cache import load_or_build
from debiasbench.datasets._image_decoding import IMAGENET_MEAN, IMAGENET_STD, decode_images
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataNotFoundError,
    DataPaths,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)

log = logging.getLogger(__name__)

CLASSES = BAR_CLASSES  # Table 6 order
SPLITS = ("train", "test")
# Table 7 of the paper: images per class (CLASSES order) and split.
PUBLISHED_COUNTS = {"train": (326, 520, 163, 336, 317, 279), "test": (105, 159, 42, 132, 85, 131)}


@dataclass(frozen=True)
class BARParams:
    resolution: int = 224  # model input size; the cache stores round(resolution * 256 / 224)
    pretrained: bool = field(default=True, metadata={"generation": False})  # ImageNet weights
    freeze_backbone: bool = field(default=False, metadata={"generation": False})


def stored_size(resolution: int) -> int:
    return int(round(resolution * 256 / 224))


def bar_dir(paths: DataPaths) -> Path:
    return paths.data_root / "BAR"


def _missing(paths: DataPaths, what: Path) -> DataNotFoundError:
    return DataNotFoundError(
        f"BAR not found: {what} is missing. Put the published dataset under the data root as "
        f"{bar_dir(paths)}/train/*.jpg, {bar_dir(paths)}/test/*.jpg and {bar_dir(paths)}/metadata.json "
        "(https://github.com/alinlab/BAR), or point --data-root / DEBIAS_DATA_ROOT at the directory holding BAR/"
    )


def _image_path(split_dir: Path, key: str) -> Path | None:
    """The image file of a metadata key; the vaulting prefix may be spelt either way on disk."""
    prefix, _, number = key.rpartition("_")
    candidates = [key]
    if BAR_CLASS_ALIASES.get(prefix.lower(), prefix.lower()) == "vaulting":
        candidates += [f"{p}_{number}" for p in ("pole vaulting", "vaulting", "pole_vaulting")]
    for candidate in candidates:
        path = split_dir / f"{candidate}.jpg"
        if path.is_file():
            return path
    return None


def _sort_key(key: str, cls: int) -> tuple[int, int, str]:
    number = key.rpartition("_")[2]
    return cls, int(number) if number.isdigit() else -1, key


def read_index(paths: DataPaths) -> dict[str, tuple[list[Path], np.ndarray]]:
    """Per split: image paths and class indices, in a fixed order (class, then image number)."""
    root = bar_dir(paths)
    meta_file = root / "metadata.json"
    if not meta_file.is_file():
        raise _missing(paths, meta_file)
    metadata = read_bar_metadata(meta_file)
    out = {}
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise _missing(paths, split_dir)
        entries = sorted(
            ((key, cls) for key, (cls, train) in metadata.items() if train == (split == "train")),
            key=lambda entry: _sort_key(*entry),
        )
        files = []
        for key, _ in entries:
            path = _image_path(split_dir, key)
            if path is None:
                raise _missing(paths, split_dir / f"{key}.jpg")
            files.append(path)
        out[split] = (files, np.array([c for _, c in entries], dtype=np.int64))
    return out


def class_counts(paths: DataPaths) -> dict[str, dict[str, int]]:
    """Table 7: images per class and split, from metadata.json (no images are decoded)."""
    return bar_class_counts(bar_dir(paths) / "metadata.json")


@register_dataset("bar")
class BAR(BiasedDataset):
    Params = BARParams
    has_bias_labels = False
    target_attribute = "Action"
    bias_attribute = "Place"
    generator_version = "1"
    protocol = TrainProtocol(lr=1e-4, weight_decay=0.0, batch_size=256, epochs=90)

    @classmethod
    def canonical(cls, params: BARParams) -> BARParams:
        if int(params.resolution) < 8:
            raise ValueError(f"resolution must be at least 8 pixels, got {params.resolution}")
        return replace(
            params,
            resolution=int(params.resolution),
            pretrained=bool(params.pretrained),
            freeze_backbone=bool(params.freeze_backbone),
        )

    @classmethod
    def arrays(cls, params: BARParams, paths: DataPaths) -> dict[str, np.ndarray]:
        meta_file = bar_dir(paths) / "metadata.json"
        if not meta_file.is_file():
            raise _missing(paths, meta_file)
        digest = hashlib.sha256(meta_file.read_bytes()).hexdigest()[:16]
        size = stored_size(params.resolution)
        key = {"family": "bar", "version": cls.generator_version, "stored_size": size, "metadata": digest}

        def build() -> dict[str, np.ndarray]:
            out = {}
            for split, (files, labels) in read_index(paths).items():
                images = np.empty((len(files), 3, size, size), dtype=np.uint8)
                decode_images(
                    [str(f) for f in files], size, "short_side_center", images, description=f"BAR {split} {size}px"
                )
                out[f"{split}_images"], out[f"{split}_targets"] = images, labels
            return out

        ranges = {f"{split}_targets": len(CLASSES) for split in SPLITS}
        arrays = load_or_build(
            paths.cache_dir, "bar", key, build, label_ranges=ranges, raw=cls.raw_fingerprint(params, paths)
        )
        for split in SPLITS:
            counts = tuple(np.bincount(arrays[f"{split}_targets"], minlength=len(CLASSES)).tolist())
            if counts != PUBLISHED_COUNTS[split]:
                log.warning(
                    "BAR %s counts per class %s differ from the published %s", split, counts, PUBLISHED_COUNTS[split]
                )
        return arrays

    @classmethod
    def raw_paths(cls, params: BARParams, paths: DataPaths) -> list[Path]:
        """metadata.json and the two image folders (a sample of their images is hashed)."""
        return [bar_dir(paths) / "metadata.json", *(bar_dir(paths) / split for split in SPLITS)]

    @classmethod
    def prepare(cls, params: BARParams, paths: DataPaths, data_seed: int = 0) -> None:
        params = cls.canonical(params)
        cls.arrays(params, paths)
        if params.pretrained:
            from debiasbench.models.resnet18 import ensure_imagenet_weights

            ensure_imagenet_weights()  # fail once in the driver, not in every trial

    @classmethod
    def load(cls, params: BARParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        arrays = cls.arrays(params, paths)

        def split(name: str) -> Split:
            return Split(
                images=torch.from_numpy(arrays[f"{name}_images"]),
                targets=torch.from_numpy(arrays[f"{name}_targets"]),
                biases=None,
            )

        return BiasedData(
            train=split("train"),
            test=split("test"),
            num_classes=len(CLASSES),
            class_names=list(CLASSES),
            num_bias_values=None,
            bias_names=None,
            aligned_bias=None,
            input_spec=InputSpec(
                scale=1.0 / 255.0,
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                horizontal_flip=True,
                crop_size=params.resolution,
                random_resized_crop=True,
            ),
            model="resnet18",
            model_kwargs={"pretrained": params.pretrained, "freeze_backbone": params.freeze_backbone},
            generator_version=cls.generator_version,
        )
