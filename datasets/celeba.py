"""CelebA (docs/protocol.md#celeba): any (target, bias) pair of its 40 binary attributes, by name.

Raw data in torchvision's layout under the data root:

    <root>/celeba/img_align_celeba/000001.jpg ...
    <root>/celeba/list_attr_celeba.txt       line 1 the count, line 2 the 40 names, then
                                             "<file> <±1 x 40>" per image
    <root>/celeba/list_eval_partition.txt    "<file> <0 train | 1 valid | 2 test>" per image

Training uses the official train partition and evaluation the official validation partition, as
the paper did. Groups are the 2x2 (y, b) cells; the aligned bijection g is the one of the two
(identity or swap) that makes most training samples satisfy b == g(y).

Decoding 160k JPEGs per epoch would be the bottleneck, so a one-time preprocessing step decodes
and resizes every train and validation image in parallel (with a progress bar) into one uint8
.npy per partition, written incrementally as a memory map (a 224px cache is about 27 GB) inside a
temporary directory that is renamed into place only when complete. Training reads the memory map.
The image cache does not depend on the attribute pair, so every pair shares it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from debiasbench.datasets._image_decoding import IMAGENET_MEAN, IMAGENET_STD, build_memmap_cache, read_memmap_cache
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataNotFoundError,
    DataPaths,
    DiagnosisSettings,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)

log = logging.getLogger(__name__)

# The 40 attributes of list_attr_celeba.txt, in file order.
ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
CACHE_FAMILY = "celeba"


def _normalise_name(name: str) -> str:
    return name.replace("_", "").replace(" ", "").lower()


def attribute_name(name: str, valid: Sequence[str] = ATTRIBUTES) -> str:
    """The official spelling of an attribute (case, spaces and underscores are forgiven, so
    BlondHair and blond_hair both mean Blond_Hair); unknown names raise a ValueError listing them all."""
    if name in valid:
        return name
    by_key = {_normalise_name(a): a for a in valid}
    if _normalise_name(name) in by_key:
        return by_key[_normalise_name(name)]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown CelebA attribute {name!r}.{hint} Valid attributes: {', '.join(valid)}")


# -- CelebA ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebAParams:
    target: str = field(default="Blond_Hair", metadata={"generation": False})
    bias: str = field(default="Male", metadata={"generation": False})
    resolution: int = 224  # images are resized to resolution x resolution once, into the cache
    pretrained: bool = field(default=True, metadata={"generation": False})  # ImageNet weights
    # The reference code trains only the final layer; the paper's text says fine-tuning (default).
    freeze_backbone: bool = field(default=False, metadata={"generation": False})
    # A bias-balanced training set (the diagnosis, docs/diagnose.md): the train partition subsampled
    # to the smallest (target, bias) group's size in every group. Out of the key while false.
    balanced_train: bool = field(default=False, metadata={"generation": False, "omit_default": True})


@dataclass(frozen=True)
class CelebAMeta:
    """Attributes and partitions read from the two text files (no images)."""

    names: list[str]  # image file names, file order
    attributes: np.ndarray  # (N, 40) int8 in {0, 1}
    attribute_names: list[str]
    partition: np.ndarray  # (N,) 0 train, 1 valid, 2 test
    partition_digest: str


def celeba_dir(paths: DataPaths) -> Path:
    return paths.data_root / "celeba"


def _missing(paths: DataPaths, what: Path) -> DataNotFoundError:
    return DataNotFoundError(
        f"CelebA not found: {what} is missing. CelebA cannot be downloaded automatically here; put it in "
        f"torchvision's layout under the data root: {celeba_dir(paths)}/img_align_celeba/*.jpg, "
        f"{celeba_dir(paths)}/list_attr_celeba.txt and {celeba_dir(paths)}/list_eval_partition.txt (from the "
        "official CelebA Google Drive: Img/img_align_celeba.zip, Anno/list_attr_celeba.txt, "
        "Eval/list_eval_partition.txt), or point --data-root / DEBIAS_DATA_ROOT at a directory holding celeba/"
    )


def read_metadata(paths: DataPaths) -> CelebAMeta:
    import pandas as pd

    root = celeba_dir(paths)
    attr_file, part_file = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    for required in (root / "img_align_celeba", attr_file, part_file):
        if not required.exists():
            raise _missing(paths, required)
    with open(attr_file) as handle:
        count = int(handle.readline().split()[0])
        names = handle.readline().split()
    attrs = pd.read_csv(
        attr_file,
        sep=r"\s+",
        skiprows=2,
        header=None,
        index_col=0,
        names=["file", *names],
        dtype={"file": str, **{n: np.int8 for n in names}},
    )
    if len(attrs) != count:
        raise ValueError(f"{attr_file} announces {count} images but lists {len(attrs)}")
    part_bytes = part_file.read_bytes()
    partition = pd.read_csv(
        part_file, sep=r"\s+", header=None, index_col=0, names=["file", "split"], dtype={"file": str, "split": np.int8}
    )
    missing = attrs.index.difference(partition.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} images of {attr_file.name} have no partition in {part_file.name}, e.g. {missing[0]}"
        )
    return CelebAMeta(
        names=list(attrs.index),
        attributes=(attrs.to_numpy() > 0).astype(np.int8),
        attribute_names=names,
        partition=partition.loc[attrs.index, "split"].to_numpy().astype(np.int64),
        partition_digest=hashlib.sha256(part_bytes).hexdigest()[:16],
    )


_STREAM_BALANCE = 1  # the random stream of balanced_train's choice (seeded by the data seed)


def balanced_rows(
    targets: np.ndarray, biases: np.ndarray, data_seed: int, names: tuple[str, str] = ("target", "bias")
) -> np.ndarray:
    """Positions (sorted) of a training subsample with exactly m samples in each of the four
    (target, bias) groups, m being the smallest group's size; which m of a group is a seeded random
    choice. Every group must have a sample."""
    groups = targets.astype(np.int64) * 2 + biases.astype(np.int64)
    rows = [np.flatnonzero(groups == g) for g in range(4)]
    empty = [g for g in range(4) if not len(rows[g])]
    if empty:
        target, bias = names
        described = ", ".join(f"({'' if g // 2 else 'not '}{target}, {'' if g % 2 else 'not '}{bias})" for g in empty)
        raise ValueError(
            f"balanced_train needs training samples in every (target, bias) group, but {described} "
            f"{'has' if len(empty) == 1 else 'have'} none in the train partition; choose another "
            "attribute pair"
        )
    smallest = min(len(r) for r in rows)
    rng = np.random.default_rng([data_seed, _STREAM_BALANCE])
    return np.sort(np.concatenate([r[np.sort(rng.permutation(len(r))[:smallest])] for r in rows]))


def aligned_mapping(targets: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """g as an array over y in {0, 1}: the identity or the swap, whichever makes more training
    samples bias-aligned (b == g(y)); ties go to the identity."""
    identity = int(np.sum(targets == biases))
    return np.array([0, 1]) if identity * 2 >= len(targets) else np.array([1, 0])


@register_dataset("celeba")
class CelebA(BiasedDataset):
    Params = CelebAParams
    has_bias_labels = True
    target_attribute = "Blond_Hair"
    bias_attribute = "Male"
    generator_version = "1"
    protocol = TrainProtocol(lr=1e-4, weight_decay=1e-4, batch_size=256, epochs=50)

    @classmethod
    def canonical(cls, params: CelebAParams) -> CelebAParams:
        target, bias = attribute_name(params.target), attribute_name(params.bias)
        if target == bias:
            raise ValueError(f"target and bias are the same CelebA attribute ({target}); choose two different ones")
        if int(params.resolution) < 8:
            raise ValueError(f"resolution must be at least 8 pixels, got {params.resolution}")
        if not isinstance(params.balanced_train, (bool, np.bool_)):
            raise ValueError(f"balanced_train must be true or false, got {params.balanced_train!r}")
        return replace(
            params,
            target=target,
            bias=bias,
            resolution=int(params.resolution),
            pretrained=bool(params.pretrained),
            freeze_backbone=bool(params.freeze_backbone),
            balanced_train=bool(params.balanced_train),
        )

    @classmethod
    def diagnosis_settings(cls, params, paths: DataPaths | None = None) -> DiagnosisSettings:
        """Any attribute pair. Reverse: swap target and bias; balanced: balanced_train=true."""
        values = dict(params)
        if values.pop("balanced_train", False):
            raise ValueError(
                "the diagnosis chooses balanced_train itself (false for the biased, true for the "
                "balanced training set); leave it out"
            )
        canonical = cls.make_params(values)  # official attribute names, or a ValueError listing them
        target, bias = canonical.target, canonical.bias
        biased = {**values, "target": target, "bias": bias}
        return DiagnosisSettings(
            biased=biased,
            balanced={**biased, "balanced_train": True},
            reversed={**biased, "target": bias, "bias": target},
            target=target,
            bias=bias,
            target_values=(f"not {target}", target),
            bias_values=(f"not {bias}", bias),
            balanced_how="the train partition subsampled to the smallest (target, bias) group's size in every group "
            "(balanced_train=true)",
        )

    @classmethod
    def images(
        cls, params: CelebAParams, paths: DataPaths, meta: CelebAMeta, workers: int | None = None
    ) -> dict[str, np.ndarray]:
        """The cached uint8 train/valid arrays (memory maps), building them once if needed."""
        key = {
            "family": CACHE_FAMILY,
            "version": cls.generator_version,
            "resolution": params.resolution,
            "partition_digest": meta.partition_digest,
            "num_images": len(meta.names),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        entry = paths.cache_dir / CACHE_FAMILY / digest
        arrays = read_memmap_cache(entry)
        if arrays is not None:
            return arrays
        if entry.exists():
            log.warning("CelebA cache entry %s is incomplete or corrupt; rebuilding it", entry)
            shutil.rmtree(entry, ignore_errors=True)
        image_dir = celeba_dir(paths) / "img_align_celeba"
        todo = {}
        for split in ("train", "valid"):
            files = [str(image_dir / meta.names[i]) for i in np.flatnonzero(meta.partition == PARTITIONS[split])]
            missing = [f for f in files if not os.path.isfile(f)]
            if missing:
                raise _missing(paths, Path(missing[0]))
            todo[split] = (files, params.resolution, "stretch")
        build_memmap_cache(entry, todo, {"params": key}, workers)
        arrays = read_memmap_cache(entry)
        if arrays is None:
            raise RuntimeError(f"CelebA cache {entry} could not be read back after building it")
        return arrays

    @classmethod
    def raw_paths(cls, params: CelebAParams, paths: DataPaths) -> list[Path]:
        """The two index files and the image folder (a sample of its images is hashed)."""
        root = celeba_dir(paths)
        return [root / "list_attr_celeba.txt", root / "list_eval_partition.txt", root / "img_align_celeba"]

    @classmethod
    def prepare(cls, params: CelebAParams, paths: DataPaths, data_seed: int = 0) -> None:
        params = cls.canonical(params)
        cls.images(params, paths, read_metadata(paths))
        if params.pretrained:
            from debiasbench.models.resnet18 import ensure_imagenet_weights

            ensure_imagenet_weights()  # fail once in the driver, not in every trial

    @classmethod
    def load(cls, params: CelebAParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        meta = read_metadata(paths)
        for name in (params.target, params.bias):
            if name not in meta.attribute_names:
                attribute_name(name, meta.attribute_names)  # raises with the file's own list
        column = {n: i for i, n in enumerate(meta.attribute_names)}
        arrays = cls.images(params, paths, meta)

        def split(name: str) -> Split:
            rows = meta.partition == PARTITIONS[name]
            return Split(
                images=torch.from_numpy(arrays[name]),
                targets=torch.from_numpy(meta.attributes[rows, column[params.target]].astype(np.int64)),
                biases=torch.from_numpy(meta.attributes[rows, column[params.bias]].astype(np.int64)),
            )

        train, valid = split("train"), split("valid")
        # The aligned mapping comes from the whole train partition, so balancing does not change it.
        aligned = aligned_mapping(train.targets.numpy(), train.biases.numpy())
        if params.balanced_train:
            keep = balanced_rows(train.targets.numpy(), train.biases.numpy(), data_seed, (params.target, params.bias))
            train = Split(
                images=torch.from_numpy(np.ascontiguousarray(arrays["train"][keep])),
                targets=train.targets[keep],
                biases=train.biases[keep],
            )
        return BiasedData(
            train=train,
            test=valid,
            num_classes=2,
            class_names=[f"not {params.target}", params.target],
            num_bias_values=2,
            bias_names=[f"not {params.bias}", params.bias],
            aligned_bias=torch.from_numpy(aligned),
            input_spec=InputSpec(scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD, horizontal_flip=True),
            model="resnet18",
            model_kwargs={"pretrained": params.pretrained, "freeze_backbone": params.freeze_backbone},
            generator_version=cls.generator_version,
        )
