"""image_table's parameters (`ImageTableParams`), their checks and their canonical form: defaults
filled in (path column, test fraction, resolution, pretrained weights, normalisation, learning
rate) and every value validated, with a ValueError naming the parameter and the fix."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from debiasbench.datasets.cmnist import INPUT_SCALINGS

FAMILY = "image_table"
ARRAY_SUFFIX = ".npy"
RESIZE_MODES = ("stretch", "short_side_center")
NORMALIZATIONS = ("imagenet", "none")
OPTIMIZERS = ("adam", "sgd")
DEFAULT_FOLDER_RESOLUTION = 224
DEFAULT_TEST_FRACTION = 0.2
MIN_RESOLUTION = 8

_GENERATION = {"generation": True}
_PIPELINE = {"generation": False}


@dataclass(frozen=True)
class ImageTableParams:
    # Where the data is. root: a folder of images or a .npy file; relative to the data root.
    root: str = field(default="", metadata=_GENERATION)
    table: str = field(default="", metadata=_GENERATION)  # CSV or Parquet; relative to the folder
    path_column: str | None = field(default=None, metadata=_GENERATION)  # default "path" ("index" for arrays)
    # What to learn and what the bias is (column names of the table).
    target: str = field(default="", metadata=_PIPELINE)
    bias: str | None = field(default=None, metadata=_PIPELINE)  # None: no bias labels
    # Train/evaluation split: a column of train/test values, or a stratified random fraction.
    split_column: str | None = field(default=None, metadata=_PIPELINE)
    test_fraction: float | None = field(default=None, metadata=_PIPELINE)  # default 0.2 without split_column
    # Image size in the cache: resolution x resolution (None: 224 for folders, the array's own size).
    resolution: int | None = field(default=None, metadata=_GENERATION)
    resize: str = field(default="stretch", metadata=_GENERATION)  # or "short_side_center"
    # Model and input pipeline.
    model: str = field(default="resnet18", metadata=_PIPELINE)  # any registered model
    pretrained: bool | None = field(default=None, metadata=_PIPELINE)  # None: if the model offers weights
    input_scaling: str = field(default="unit", metadata=_PIPELINE)  # "unit" x/255, "reference" x/255/255
    normalization: str | None = field(default=None, metadata=_PIPELINE)  # None: imagenet if pretrained
    horizontal_flip: bool = field(default=False, metadata=_PIPELINE)
    crop_padding: int = field(default=0, metadata=_PIPELINE)
    # Protocol-level subsampling.
    ratio: float | None = field(default=None, metadata=_PIPELINE)  # percent aligned in the training split
    balanced_test: bool = field(default=False, metadata=_PIPELINE)
    # Optimisation (there is no paper protocol for your data).
    lr: float | None = field(default=None, metadata=_PIPELINE)  # None: 1e-4 if pretrained, else 1e-3
    weight_decay: float = field(default=0.0, metadata=_PIPELINE)
    batch_size: int = field(default=256, metadata=_PIPELINE)
    epochs: int = field(default=100, metadata=_PIPELINE)
    optimizer: str = field(default="adam", metadata=_PIPELINE)


def _text(value: Any, name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(
                f"image_table needs the parameter {name} (see docs/your-own-data.md), e.g. {name}={_EXAMPLES[name]}"
            )
        return None
    if not isinstance(value, str):
        raise ValueError(f"image_table parameter {name} must be a string, got {value!r}")
    return value.strip()


_EXAMPLES = {"root": "my_images", "table": "labels.csv", "target": "label"}


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"image_table parameter {name} must be true or false, got {value!r}")
    return bool(value)


def _integer(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"image_table parameter {name} must be an integer of at least {low}, got {value!r}")
    return int(value)


def _number(value: Any, name: str) -> float:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not numeric or not math.isfinite(value):
        raise ValueError(f"image_table parameter {name} must be a number, got {value!r}")
    return float(value)


def _choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"invalid image_table {name} {value!r}: choose one of {', '.join(choices)}")
    return value


def model_arguments(model: str) -> set[str]:
    """The constructor arguments of a registered model (an unknown name is a ValueError listing them)."""
    from debiasbench.benchmark.registry import UnknownNameError
    from debiasbench.models import MODELS

    try:
        model_cls = MODELS.get(model)
    except UnknownNameError as error:
        raise ValueError(str(error)) from None
    return set(inspect.signature(model_cls.__init__).parameters) - {"self"}


def is_array_root(root: str) -> bool:
    return root.lower().endswith(ARRAY_SUFFIX)


def canonical_params(params: ImageTableParams) -> ImageTableParams:
    """Validate `params` and return their canonical form (what `ImageTable.canonical` returns)."""
    root = _text(params.root, "root", required=True)
    table = _text(params.table, "table", required=True)
    target = _text(params.target, "target", required=True)
    bias = _text(params.bias, "bias", required=False)
    array_mode = is_array_root(root)
    path_column = _text(params.path_column, "path_column", required=False) or ("index" if array_mode else "path")
    split_column = _text(params.split_column, "split_column", required=False)
    roles = {"target": target, "bias": bias, "path_column": path_column, "split_column": split_column}
    named = [(role, column) for role, column in roles.items() if column is not None]
    for k, (role, column) in enumerate(named):
        for other, other_column in named[k + 1 :]:
            if column == other_column:
                raise ValueError(
                    f"image_table parameters {role} and {other} name the same column {column!r}; "
                    "each role needs its own column"
                )
    test_fraction = params.test_fraction
    if split_column is not None and test_fraction is not None:
        raise ValueError(
            "give image_table either split_column (a train/test column) or test_fraction (a "
            "stratified random split), not both"
        )
    if split_column is None:
        test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else _number(test_fraction, "test_fraction")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction:g}")
    resolution = params.resolution
    if resolution is None:
        resolution = None if array_mode else DEFAULT_FOLDER_RESOLUTION
    else:
        resolution = _integer(resolution, "resolution", MIN_RESOLUTION)
    arguments = model_arguments(_text(params.model, "model", required=True))
    pretrained = (
        _flag(params.pretrained, "pretrained") if params.pretrained is not None else ("pretrained" in arguments)
    )
    if pretrained and "pretrained" not in arguments:
        raise ValueError(
            f"model {params.model!r} has no pretrained weights; set pretrained=false or choose "
            "a model that has them (resnet18)"
        )
    ratio = params.ratio
    if ratio is not None:
        ratio = _number(ratio, "ratio")
        if bias is None:
            raise ValueError(
                "ratio needs a bias column (parameter bias): it is the percentage of bias-aligned training samples"
            )
        if not 0.0 < ratio < 100.0:
            raise ValueError(
                f"invalid ratio {ratio:g}: the percentage of bias-aligned training samples must lie "
                "strictly between 0 and 100, e.g. 95 or 99.5"
            )
    normalization = params.normalization
    if normalization is None:
        normalization = "imagenet" if pretrained else "none"
    lr = (1e-4 if pretrained else 1e-3) if params.lr is None else _number(params.lr, "lr")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr:g}")
    weight_decay = _number(params.weight_decay, "weight_decay")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must not be negative, got {weight_decay:g}")
    return replace(
        params,
        root=root,
        table=table,
        target=target,
        bias=bias,
        path_column=path_column,
        split_column=split_column,
        test_fraction=None if test_fraction is None else float(test_fraction),
        resolution=resolution,
        resize=_choice(params.resize, "resize", RESIZE_MODES),
        model=params.model.strip(),
        pretrained=pretrained,
        input_scaling=_choice(params.input_scaling, "input_scaling", tuple(INPUT_SCALINGS)),
        normalization=_choice(normalization, "normalization", NORMALIZATIONS),
        horizontal_flip=_flag(params.horizontal_flip, "horizontal_flip"),
        crop_padding=_integer(params.crop_padding, "crop_padding", 0),
        ratio=ratio,
        balanced_test=_flag(params.balanced_test, "balanced_test"),
        lr=lr,
        weight_decay=weight_decay,
        batch_size=_integer(params.batch_size, "batch_size", 1),
        epochs=_integer(params.epochs, "epochs", 1),
        optimizer=_choice(params.optimizer, "optimizer", OPTIMIZERS),
    )
