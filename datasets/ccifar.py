"""Corrupted CIFAR-10, types 1 and 2 (docs/protocol.md#corrupted-cifar-10): target Object, bias
Corruption (or reversed).

Each CIFAR-10 image gets one of ten corruptions (the bias value) at the CIFAR-10-C severity
difficulty + 1; the bias is assigned exactly as in Colored MNIST (docs/protocol.md#colored-mnist:
exact per-class counts, a seeded choice of which images). Train split: the chosen ratio; test
split: the 10,000 test images at the unbiased 10% ratio. The corruption of image i of a split is
seeded by (data seed, split, i), so the result is the same for any number of worker processes.
Generation runs in a process pool and is cached by datasets/_cache.load_or_build (written to a
temporary directory and renamed, so an interrupted generation leaves nothing a later run would
trust); the cache key holds the protocol parameters, the generator version and a content hash of
the raw CIFAR-10 files.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from debiasbench.datasets._bias import (
    aligned_fraction_from_ratio,
    assign_bias,
    check_assignment,
    swapped_target_diagnosis,
)
from debiasbench.datasets._cache import load_or_build
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataPaths,
    DiagnosisSettings,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)
from debiasbench.datasets.cifar10_source import (
    CLASS_NAMES,
    FULL_SIZES,
    TEST_FILES,
    TRAIN_FILES,
    find_cifar10,
    fingerprint,
    locate_cifar10,
    read_cifar10,
)
from debiasbench.datasets.corruptions import check_severity, corrupt_chunk, corruption_names, warm_up

log = logging.getLogger(__name__)

TARGETS = ("object", "corruption")
DIFFICULTIES = (1, 2, 3, 4)
UNBIASED_RATIO = 10.0  # percent aligned in the unbiased splits: uniform corruption given the class
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
WORKERS_ENV = "DEBIAS_DATA_WORKERS"
START_METHOD_ENV = "DEBIAS_DATA_START_METHOD"
CHUNK_SIZE = 1000
MIN_PARALLEL = 4000  # below this many images a process pool costs more than it saves

_STREAM_BIAS = 0
_SPLIT_CODE = {"train": 0, "test": 1}


def severity_of(difficulty: int) -> int:
    """The paper's difficulty k (1..4) is CIFAR-10-C severity k + 1."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"invalid difficulty {difficulty!r}: Corrupted CIFAR-10 difficulty is 1, 2, 3 or 4 "
            "(CIFAR-10-C severity 2..5)"
        )
    return check_severity(difficulty + 1)


def default_workers() -> int:
    env = os.environ.get(WORKERS_ENV)
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers without re-importing torch (about 2-3 s each); the workers only run
    # NumPy/SciPy/OpenCV, never torch. Override with DEBIAS_DATA_START_METHOD=spawn if needed.
    method = os.environ.get(START_METHOD_ENV)
    if method is None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def corrupt_images(
    images: np.ndarray,
    biases: np.ndarray,
    names: tuple[str, ...],
    severity: int,
    data_seed: int,
    split_code: int,
    workers: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: bool | None = None,
    desc: str = "corrupting",
    min_parallel: int = MIN_PARALLEL,
) -> np.ndarray:
    """Corrupt images[i] (uint8 HWC) with names[biases[i]] at `severity`, in chunks over a process
    pool; the output does not depend on `workers` or `chunk_size` (images are seeded by index)."""
    from tqdm.auto import tqdm

    workers = default_workers() if workers is None else int(workers)
    warm_up(names)
    starts = range(0, len(images), chunk_size)
    out = np.empty_like(images)
    bar = tqdm(
        total=len(images), desc=desc, unit="img", disable=(None if progress is None else not progress), leave=False
    )
    try:
        if workers <= 1 or len(images) < min_parallel:
            for start in starts:
                stop = start + chunk_size
                out[start:stop] = corrupt_chunk(
                    images[start:stop], biases[start:stop], names, severity, data_seed, split_code, start
                )
                bar.update(len(out[start:stop]))
            return out
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = {
                pool.submit(
                    corrupt_chunk,
                    images[s : s + chunk_size],
                    biases[s : s + chunk_size],
                    names,
                    severity,
                    data_seed,
                    split_code,
                    s,
                ): s
                for s in starts
            }
            for future in as_completed(futures):
                chunk = future.result()
                start = futures[future]
                out[start : start + len(chunk)] = chunk
                bar.update(len(chunk))
        return out
    finally:
        bar.close()


def make_split(
    images: np.ndarray,
    objects: np.ndarray,
    aligned_fraction: float,
    kind: int,
    severity: int,
    data_seed: int,
    split: str,
    workers: int | None = None,
    progress: bool | None = None,
    assignment: str = "reference",
) -> dict[str, np.ndarray]:
    """One split's arrays: images uint8 (N, 3, 32, 32), objects and corruptions int64 (N,)."""
    code = _SPLIT_CODE[split]
    names = corruption_names(kind)
    corruptions = assign_bias(
        objects, aligned_fraction, len(names), assignment, np.random.default_rng([data_seed, code, _STREAM_BIAS])
    )
    corrupted = corrupt_images(
        images,
        corruptions,
        names,
        severity,
        data_seed,
        code,
        workers=workers,
        progress=progress,
        desc=f"Corrupted CIFAR-10 type {kind} {split}",
    )
    return {
        f"{split}_images": np.ascontiguousarray(corrupted.transpose(0, 3, 1, 2)),
        f"{split}_objects": objects.astype(np.int64),
        f"{split}_corruptions": corruptions,
    }


@dataclass(frozen=True)
class CCIFARParams:
    ratio: float = 99.0  # percent of bias-aligned training samples
    difficulty: int = 4  # 1..4: CIFAR-10-C severity 2..5
    target: str = field(default="object", metadata={"generation": False})  # "corruption": reversed task
    unbiased_train: bool = False  # Table 1's Accuracy*: training corruptions at the 10% ratio
    # Which samples of a class get which corruption: "reference" (positional, the paper's) or "random".
    assignment: str = "reference"


_WARNED_PARTIAL: set[str] = set()  # raw CIFAR-10 directories already reported as partial copies


class CorruptedCIFAR10(BiasedDataset):
    downloads = True
    """Shared implementation; `kind` selects the corruption list (registered subclasses below)."""

    kind: ClassVar[int] = 1
    Params = CCIFARParams
    has_bias_labels = True
    target_attribute = "Object"
    bias_attribute = "Corruption"
    generator_version = "2"  # 2: the assignment parameter (reference rule by default)
    protocol = TrainProtocol(lr=1e-3, weight_decay=0.0, batch_size=256, epochs=200)
    input_spec: ClassVar[InputSpec] = InputSpec(
        scale=1.0 / 255.0, mean=CIFAR_MEAN, std=CIFAR_STD, crop_padding=4, horizontal_flip=True
    )

    @classmethod
    def canonical(cls, params: CCIFARParams) -> CCIFARParams:
        severity_of(params.difficulty)
        check_assignment(params.assignment)
        if params.target not in TARGETS:
            raise ValueError(f"invalid target {params.target!r}: choose one of {', '.join(TARGETS)}")
        if not isinstance(params.unbiased_train, bool):
            raise ValueError(f"unbiased_train must be true or false, got {params.unbiased_train!r}")
        if params.unbiased_train:
            return replace(params, ratio=UNBIASED_RATIO)  # the ratio is unused; keep keys canonical
        aligned_fraction_from_ratio(params.ratio, 10)
        return replace(params, ratio=float(params.ratio))

    @classmethod
    def diagnosis_settings(cls, params, paths: DataPaths | None = None) -> DiagnosisSettings:
        """Reverse: the other target (Object <-> Corruption); balanced: the unbiased training set
        (Table 1's Accuracy*), so the diagnosis trials are Table 1's."""
        return swapped_target_diagnosis(
            params,
            TARGETS,
            {"object": "Object", "corruption": "Corruption"},
            {"object": tuple(CLASS_NAMES), "corruption": tuple(corruption_names(cls.kind))},
            f"Corrupted CIFAR-10 type {cls.kind}",
        )

    @classmethod
    def generate(
        cls,
        params: CCIFARParams,
        train: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        data_seed: int = 0,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> dict[str, np.ndarray]:
        """All arrays of one configuration from raw (images uint8 HWC, labels) pairs."""
        params = cls.canonical(params)
        severity = severity_of(params.difficulty)
        ratio = UNBIASED_RATIO if params.unbiased_train else params.ratio
        started = time.perf_counter()
        arrays = {
            **make_split(
                *train, ratio / 100.0, cls.kind, severity, data_seed, "train", workers, progress, params.assignment
            ),
            **make_split(
                *test,
                UNBIASED_RATIO / 100.0,
                cls.kind,
                severity,
                data_seed,
                "test",
                workers,
                progress,
                params.assignment,
            ),
        }
        log.info("generated %s %s in %.1f s", cls.name, cls.generation_params(params), time.perf_counter() - started)
        return arrays

    @classmethod
    def arrays(cls, params: CCIFARParams, paths: DataPaths, data_seed: int) -> dict[str, np.ndarray]:
        source = locate_cifar10(paths)
        key = {
            "family": cls.name,
            "version": cls.generator_version,
            "data_seed": data_seed,
            "raw": fingerprint(source),
            **cls.generation_params(params),
        }

        def build() -> dict[str, np.ndarray]:
            raw = read_cifar10(source)
            log.info("generating %s %s from %s", cls.name, cls.generation_params(params), source)
            return cls.generate(
                params, (raw.train_images, raw.train_labels), (raw.test_images, raw.test_labels), data_seed
            )

        ranges = {f"{split}_{name}": 10 for split in ("train", "test") for name in ("objects", "corruptions")}
        arrays = load_or_build(
            paths.cache_dir, cls.name, key, build, label_ranges=ranges, raw=cls.raw_fingerprint(params, paths)
        )
        sizes = {"train": len(arrays["train_objects"]), "test": len(arrays["test_objects"])}
        if sizes != FULL_SIZES and str(source) not in _WARNED_PARTIAL:
            # Said on every run, cached or not: results from a partial copy are not the paper's.
            _WARNED_PARTIAL.add(str(source))
            log.warning(
                "CIFAR-10 in %s is a partial copy (%d train / %d test images; the full dataset has "
                "50,000 / 10,000): fine for smoke runs, not comparable with the paper. Its results are "
                "stored with the copy's fingerprint: a rerun on the full data trains them again",
                source,
                sizes["train"],
                sizes["test"],
            )
        return arrays

    @classmethod
    def raw_paths(cls, params: CCIFARParams, paths: DataPaths) -> list[Path]:
        """The six batch files of the CIFAR-10 copy the data root holds (none: not yet downloaded)."""
        source = find_cifar10(paths.data_root)
        return [] if source is None else [source / name for name in TRAIN_FILES + TEST_FILES]

    @classmethod
    def raw_data_note(cls, params: CCIFARParams, paths: DataPaths) -> str | None:
        """A partial CIFAR-10 copy, told from its batch files' sizes (a full one is about 31 MB each)."""
        found = cls.raw_paths(params, paths)
        size = sum(path.stat().st_size for path in found[: len(TRAIN_FILES)])
        if not found or size >= len(TRAIN_FILES) * 30_000_000:
            return None
        return (
            f"CIFAR-10 in {found[0].parent} is a partial copy (about {size // 3092:,} of 50,000 training images): "
            "its trials run, but not on the paper's data"
        )

    @classmethod
    def prepare(cls, params: CCIFARParams, paths: DataPaths, data_seed: int = 0) -> None:
        cls.arrays(cls.canonical(params), paths, data_seed)  # generate and cache; no tensors needed

    @classmethod
    def load(cls, params: CCIFARParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        arrays = cls.arrays(params, paths, data_seed)
        corruption_list = list(corruption_names(cls.kind))
        reversed_task = params.target == "corruption"

        def split(name: str) -> Split:
            objects = torch.from_numpy(arrays[f"{name}_objects"])
            corruptions = torch.from_numpy(arrays[f"{name}_corruptions"])
            target, bias = (corruptions, objects) if reversed_task else (objects, corruptions)
            return Split(images=torch.from_numpy(arrays[f"{name}_images"]), targets=target, biases=bias)

        return BiasedData(
            train=split("train"),
            test=split("test"),
            num_classes=10,
            class_names=corruption_list if reversed_task else list(CLASS_NAMES),
            num_bias_values=10,
            bias_names=list(CLASS_NAMES) if reversed_task else corruption_list,
            aligned_bias=torch.arange(10),
            input_spec=cls.input_spec,
            model="resnet20",
            generator_version=cls.generator_version,
        )


@register_dataset("ccifar1")
class CorruptedCIFAR10Type1(CorruptedCIFAR10):
    """Snow, Frost, Fog, Brightness, Contrast, Spatter, Elastic, JPEG, Pixelate, Saturate."""

    kind = 1


@register_dataset("ccifar2")
class CorruptedCIFAR10Type2(CorruptedCIFAR10):
    """Gaussian/Shot/Impulse/Speckle Noise, Gaussian/Defocus/Glass/Motion/Zoom Blur, Original."""

    kind = 2
