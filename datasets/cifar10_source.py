"""Raw CIFAR-10 (docs/protocol.md#corrupted-cifar-10): the standard `cifar-10-batches-py` pickle layout, read directly.

Where it is looked for, in order, under the data root (`--data-root` or $DEBIAS_DATA_ROOT):

1. `<data-root>/cifar-10-batches-py/`            (torchvision's layout; where a download lands)
2. `<data-root>/CIFAR10/cifar-10-batches-py/`    (the LfF repository's layout)
3. `<data-root>/CIFAR10-subset/cifar-10-batches-py/`  (the partial offline copy in ../shared/data)
4. `<data-root>` itself, when it is a batches directory

When none holds the six batch files and downloads are allowed, torchvision downloads the full
dataset into (1). The files are read with our own restricted unpickler rather than torchvision's
class, because torchvision refuses any copy whose md5 differs (partial or re-packed copies), and
because a pickle can run arbitrary code: ours admits only what numpy arrays need.
Both str and bytes dictionary keys are accepted (files written by Python 2 vs re-packed ones).
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import logging
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from debiasbench.datasets.base import DataNotFoundError, DataPaths

log = logging.getLogger(__name__)

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
SEARCH_PARENTS = ("", "CIFAR10", "CIFAR10-subset")
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FULL_SIZES = {"train": 50_000, "test": 10_000}
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not for the whole download


class CIFARBatchError(ValueError):
    """A CIFAR-10 batch file is truncated, corrupt or not in the expected format (names the file)."""


def _numpy_global(module: str, name: str) -> Any:
    """The admitted object a pickle names, resolved under numpy 2 (`numpy._core`) or 1 (`numpy.core`)."""
    if module in ("numpy", ""):
        return getattr(np, name)
    if module == "_codecs":
        return codecs.encode
    tail = module.split(".", 2)[-1]  # "multiarray" or "numeric"
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{tail}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global (os.system, ...).

    Admitted: the array reconstructors of protocols 2-4 (`_reconstruct`, `ndarray`, `dtype`),
    protocol 5's `_frombuffer`, and `scalar` for numpy scalars, each under both numpy module names;
    and `_codecs.encode`, with which Python 3 writes bytes (an array's buffer) at protocol 2.
    """

    ALLOWED = frozenset(
        [("numpy", "ndarray"), ("numpy", "dtype")]
        + [(f"{p}.multiarray", n) for p in ("numpy.core", "numpy._core") for n in ("_reconstruct", "scalar")]
        + [(f"{p}.numeric", "_frombuffer") for p in ("numpy.core", "numpy._core")]
        + [("_codecs", "encode")]
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: CIFAR-10 batch files hold only "
                "containers and numpy arrays"
            )
        return _numpy_global(module, name)


def restricted_load(file: BinaryIO) -> Any:
    """`pickle.load` limited to containers and numpy arrays (latin1 decodes Python 2 strings)."""
    return ArrayOnlyUnpickler(file, encoding="latin1").load()


def _str_keys(batch: dict) -> dict[str, Any]:
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}


def read_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 (N, 32, 32, 3) in HWC order and labels int64 (N,)."""
    try:
        with open(file, "rb") as handle:
            batch = restricted_load(handle)
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        UnicodeDecodeError,
        MemoryError,
    ) as error:
        raise CIFARBatchError(
            f"CIFAR-10 batch file {file} is truncated or corrupt ({type(error).__name__}: {error}); "
            "copy or download it again"
        ) from None
    if not isinstance(batch, dict):
        raise CIFARBatchError(f"CIFAR-10 batch file {file} does not hold a dictionary")
    batch = _str_keys(batch)
    if "data" not in batch or "labels" not in batch:
        raise CIFARBatchError(f"CIFAR-10 batch file {file} has no 'data'/'labels' entries (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise CIFARBatchError(
            f"CIFAR-10 batch file {file} has data of shape {data.shape} and dtype {data.dtype} for "
            f"{len(labels)} labels; expected uint8 (N, 3072)"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise CIFARBatchError(f"CIFAR-10 batch file {file} has labels outside 0..9")
    # Rows are stored channel-planar (1024 red, then green, then blue values).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _has_batches(directory: Path) -> bool:
    return all((directory / name).is_file() for name in TRAIN_FILES + TEST_FILES)


def find_cifar10(data_root: Path) -> Path | None:
    """The first directory under the data root that holds all six batch files (see module doc)."""
    candidates = [Path(data_root) / parent / BATCHES_DIR for parent in SEARCH_PARENTS] + [Path(data_root)]
    return next((c for c in candidates if _has_batches(c)), None)


def missing_message(data_root: Path) -> str:
    return (
        f"CIFAR-10 not found under {data_root} and it could not be downloaded. Put the python "
        f"version of CIFAR-10 (data_batch_1..5 and test_batch) in {Path(data_root) / BATCHES_DIR}/ "
        f"(also searched: {', '.join(str(Path(data_root) / p / BATCHES_DIR) for p in SEARCH_PARENTS[1:])}), "
        "or point the suite at another data root with --data-root DIR or the DEBIAS_DATA_ROOT "
        "environment variable; a machine with internet downloads it there automatically"
    )


def locate_cifar10(paths: DataPaths) -> Path:
    """The batches directory, downloading CIFAR-10 with torchvision when absent and allowed."""
    found = find_cifar10(paths.data_root)
    if found is not None:
        return found
    if not paths.allow_download:
        raise DataNotFoundError(missing_message(paths.data_root))
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torchvision sets none: a silent network would hang
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(paths.data_root), train=True, download=True)
    except Exception as error:  # offline, unwritable root, bad checksum: all mean "not available"
        raise DataNotFoundError(f"{missing_message(paths.data_root)} (download failed: {error})") from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    found = find_cifar10(paths.data_root)
    if found is None:
        raise DataNotFoundError(missing_message(paths.data_root))
    return found


_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint(directory: Path) -> str:
    """A content hash of the six batch files (so a partial copy and the full dataset never share
    a cache entry); memoised per process by file size and modification time."""
    files = [Path(directory) / name for name in TRAIN_FILES + TEST_FILES]
    stamp = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp not in _FINGERPRINTS:
        digest = hashlib.blake2b(digest_size=16)
        for file in files:
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _FINGERPRINTS[stamp] = digest.hexdigest()
    return _FINGERPRINTS[stamp]


@dataclass(frozen=True)
class CIFAR10Arrays:
    train_images: np.ndarray  # uint8 (N, 32, 32, 3), HWC
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path


def read_cifar10(directory: Path) -> CIFAR10Arrays:
    """All batches of one directory, concatenated in file order."""
    directory = Path(directory)
    parts = {
        split: [read_batch(directory / name) for name in names]
        for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES))
    }
    arrays = {
        split: (np.concatenate([p[0] for p in batches]), np.concatenate([p[1] for p in batches]))
        for split, batches in parts.items()
    }
    for split, (images, _) in arrays.items():
        if len(images) != FULL_SIZES[split]:
            log.warning(
                "CIFAR-10 in %s has %d %s images (the full dataset has %d): a partial copy, fine for "
                "smoke runs, not for the paper's numbers",
                directory,
                len(images),
                split,
                FULL_SIZES[split],
            )
    return CIFAR10Arrays(*arrays["train"], *arrays["test"], source=directory)


def load_cifar10(paths: DataPaths) -> CIFAR10Arrays:
    """Locate (or download) and read CIFAR-10 under the data root."""
    return read_cifar10(locate_cifar10(paths))
