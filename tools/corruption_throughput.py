"""Corrupted CIFAR-10 generation throughput (a benchmark, not a test).

1. Images per second per core for each corruption at each CIFAR-10-C severity (single process,
   per-image generator creation included, as in generation; one-off costs warmed up first).
2. Wall time to generate one full 60,000-image configuration (50,000 train + 10,000 test) of each
   type through the dataset's own generator (`CorruptedCIFAR10.generate`, process pool included).
   When the data root holds only a partial CIFAR-10 (the offline subset has 6,102 images), the
   real images are TILED up to 50,000 / 10,000 so the work is that of the full configuration.

    python -m debiasbench.tools.corruption_throughput --data-root ../shared/data/CIFAR10-subset --workers 2

Results depend on what else runs on the machine: the load average is printed before each part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.ccifar import CorruptedCIFAR10Type1, CorruptedCIFAR10Type2, severity_of
from debiasbench.datasets.cifar10_source import FULL_SIZES, load_cifar10
from debiasbench.datasets.corruptions import CORRUPTION_TYPES, SEVERITIES, corrupt, image_rngs, warm_up

DATASETS = {1: CorruptedCIFAR10Type1, 2: CorruptedCIFAR10Type2}


def tile(images: np.ndarray, labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the images (and labels) until there are `count` of them."""
    index = np.arange(count) % len(images)
    return images[index], labels[index]


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "load average unavailable"


def per_corruption(images: np.ndarray, types: list[int], severities: list[int]) -> dict[str, dict[int, float]]:
    rates: dict[str, dict[int, float]] = {}
    for kind in types:
        warm_up(CORRUPTION_TYPES[kind])
        for name in CORRUPTION_TYPES[kind]:
            corrupt(images[:8], name, 1, image_rngs(0, 0, range(8)))  # one-off caches and imports
            rates[name] = {}
            for severity in severities:
                started = time.perf_counter()
                corrupt(images, name, severity, image_rngs(0, 0, range(len(images))))
                rates[name][severity] = len(images) / (time.perf_counter() - started)
            cells = "  ".join(f"s{s} {rates[name][s]:8.0f}" for s in severities)
            print(f"  type {kind} {name:14s} {cells}", flush=True)
    return rates


def full_configuration(raw, kind: int, workers: int, difficulty: int, ratio: float) -> float:
    cls = DATASETS[kind]
    train = tile(raw.train_images, raw.train_labels, FULL_SIZES["train"])
    test = tile(raw.test_images, raw.test_labels, FULL_SIZES["test"])
    params = cls.make_params({"ratio": ratio, "difficulty": difficulty})
    started = time.perf_counter()
    arrays = cls.generate(params, train, test, data_seed=0, workers=workers, progress=False)
    elapsed = time.perf_counter() - started
    assert arrays["train_images"].shape == (FULL_SIZES["train"], 3, 32, 32)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="raw data directory (default: $DEBIAS_DATA_ROOT, else ./data)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the full configuration")
    parser.add_argument("--types", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--severities", type=int, nargs="+", default=list(SEVERITIES), choices=list(SEVERITIES))
    parser.add_argument("--images", type=int, default=1000, help="images per corruption and severity")
    parser.add_argument("--difficulty", type=int, default=4, help="paper difficulty of the full configuration")
    parser.add_argument("--ratio", type=float, default=99.0, help="ratio of the full configuration")
    parser.add_argument("--skip-per-corruption", action="store_true")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    raw = load_cifar10(DataPaths.resolve(args.data_root))
    real = len(raw.train_images) + len(raw.test_images)
    print(
        f"CIFAR-10 from {raw.source}: {len(raw.train_images)} train + {len(raw.test_images)} test real images; "
        f"{os.cpu_count()} CPUs; {load()}"
    )
    results: dict = {"real_images": real, "workers": args.workers}
    if not args.skip_per_corruption:
        images, _ = tile(np.concatenate([raw.train_images, raw.test_images]), np.zeros(real, np.int64), args.images)
        print(f"images/second/core, {args.images} images per cell (single process):")
        results["images_per_second_per_core"] = per_corruption(images, args.types, args.severities)
    if not args.skip_full:
        tiled = real < sum(FULL_SIZES.values())
        note = f" (real images tiled from {real})" if tiled else ""
        severity = severity_of(args.difficulty)
        print(
            f"full configuration: 50,000 train + 10,000 test{note}, ratio {args.ratio:g}, difficulty "
            f"{args.difficulty} (severity {severity}), {args.workers} workers; {load()}"
        )
        results["full_configuration_seconds"] = {}
        for kind in args.types:
            seconds = full_configuration(raw, kind, args.workers, args.difficulty, args.ratio)
            results["full_configuration_seconds"][kind] = seconds
            print(f"  type {kind}: {seconds:.1f} s  ({sum(FULL_SIZES.values()) / seconds:.0f} images/s)", flush=True)
        results["tiled"] = tiled
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
