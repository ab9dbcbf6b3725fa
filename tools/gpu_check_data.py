"""Synthetic stand-ins for the paper's datasets, shaped like each one (image size, channels,
architecture, input pipeline), for tools/gpu_check.py. Loaded as a plugin so Ray workers register
them too. The target is a bright row band, the bias a colour shift, so training has signal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataPaths,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
# kind -> (classes, stored size, model, model kwargs, input spec, batch size)
KINDS = {
    "cmnist": (10, 28, "mlp", {"in_features": 3 * 28 * 28}, InputSpec(scale=1.0 / 255.0 / 255.0), 256),
    "ccifar": (
        10,
        32,
        "resnet20",
        {},
        InputSpec(scale=1.0 / 255.0, mean=CIFAR_MEAN, std=CIFAR_STD, crop_padding=4, horizontal_flip=True),
        256,
    ),
    "celeba": (
        2,
        None,
        "resnet18",
        {"pretrained": False},
        InputSpec(scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD, horizontal_flip=True),
        256,
    ),
    "bar": (6, None, "resnet18", {"pretrained": False}, None, 256),
}


@dataclass(frozen=True)
class SyntheticParams:
    kind: str = "cmnist"
    n_train: int = 512
    n_test: int = 256
    resolution: int = 224  # model input size of the ResNet-18 kinds


def _split(n: int, classes: int, size: int, aligned: float, rng: np.random.Generator) -> Split:
    targets = rng.integers(0, classes, n)
    conflicting = rng.random(n) > aligned
    biases = np.where(conflicting, (targets + rng.integers(1, classes, n)) % classes, targets)
    images = rng.integers(0, 60, size=(n, 3, size, size), dtype=np.int64)
    band = max(1, size // classes)
    for y in range(classes):
        rows = targets == y
        images[rows, :, y * band : (y + 1) * band, :] += 90
    images[np.arange(n), biases % 3] += 60 + 40 * (biases[:, None, None] // 3 % 3)
    return Split(
        torch.from_numpy(images.clip(0, 255).astype(np.uint8)), torch.from_numpy(targets), torch.from_numpy(biases)
    )


@register_dataset("synthetic")
class Synthetic(BiasedDataset):
    Params = SyntheticParams
    target_attribute = "Band"
    bias_attribute = "Colour"
    protocol = TrainProtocol(lr=1e-3, batch_size=256, epochs=1)

    @classmethod
    def canonical(cls, params: SyntheticParams) -> SyntheticParams:
        if params.kind not in KINDS:
            raise ValueError(f"invalid kind {params.kind!r}: choose one of {', '.join(KINDS)}")
        return params

    @classmethod
    def load(cls, params: SyntheticParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        classes, size, model, kwargs, spec, _ = KINDS[params.kind]
        if params.kind == "bar":  # stored larger, random-resized-cropped to the input size like BAR
            size = round(params.resolution * 256 / 224)
            spec = InputSpec(
                scale=1.0 / 255.0,
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                horizontal_flip=True,
                crop_size=params.resolution,
                random_resized_crop=True,
            )
        size = size or params.resolution
        rng = np.random.default_rng(data_seed)
        return BiasedData(
            train=_split(params.n_train, classes, size, 0.95, rng),
            test=_split(params.n_test, classes, size, 1.0 / classes, rng),
            num_classes=classes,
            class_names=[str(c) for c in range(classes)],
            num_bias_values=classes,
            bias_names=[f"b{c}" for c in range(classes)],
            aligned_bias=torch.arange(classes),
            input_spec=spec,
            model=model,
            model_kwargs=dict(kwargs),
            generator_version="1",
        )
