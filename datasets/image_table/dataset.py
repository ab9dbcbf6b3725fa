"""Bring your own data: images plus a table of attributes (user guide: docs/your-own-data.md).

Images come from a folder (any format Pillow opens) or from one .npy array of uint8 images
(N x H x W x C, N x C x H x W, or N x H x W for grey). The table (CSV or Parquet) has one row per
sample: a column locating the image (a path relative to the folder, or an integer row of the
array), the target attribute, optionally a bias attribute, and optionally a train/test column.

* Attribute values may be integers or strings; the classes are the distinct values of the whole
  table in sorted order (numeric order when every value is an integer), and their names are kept.
* Splits come from `split_column` (values train / test) or from a seeded split stratified by
  (target, bias) group: each group of n rows gives floor(n * test_fraction + 1/2) test rows.
* The aligned mapping g(y) is inferred from the training split, as CelebA does: with as many bias
  values as classes, the one-to-one mapping with the most training samples on b == g(y) (the
  identity when it ties for best); otherwise each class's most frequent bias value.
* `ratio` subsamples the training split per class to that percentage of aligned samples and
  `balanced_test` the evaluation split to the same number of samples in every group (counts are
  documented in `subsample_to_ratio` and `balance_groups`), both seeded by the data seed.
* Images are decoded once, in parallel and with a progress bar, into a uint8 cache entry
  (datasets/_cache.py layout, renamed into place only when complete) keyed by the resolution, the
  table's bytes and every image file's size and modification time (or the array file's), so an
  edited table or image is a new entry. Only rows' images are cached; labels and splits are read
  from the table on every load.

The table is untrusted input: no pickle is read (np.load with allow_pickle=False), image paths
may not leave the root, and each problem raises `ImageTableError` (a ValueError) or
`ImageTableNotFoundError` (a DataNotFoundError) naming the row or file and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from datasets._cache import atomic_entry, cache_key
from datasets.base import (
    BiasedData,
    BiasedDataset,
    DataNotFoundError,
    DataPaths,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)
from datasets.celeba import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    UnreadableImageError,
    build_memmap_cache,
    read_memmap_cache,
    resize_image,
)
from datasets.cmnist import INPUT_SCALINGS

# The package's name, as before it became a package: trial logs show it (%(name)s).
log = logging.getLogger(__package__)

FAMILY = "image_table"
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
ARRAY_SUFFIX = ".npy"
RESIZE_MODES = ("stretch", "short_side_center")
NORMALIZATIONS = ("imagenet", "none")
OPTIMIZERS = ("adam", "sgd")
SPLIT_VALUES = ("train", "test")
DEFAULT_FOLDER_RESOLUTION = 224
DEFAULT_TEST_FRACTION = 0.2
MIN_RESOLUTION = 8
ARRAY_CHUNK = 1024  # array rows converted per step while filling the cache
_STREAM_SPLIT, _STREAM_RATIO, _STREAM_BALANCE = 0, 1, 2
_INTEGER = re.compile(r"^[+-]?\d+$")


class ImageTableError(ValueError):
    """The table, its images or the parameters cannot make a dataset; the message says why and how to fix it."""


class ImageTableNotFoundError(DataNotFoundError):
    """The root, the table, the array file or an image file is missing; the message names it."""


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


# -- parameter checks ---------------------------------------------------------------------------

def _text(value: Any, name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"image_table needs the parameter {name} (see docs/your-own-data.md), e.g. "
                             f"{name}={_EXAMPLES[name]}")
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
    from benchmark.registry import UnknownNameError
    from models import MODELS

    try:
        model_cls = MODELS.get(model)
    except UnknownNameError as error:
        raise ValueError(str(error)) from None
    return set(inspect.signature(model_cls.__init__).parameters) - {"self"}


def is_array_root(root: str) -> bool:
    return root.lower().endswith(ARRAY_SUFFIX)


# -- reading the table ----------------------------------------------------------------------------

@dataclass
class Table:
    frame: Any  # pandas.DataFrame
    path: Path
    kind: str  # "csv" or "parquet"
    digest: str  # sha256 of the file's bytes

    def row(self, i: int) -> str:
        """How a message names data row i (0-based): 1-based, plus the CSV line."""
        return f"{self.path.name} row {i + 1}" + (f" (line {i + 2})" if self.kind == "csv" else "")

    def column(self, name: str, parameter: str) -> list:
        if name not in self.frame.columns:
            columns = [str(c) for c in self.frame.columns]
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ImageTableError(
                f"the table {self.path} has no column {name!r} (parameter {parameter}).{hint} Its columns are: "
                f"{', '.join(repr(c) for c in columns)}; set {parameter}= to one of them"
            )
        return self.frame[name].tolist()


def read_table(path: Path) -> Table:
    import pandas as pd

    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ImageTableError(f"the table {path} has the extension {path.suffix!r}; write it as CSV (.csv) or "
                              f"Parquet (.parquet or .pq)")
    data = path.read_bytes()
    try:
        if kind == "csv":
            # Every cell as text (no type guessing, no NaN for empty cells): values are parsed below.
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False,
                                skipinitialspace=True)
            frame.columns = [str(c).strip() for c in frame.columns]
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except (ValueError, OSError) as error:
        raise ImageTableError(f"cannot read the table {path} as {kind.upper()}: {error}. It must be a {kind.upper()} "
                              "file with one header row naming the columns") from None
    if len(frame) == 0:
        raise ImageTableError(f"the table {path} has no rows; add one row per image")
    return Table(frame=frame.reset_index(drop=True), path=path, kind=kind, digest=hashlib.sha256(data).hexdigest())


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_integer(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    return None


def encode_attribute(table: Table, column: str, parameter: str) -> tuple[np.ndarray, list[str]]:
    """Class indices (int64) of a column and the class names: the distinct values in sorted order,
    numeric when every value is an integer (so 2 comes before 10), text otherwise."""
    values = table.column(column, parameter)
    for i, value in enumerate(values):
        if _missing(value):
            raise ImageTableError(f"{table.row(i)}: the {parameter} column {column!r} is empty; give every row a "
                                  "value (or remove the row)")
    integers = [_as_integer(v) for v in values]
    if all(v is not None for v in integers):
        keys: list = integers
    else:
        keys = [v.strip() if isinstance(v, str) else str(v) for v in values]
    classes = sorted(set(keys))
    index = {k: c for c, k in enumerate(classes)}
    return np.array([index[k] for k in keys], dtype=np.int64), [str(k) for k in classes]


# -- splits and subsampling -------------------------------------------------------------------------

def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _fraction(value: float) -> Fraction:
    """The decimal a user wrote (99.9, 0.15) as an exact fraction, so rounding is reproducible."""
    return Fraction(repr(float(value)))


def group_ids(targets: np.ndarray, biases: np.ndarray | None, num_bias: int) -> np.ndarray:
    return targets if biases is None else targets * num_bias + biases


def stratified_test_rows(groups: np.ndarray, test_fraction: float, data_seed: int) -> np.ndarray:
    """A boolean test mask: in every group of n rows (groups visited in increasing id), the first
    floor(n * test_fraction + 1/2) rows of a seeded permutation go to the test split."""
    rng = np.random.default_rng([data_seed, _STREAM_SPLIT])
    fraction = _fraction(test_fraction)
    test = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        count = _round_half_up(len(rows) * fraction)
        test[rows[rng.permutation(len(rows))[:count]]] = True
    return test


def aligned_mapping(targets: np.ndarray, biases: np.ndarray, num_classes: int, num_bias: int) -> np.ndarray:
    """g(y) by majority over the given (training) samples. With as many bias values as classes,
    the bijection that makes the most samples aligned (b == g(y)), the identity whenever it is one
    of the best (CelebA's rule for two classes); otherwise each class's most frequent bias value
    (ties to the smaller index)."""
    counts = np.zeros((num_classes, num_bias), dtype=np.int64)
    np.add.at(counts, (targets, biases), 1)
    if num_classes == num_bias:
        from scipy.optimize import linear_sum_assignment

        rows, columns = linear_sum_assignment(counts, maximize=True)
        if np.trace(counts) >= counts[rows, columns].sum():
            return np.arange(num_classes, dtype=np.int64)
        mapping = np.empty(num_classes, dtype=np.int64)
        mapping[rows] = columns
        return mapping
    return counts.argmax(1).astype(np.int64)


def _largest_remainder(total: int, sizes: Sequence[int]) -> list[int]:
    """Split `total` over groups in proportion to `sizes`: floors first, then one more to the
    groups with the largest remainders (ties to the earlier group)."""
    whole = sum(sizes)
    quotas = [Fraction(total * s, whole) for s in sizes]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def ratio_counts(aligned: int, conflicting: int, ratio: float) -> tuple[int, int]:
    """(aligned kept, conflicting kept) for one class at `ratio` percent aligned: all aligned
    samples and round(A * (100 - r) / r) conflicting ones if there are that many; otherwise all C
    conflicting samples and min(A, round(C * r / (100 - r))) aligned ones (round half up)."""
    r = _fraction(ratio)
    wanted = _round_half_up(aligned * (100 - r) / r)
    if wanted <= conflicting:
        return aligned, wanted
    return min(aligned, _round_half_up(conflicting * r / (100 - r))), conflicting


def subsample_to_ratio(targets: np.ndarray, biases: np.ndarray, mapping: np.ndarray, ratio: float, data_seed: int,
                       describe) -> np.ndarray:
    """Training rows (sorted positions into targets) kept so that every class has `ratio` percent
    aligned samples (`ratio_counts`). The conflicting samples kept are spread over the class's
    conflicting groups in proportion to their sizes (largest remainder); which samples of a
    group are kept is a seeded random choice. `describe(y, b)` names a group in errors."""
    rng = np.random.default_rng([data_seed, _STREAM_RATIO])
    keep: list[np.ndarray] = []
    for y in range(len(mapping)):
        in_class = np.flatnonzero(targets == y)
        if not len(in_class):
            continue
        aligned_rows = in_class[biases[in_class] == mapping[y]]
        conflicting_values = [b for b in np.unique(biases[in_class]) if b != mapping[y]]
        if not len(aligned_rows) or not conflicting_values:
            empty = (f"the aligned group {describe(y, mapping[y])}" if not len(aligned_rows)
                     else f"every conflicting group of {describe(y, None)} (bias value other than "
                          f"{describe(None, mapping[y])})")
            raise ImageTableError(
                f"ratio={ratio:g} needs aligned and conflicting training samples in every class, but {empty} has "
                "no training samples; add training rows for it, or leave ratio unset to train on the data as it is"
            )
        groups = [in_class[biases[in_class] == b] for b in conflicting_values]
        n_aligned, n_conflicting = ratio_counts(len(aligned_rows), sum(len(g) for g in groups), ratio)
        keep.append(aligned_rows[np.sort(rng.permutation(len(aligned_rows))[:n_aligned])])
        for rows, count in zip(groups, _largest_remainder(n_conflicting, [len(g) for g in groups])):
            keep.append(rows[np.sort(rng.permutation(len(rows))[:count])])
    return np.sort(np.concatenate(keep))


def balance_groups(groups: np.ndarray, all_groups: Sequence[int], data_seed: int, describe) -> np.ndarray:
    """Evaluation rows kept so that every group has as many as the smallest: min over groups of
    the group size, a seeded random choice within each group. Every group must be present."""
    sizes = {g: int(np.sum(groups == g)) for g in all_groups}
    empty = [g for g in all_groups if sizes[g] == 0]
    if empty:
        raise ImageTableError(
            "balanced_test=true needs samples of every (target, bias) group in the evaluation split, but "
            f"{', '.join(describe(g) for g in empty[:10])}{' ...' if len(empty) > 10 else ''} "
            f"{'has' if len(empty) == 1 else 'have'} none; add such rows to the test split (or raise "
            "test_fraction), or leave balanced_test unset"
        )
    smallest = min(sizes.values())
    rng = np.random.default_rng([data_seed, _STREAM_BALANCE])
    keep = [np.flatnonzero(groups == g) for g in all_groups]
    return np.sort(np.concatenate([rows[np.sort(rng.permutation(len(rows))[:smallest])] for rows in keep]))


# -- images ---------------------------------------------------------------------------------------

@dataclass
class ImageSource:
    """The images the table refers to: one cache row per distinct file (or array row), in order of
    first appearance, and the cache row of every table row."""

    refs: list  # absolute file paths (folder) or array row indices (array)
    row_ref: np.ndarray  # (rows,) int64
    fingerprint: str  # sha256 over the files' (path, size, mtime) or the array file's
    channels: int
    size: tuple[int, int]  # (H, W) in the cache
    first_row: dict  # ref -> first table row using it (for messages)
    array_layout: str | None = None  # "nhwc", "nchw" or "nhw" in array mode


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(os.path.commonpath([root, path]) == root for root in roots)


def folder_source(table: Table, column: str, root: Path, resolution: int) -> ImageSource:
    """Check every path (inside the root, present, a file) and fingerprint the files."""
    roots = sorted({os.path.normpath(str(root)), os.path.realpath(str(root))})
    refs: list[str] = []
    index: dict[str, int] = {}
    row_ref = np.empty(len(table.frame), dtype=np.int64)
    first_row: dict[str, int] = {}
    for i, value in enumerate(table.column(column, "path_column")):
        if _missing(value):
            raise ImageTableError(f"{table.row(i)}: the path column {column!r} is empty; give every row the image's "
                                  "path relative to the root (or remove the row)")
        text = str(value).strip()
        path = os.path.normpath(text if os.path.isabs(text) else os.path.join(str(root), text))
        if not _inside(path, roots):
            raise ImageTableError(
                f"{table.row(i)}: the image path {text!r} points outside the root {root}; image paths must be "
                "relative to the root (no '..' leading out of it) or absolute paths inside it. Move the image "
                "into the root folder and write its path relative to the root"
            )
        if path not in index:
            index[path] = len(refs)
            refs.append(path)
            first_row[path] = i
        row_ref[i] = index[path]
    digest = hashlib.sha256()
    for path in refs:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ImageTableNotFoundError(
                f"{table.row(first_row[path])}: the image file {path} does not exist; fix the path in the table "
                f"(paths are relative to the root {root}) or add the file"
            ) from None
        if not os.path.isfile(path):
            raise ImageTableError(f"{table.row(first_row[path])}: {path} is not a file; the path column must name "
                                  "image files")
        digest.update(f"{os.path.relpath(path, str(root))}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return ImageSource(refs=refs, row_ref=row_ref, fingerprint=digest.hexdigest(), channels=3,
                       size=(resolution, resolution), first_row=first_row)


def open_array(path: Path) -> tuple[np.ndarray, str]:
    """The .npy file as a read-only memory map (no pickle) and its layout."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ImageTableError(f"cannot read the array file {path}: {error}. It must be a .npy file of uint8 "
                              "images written by numpy.save (no pickled objects)") from None
    if array.dtype != np.uint8:
        raise ImageTableError(f"the array file {path} holds {array.dtype}, not uint8; convert it "
                              "(e.g. numpy.save(path, images.astype(numpy.uint8)) for values 0..255)")
    shape = array.shape
    if array.ndim == 3:
        layout = "nhw"
    elif array.ndim == 4 and shape[1] in (1, 3):
        layout = "nchw"
    elif array.ndim == 4 and shape[3] in (1, 3):
        layout = "nhwc"
    else:
        raise ImageTableError(f"the array file {path} has shape {shape}; expected N x H x W x C, N x C x H x W "
                              "(C = 1 for grey or 3 for RGB) or N x H x W")
    if 0 in shape:
        raise ImageTableError(f"the array file {path} has shape {shape}: it holds no images")
    return array, layout


def _array_geometry(shape: tuple[int, ...], layout: str) -> tuple[int, int, int]:
    """(C, H, W) of the stored images."""
    if layout == "nhw":
        return 1, shape[1], shape[2]
    if layout == "nchw":
        return shape[1], shape[2], shape[3]
    return shape[3], shape[1], shape[2]


def array_source(table: Table, column: str, path: Path, resolution: int | None) -> ImageSource:
    array, layout = open_array(path)
    channels, height, width = _array_geometry(array.shape, layout)
    refs: list[int] = []
    index: dict[int, int] = {}
    row_ref = np.empty(len(table.frame), dtype=np.int64)
    first_row: dict[int, int] = {}
    for i, value in enumerate(table.column(column, "path_column")):
        number = None if _missing(value) else _as_integer(value)
        if number is None or not 0 <= number < len(array):
            raise ImageTableError(
                f"{table.row(i)}: the index column {column!r} holds {value!r}; with an array file it must hold the "
                f"row of the image in the array, an integer from 0 to {len(array) - 1}"
            )
        if number not in index:
            index[number] = len(refs)
            refs.append(number)
            first_row[number] = i
        row_ref[i] = index[number]
    stat = os.stat(path)
    fingerprint = hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{array.shape}".encode()).hexdigest()
    size = (height, width) if resolution is None else (resolution, resolution)
    return ImageSource(refs=refs, row_ref=row_ref, fingerprint=fingerprint, channels=channels, size=size,
                       first_row=first_row, array_layout=layout)


def _to_nchw(block: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return block[:, None]
    if layout == "nhwc":
        return block.transpose(0, 3, 1, 2)
    return block


def _resize_block(block: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """uint8 (n, C, H, W) resized to (n, C, size): Pillow per image, as the folder images are."""
    from PIL import Image

    if block.shape[2:] == size:
        return block
    out = np.empty(block.shape[:2] + size, dtype=np.uint8)
    for k, image in enumerate(block):
        pil = Image.fromarray(np.ascontiguousarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)))
        resized = np.asarray(resize_image(pil, size[0], mode), dtype=np.uint8)
        out[k] = resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)
    return out


def build_array_cache(entry: Path, path: Path, source: ImageSource, mode: str, meta: dict) -> None:
    """Copy the referenced array rows into the cache as uint8 (N, C, H, W), resized if needed."""
    from tqdm import tqdm

    array, layout = open_array(path)
    shape = (len(source.refs), source.channels, *source.size)
    with atomic_entry(entry) as tmp:
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        refs = np.asarray(source.refs, dtype=np.int64)
        with tqdm(total=len(refs), desc=f"{FAMILY} images {shape[2]}x{shape[3]}", unit="img", mininterval=2.0) as bar:
            for start in range(0, len(refs), ARRAY_CHUNK):
                block = _to_nchw(np.asarray(array[refs[start:start + ARRAY_CHUNK]]), layout)
                out[start:start + len(block)] = _resize_block(block, source.size, mode)
                bar.update(len(block))
        out.flush()
        del out
        meta = {**meta, "arrays": {"images": {"shape": list(shape), "dtype": "uint8"}}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def _take(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Cache rows as a tensor: a view of the memory map when they are consecutive, else a copy."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
        return torch.from_numpy(images[rows[0]:rows[-1] + 1])
    return torch.from_numpy(np.ascontiguousarray(images[rows]))


# -- the dataset ----------------------------------------------------------------------------------

@dataclass
class Plan:
    """Everything but the pixels: located files, labels, split rows and the aligned mapping."""

    root: Path
    cache_dir: Path
    table: Table
    source: ImageSource
    targets: np.ndarray
    class_names: list[str]
    biases: np.ndarray | None
    bias_names: list[str] | None
    train_rows: np.ndarray
    test_rows: np.ndarray
    mapping: np.ndarray | None


@register_dataset("image_table")
class ImageTable(BiasedDataset):
    Params = ImageTableParams
    has_bias_labels = True  # the family can have them; per parameters: has_bias_labels_for
    target_attribute = "<target column>"
    bias_attribute = "<bias column, optional>"
    generator_version = "1"

    @classmethod
    def has_bias_labels_for(cls, params: ImageTableParams) -> bool:
        return _text(params.bias, "bias", required=False) is not None

    @classmethod
    def canonical(cls, params: ImageTableParams) -> ImageTableParams:
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
            for other, other_column in named[k + 1:]:
                if column == other_column:
                    raise ValueError(f"image_table parameters {role} and {other} name the same column {column!r}; "
                                     "each role needs its own column")
        test_fraction = params.test_fraction
        if split_column is not None and test_fraction is not None:
            raise ValueError("give image_table either split_column (a train/test column) or test_fraction (a "
                             "stratified random split), not both")
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
        pretrained = _flag(params.pretrained, "pretrained") if params.pretrained is not None else (
            "pretrained" in arguments)
        if pretrained and "pretrained" not in arguments:
            raise ValueError(f"model {params.model!r} has no pretrained weights; set pretrained=false or choose "
                             "a model that has them (resnet18)")
        ratio = params.ratio
        if ratio is not None:
            ratio = _number(ratio, "ratio")
            if bias is None:
                raise ValueError("ratio needs a bias column (parameter bias): it is the percentage of bias-aligned "
                                 "training samples")
            if not 0.0 < ratio < 100.0:
                raise ValueError(f"invalid ratio {ratio:g}: the percentage of bias-aligned training samples must lie "
                                 "strictly between 0 and 100, e.g. 95 or 99.5")
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
            params, root=root, table=table, target=target, bias=bias, path_column=path_column,
            split_column=split_column, test_fraction=None if test_fraction is None else float(test_fraction),
            resolution=resolution, resize=_choice(params.resize, "resize", RESIZE_MODES), model=params.model.strip(),
            pretrained=pretrained, input_scaling=_choice(params.input_scaling, "input_scaling", tuple(INPUT_SCALINGS)),
            normalization=_choice(normalization, "normalization", NORMALIZATIONS),
            horizontal_flip=_flag(params.horizontal_flip, "horizontal_flip"),
            crop_padding=_integer(params.crop_padding, "crop_padding", 0), ratio=ratio,
            balanced_test=_flag(params.balanced_test, "balanced_test"), lr=lr, weight_decay=weight_decay,
            batch_size=_integer(params.batch_size, "batch_size", 1), epochs=_integer(params.epochs, "epochs", 1),
            optimizer=_choice(params.optimizer, "optimizer", OPTIMIZERS),
        )

    @classmethod
    def train_protocol(cls, params: ImageTableParams) -> TrainProtocol:
        return TrainProtocol(lr=params.lr, weight_decay=params.weight_decay, batch_size=params.batch_size,
                             epochs=params.epochs, optimizer=params.optimizer)

    # -- files and labels ----------------------------------------------------------------------

    @staticmethod
    def locate(params: ImageTableParams, paths: DataPaths) -> tuple[Path, Path]:
        """(root, table) as absolute paths; a relative root is under the data root and a relative
        table inside the root folder (beside the array file)."""
        root = Path(os.path.expanduser(params.root))
        root = Path(os.path.normpath(root if root.is_absolute() else paths.data_root / root))
        array_mode = is_array_root(params.root)
        if not root.exists():
            raise ImageTableNotFoundError(
                f"image_table root {params.root!r} not found: {root} does not exist. A relative root is read under "
                f"the data root {paths.data_root} (--data-root or DEBIAS_DATA_ROOT); give an absolute path or move "
                f"the {'array file' if array_mode else 'image folder'} there"
            )
        if array_mode and not root.is_file():
            raise ImageTableError(f"image_table root {root} ends in .npy but is not a file; give the .npy array file")
        if not array_mode and not root.is_dir():
            raise ImageTableError(f"image_table root {root} is neither a folder of images nor a .npy array file")
        base = root.parent if array_mode else root
        table = Path(os.path.expanduser(params.table))
        table = Path(os.path.normpath(table if table.is_absolute() else base / table))
        if not table.is_file():
            raise ImageTableNotFoundError(
                f"image_table table {params.table!r} not found: {table} does not exist. A relative table is read "
                f"{'beside the array file' if array_mode else 'inside the root folder'} {base}; give an absolute "
                "path or move the table there"
            )
        return root, table

    @classmethod
    def plan(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> Plan:
        """Read and check the table, locate the images, split and subsample (no pixels decoded)."""
        params = cls.canonical(params)
        root, table_path = cls.locate(params, paths)
        table = read_table(table_path)
        targets, class_names = encode_attribute(table, params.target, "target")
        if len(class_names) < 2:
            raise ImageTableError(
                f"the target column {params.target!r} of {table.path} has a single value {class_names[0]!r} in "
                "every row; a classification target needs at least two classes: choose another column"
            )
        biases = bias_names = None
        if params.bias is not None:
            biases, bias_names = encode_attribute(table, params.bias, "bias")
            if len(bias_names) < 2:
                raise ImageTableError(
                    f"the bias column {params.bias!r} of {table.path} has a single value {bias_names[0]!r} in every "
                    "row, so no sample can conflict with it: choose another column, or leave bias unset"
                )
        num_bias = len(bias_names) if bias_names else 1
        target_name, bias_name = params.target, params.bias

        def describe(y: int | None, b: int | None) -> str:
            parts = ([f"{target_name}={class_names[y]}"] if y is not None else []) + (
                [f"{bias_name}={bias_names[b]}"] if b is not None else [])
            return "(" + ", ".join(parts) + ")"

        groups = group_ids(targets, biases, num_bias)
        if params.split_column is not None:
            values = table.column(params.split_column, "split_column")
            split = np.array([str(v).strip().lower() if not _missing(v) else "" for v in values])
            bad = np.flatnonzero(~np.isin(split, SPLIT_VALUES))
            if len(bad):
                others = sorted({str(values[i]) for i in bad})
                raise ImageTableError(
                    f"{table.row(int(bad[0]))}: the split column {params.split_column!r} holds {values[bad[0]]!r}; "
                    f"every row must say train or test ({len(bad)} rows do not; values seen: "
                    f"{', '.join(repr(v) for v in others[:5])}). Relabel or remove those rows (e.g. fold validation "
                    "rows into train or test), or drop split_column to split by test_fraction"
                )
            test_mask = split == "test"
            how = f"the split column {params.split_column!r}"
        else:
            test_mask = stratified_test_rows(groups, params.test_fraction, data_seed)
            strata = "(target, bias) group" if biases is not None else "class"
            how = (f"test_fraction={params.test_fraction:g} (each {strata} of n rows gives "
                   "floor(n * test_fraction + 1/2) test rows)")
        train_rows, test_rows = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
        for name, rows in (("training", train_rows), ("test", test_rows)):
            if not len(rows):
                fix = ("put some rows in it" if params.split_column is not None
                       else "use a larger test_fraction or more rows" if name == "test"
                       else "use a smaller test_fraction")
                raise ImageTableError(f"the {name} split is empty: {how} assigns no row of {table.path} to it; {fix}")

        mapping = None
        if biases is not None:
            mapping = aligned_mapping(targets[train_rows], biases[train_rows], len(class_names), num_bias)
            cls._log_mapping(params, targets[train_rows], biases[train_rows], mapping, class_names, bias_names)
            if params.ratio is not None:
                kept = subsample_to_ratio(targets[train_rows], biases[train_rows], mapping, params.ratio, data_seed,
                                          describe)
                train_rows = train_rows[kept]
        missing = sorted(set(range(len(class_names))) - set(np.unique(targets[train_rows]).tolist()))
        if missing:
            log.warning("image_table: class(es) %s of %r have no training samples",
                        ", ".join(class_names[y] for y in missing), params.target)
        if params.balanced_test:
            all_groups = list(range(len(class_names) * num_bias))
            kept = balance_groups(groups[test_rows], all_groups, data_seed,
                                  lambda g: describe(g // num_bias, g % num_bias if biases is not None else None))
            test_rows = test_rows[kept]

        if is_array_root(params.root):
            source = array_source(table, params.path_column, root, params.resolution)
        else:
            source = folder_source(table, params.path_column, root, params.resolution)
        shared = np.intersect1d(source.row_ref[train_rows], source.row_ref[test_rows])
        if len(shared):
            log.warning("image_table: %d image(s) appear in both the training and the test split", len(shared))
        cls._check_model_input(params, source)
        return Plan(root=root, cache_dir=paths.cache_dir, table=table, source=source, targets=targets,
                    class_names=class_names, biases=biases, bias_names=bias_names, train_rows=train_rows,
                    test_rows=test_rows, mapping=mapping)

    @staticmethod
    def _log_mapping(params, targets, biases, mapping, class_names, bias_names) -> None:
        parts = []
        for y, b in enumerate(mapping):
            in_class = targets == y
            share = float(np.mean(biases[in_class] == b)) if in_class.any() else float("nan")
            parts.append(f"{class_names[y]} -> {bias_names[b]} ({share:.1%} of {int(in_class.sum())})")
        log.info("image_table aligned mapping g(%s) = %s, by majority over %d training samples: %s",
                 params.target, params.bias, len(targets), "; ".join(parts))

    @staticmethod
    def _check_model_input(params: ImageTableParams, source: ImageSource) -> None:
        arguments = model_arguments(params.model)
        if source.channels != 3 and not ({"in_channels", "in_features"} & arguments):
            raise ImageTableError(f"model {params.model!r} takes RGB images but the array has {source.channels} "
                                  "channel(s); choose a model with in_channels or in_features (e.g. simple_convnet, "
                                  "resnet20, mlp) or store RGB images")
        if params.normalization == "imagenet" and source.channels != 3:
            raise ImageTableError(f"normalization=imagenet needs RGB images but the array has {source.channels} "
                                  "channel(s); set normalization=none")

    # -- pixels --------------------------------------------------------------------------------

    @classmethod
    def images(cls, params: ImageTableParams, plan: Plan) -> np.ndarray:
        """The cached uint8 (distinct images, C, H, W) memory map, decoding it once if needed."""
        source = plan.source
        array_mode = is_array_root(params.root)
        key = {"family": FAMILY, "version": cls.generator_version, "mode": "array" if array_mode else "folder",
               "root": str(plan.root), "path_column": params.path_column, "table_sha256": plan.table.digest,
               "files_sha256": source.fingerprint, "size": list(source.size), "resize": params.resize}
        entry = plan.cache_dir / FAMILY / cache_key(key)
        arrays = read_memmap_cache(entry)
        if arrays is not None:
            return arrays["images"]
        if entry.exists():
            log.warning("image_table cache entry %s is incomplete or corrupt; rebuilding it", entry)
            shutil.rmtree(entry, ignore_errors=True)
        meta = {"params": key, "table": str(plan.table.path)}
        if array_mode:
            build_array_cache(entry, plan.root, source, params.resize, meta)
        else:
            try:
                build_memmap_cache(entry, {"images": (source.refs, source.size[0], params.resize)}, meta)
            except UnreadableImageError as error:
                row = source.first_row.get(error.path)
                where = plan.table.row(row) if row is not None else str(plan.table.path)
                raise ImageTableError(
                    f"{where}: the image file {error.path} cannot be read ({str(error).split(': ', 1)[-1]}); "
                    "replace it with an image Pillow can open (PNG, JPEG, ...) or remove its row"
                ) from None
        arrays = read_memmap_cache(entry)
        if arrays is None:
            raise RuntimeError(f"image_table cache {entry} could not be read back after building it")
        return arrays["images"]

    @classmethod
    def prepare(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> None:
        params = cls.canonical(params)
        cls.images(params, cls.plan(params, paths, data_seed))
        if params.pretrained and params.model == "resnet18":
            from models.resnet18 import ensure_imagenet_weights

            ensure_imagenet_weights()  # fail once in the driver, not in every trial

    @classmethod
    def load(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        plan = cls.plan(params, paths, data_seed)
        images = cls.images(params, plan)

        def split(rows: np.ndarray) -> Split:
            return Split(
                images=_take(images, plan.source.row_ref[rows]),
                targets=torch.from_numpy(plan.targets[rows]),
                biases=None if plan.biases is None else torch.from_numpy(plan.biases[rows]),
            )

        channels, (height, width) = plan.source.channels, plan.source.size
        arguments = model_arguments(params.model)
        model_kwargs: dict[str, Any] = {}
        if "in_features" in arguments:
            model_kwargs["in_features"] = channels * height * width
        if "in_channels" in arguments:
            model_kwargs["in_channels"] = channels
        if "pretrained" in arguments:
            model_kwargs["pretrained"] = params.pretrained
        imagenet = params.normalization == "imagenet"
        return BiasedData(
            train=split(plan.train_rows),
            test=split(plan.test_rows),
            num_classes=len(plan.class_names),
            class_names=plan.class_names,
            num_bias_values=None if plan.bias_names is None else len(plan.bias_names),
            bias_names=plan.bias_names,
            aligned_bias=None if plan.mapping is None else torch.from_numpy(plan.mapping),
            input_spec=InputSpec(scale=INPUT_SCALINGS[params.input_scaling], mean=IMAGENET_MEAN if imagenet else None,
                                 std=IMAGENET_STD if imagenet else None, crop_padding=params.crop_padding,
                                 horizontal_flip=params.horizontal_flip),
            model=params.model,
            model_kwargs=model_kwargs,
            generator_version=cls.generator_version,
        )
