"""The images a table refers to: a folder of files (paths checked to stay inside the root) or
rows of a .npy array (no pickle), each fingerprinted for the cache key; filling the cache from
an array (folders are decoded by datasets._image_decoding's `build_memmap_cache`); taking rows
as tensors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from debiasbench.datasets._cache import atomic_entry
from debiasbench.datasets._image_decoding import resize_image
from debiasbench.datasets.image_table.errors import ImageTableError, ImageTableNotFoundError
from debiasbench.datasets.image_table.params import FAMILY
from debiasbench.datasets.image_table.table import Table, _as_integer, _missing

ARRAY_CHUNK = 1024  # array rows converted per step while filling the cache


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
            raise ImageTableError(
                f"{table.row(i)}: the path column {column!r} is empty; give every row the image's "
                "path relative to the root (or remove the row)"
            )
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
            raise ImageTableError(
                f"{table.row(first_row[path])}: {path} is not a file; the path column must name image files"
            )
        digest.update(f"{os.path.relpath(path, str(root))}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return ImageSource(
        refs=refs,
        row_ref=row_ref,
        fingerprint=digest.hexdigest(),
        channels=3,
        size=(resolution, resolution),
        first_row=first_row,
    )


def open_array(path: Path) -> tuple[np.ndarray, str]:
    """The .npy file as a read-only memory map (no pickle) and its layout."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ImageTableError(
            f"cannot read the array file {path}: {error}. It must be a .npy file of uint8 "
            "images written by numpy.save (no pickled objects)"
        ) from None
    if array.dtype != np.uint8:
        raise ImageTableError(
            f"the array file {path} holds {array.dtype}, not uint8; convert it "
            "(e.g. numpy.save(path, images.astype(numpy.uint8)) for values 0..255)"
        )
    shape = array.shape
    if array.ndim == 3:
        layout = "nhw"
    elif array.ndim == 4 and shape[1] in (1, 3):
        layout = "nchw"
    elif array.ndim == 4 and shape[3] in (1, 3):
        layout = "nhwc"
    else:
        raise ImageTableError(
            f"the array file {path} has shape {shape}; expected N x H x W x C, N x C x H x W "
            "(C = 1 for grey or 3 for RGB) or N x H x W"
        )
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
    return ImageSource(
        refs=refs,
        row_ref=row_ref,
        fingerprint=fingerprint,
        channels=channels,
        size=size,
        first_row=first_row,
        array_layout=layout,
    )


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
                block = _to_nchw(np.asarray(array[refs[start : start + ARRAY_CHUNK]]), layout)
                out[start : start + len(block)] = _resize_block(block, source.size, mode)
                bar.update(len(block))
        out.flush()
        del out
        meta = {**meta, "arrays": {"images": {"shape": list(shape), "dtype": "uint8"}}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def _take(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """Cache rows as a tensor: a view of the memory map when they are consecutive, else a copy."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
        return torch.from_numpy(images[rows[0] : rows[-1] + 1])
    return torch.from_numpy(np.ascontiguousarray(images[rows]))
