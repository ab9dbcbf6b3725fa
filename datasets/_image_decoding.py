"""Parallel JPEG/PNG decoding and resizing into uint8 memory-mapped caches, shared by CelebA, BAR
and image tables: a one-time preprocessing step, because decoding every image every epoch would
be the training bottleneck. Underscore-named so the dataset registry does not scan it."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from debiasbench.datasets._cache import atomic_entry, read_entry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_FAMILY = "celeba"
CHUNK = 64  # images per worker task: large enough to amortise inter-process overhead


class UnreadableImageError(ValueError):
    """Pillow could not decode an image file; `path` names the file (picklable, so it crosses
    from a decoding worker to the parent intact)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, path)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def resize_image(image, size: int, mode: str):
    """A Pillow image resized to size x size. mode "stretch": resize both sides to size (CelebA's
    Resize((224, 224))); "short_side_center": resize the shorter side to size, then centre crop
    (torchvision's Resize(size) + CenterCrop(size)). Bilinear with Pillow's anti-aliasing; an image
    already of the requested size is returned unchanged."""
    from PIL import Image

    if mode == "stretch":
        return image.resize((size, size), Image.BILINEAR)
    if mode == "short_side_center":
        width, height = image.size
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.BILINEAR)
        left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
        return image.crop((left, top, left + size, top + size))
    raise ValueError(f"unknown resize mode {mode!r}")


def load_resized(path: str, size: int, mode: str) -> np.ndarray:
    """One image as uint8 (3, size, size), resized by `resize_image`."""
    from PIL import Image

    with Image.open(path) as image:
        # JPEG draft mode decodes at a reduced DCT scale when the image is much larger than needed.
        image.draft("RGB", (size, size))
        array = np.asarray(resize_image(image.convert("RGB"), size, mode), dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _decode_file(path: str, size: int, mode: str) -> np.ndarray:
    try:
        return load_resized(path, size, mode)
    except Exception as error:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError ...
        raise UnreadableImageError(f"cannot decode image {path}: {type(error).__name__}: {error}", path) from None


def _load_chunk(task: tuple[int, list[str], int, str, tuple[str, int] | None]) -> tuple[int, int, np.ndarray | None]:
    """Decode one block of files. With a target (.npy path, data offset) the block is written
    straight into that file (no pixels pickled back to the parent); otherwise it is returned."""
    start, files, size, mode, target = task
    block = np.stack([_decode_file(f, size, mode) for f in files])
    if target is None:
        return start, len(block), block
    path, offset = target
    # A positioned write of the rows' bytes: cheaper than faulting in pages of a shared mapping
    # from several processes, and coherent with the parent's mapping through the page cache.
    with open(path, "r+b") as handle:
        handle.seek(offset + start * block[0].nbytes)
        handle.write(memoryview(block).cast("B"))
    return start, len(block), None


def decode_images(
    files: Sequence[str],
    size: int,
    mode: str,
    out: np.ndarray,
    workers: int | None = None,
    description: str = "decoding images",
    chunk: int = CHUNK,
) -> None:
    """Decode and resize `files` into `out` (uint8, (len(files), 3, size, size)), in parallel over
    processes, with a progress bar. When `out` is a memory-mapped .npy file (np.lib.format.open_memmap)
    the workers write into the file directly."""
    from tqdm import tqdm

    workers = workers or default_workers()
    parallel = workers > 1 and len(files) > chunk
    target = None
    if parallel and isinstance(out, np.memmap) and out.filename is not None and out.flags.c_contiguous:
        out.flush()  # the .npy header is on disk before workers write after it
        target = (str(out.filename), int(out.offset))
    tasks = [(start, list(files[start : start + chunk]), size, mode, target) for start in range(0, len(files), chunk)]
    with tqdm(total=len(files), desc=description, unit="img", mininterval=2.0) as progress:
        for start, count, block in _run_tasks(tasks, workers if parallel else 1):
            if block is not None:
                out[start : start + count] = block
            progress.update(count)


def _run_tasks(tasks: list, workers: int) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Results of `_load_chunk` in completion order (each block carries its offset), with a
    bounded number of tasks in flight so finished blocks never pile up in memory."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_load_chunk, tasks)
        return
    # Workers only run Pillow and numpy, so forking is safe and avoids re-importing torch per worker.
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pending = iter(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        in_flight = {pool.submit(_load_chunk, task) for task in itertools.islice(pending, 4 * workers)}
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
            in_flight |= {pool.submit(_load_chunk, task) for task in itertools.islice(pending, len(done))}


def default_workers() -> int:
    """Processes for preprocessing: $DEBIAS_PREPROCESS_WORKERS, else every CPU this process may use."""
    env = os.environ.get("DEBIAS_PREPROCESS_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def build_memmap_cache(
    entry: Path, arrays: dict[str, tuple[Sequence[str], int, str]], meta: dict, workers: int | None = None
) -> None:
    """Write one uint8 .npy memory map per name (files, size, resize mode) plus meta.json, made
    visible as `entry` only once everything is on disk."""
    with atomic_entry(entry) as tmp:
        meta = {**meta, "arrays": {}}
        for name, (files, size, mode) in arrays.items():
            shape = (len(files), 3, size, size)
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.uint8, shape=shape)
            decode_images(files, size, mode, out, workers, description=f"{entry.parent.name} {name} {size}px")
            out.flush()
            del out
            meta["arrays"][name] = {"shape": list(shape), "dtype": "uint8"}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def read_memmap_cache(entry: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a complete entry as copy-on-write memory maps (None if absent or corrupt):
    copy-on-write keeps the file untouched while giving torch a writable array."""
    return read_entry(entry, mmap_mode="c")
