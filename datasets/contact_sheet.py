"""A contact sheet of the Corrupted CIFAR-10 protocol, for checking it by eye: the same few CIFAR-10
test images, clean and under every corruption of both types at every CIFAR-10-C severity (the
paper's difficulties 1-4 are severities 2-5).

    python -m debiasbench.datasets.contact_sheet --data-root DIR --out contact_sheet.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.cifar10_source import CLASS_NAMES, load_cifar10
from debiasbench.datasets.corruptions import CORRUPTION_TYPES, SEVERITIES, corrupt, image_rngs

LABEL_WIDTH = 110
HEADER_HEIGHT = 34
GAP = 8
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def pick_images(images: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """The first test image of each of the first `count` classes (so the sheet shows varied content)."""
    chosen = [int(np.flatnonzero(labels == c)[0]) for c in range(10) if (labels == c).any()][:count]
    return np.asarray(chosen)


def render(images: np.ndarray, scale: int = 2, seed: int = 0) -> Image.Image:
    """The sheet for a batch of uint8 (K, 32, 32, 3) images: a block per corruption type, a row per
    corruption, a column per severity (plus the clean images)."""
    k = len(images)
    tile = 32 * scale
    cell_width = k * tile + GAP
    columns = ["clean"] + [f"severity {s}" + (f" (difficulty {s - 1})" if s > 1 else " (unused)") for s in SEVERITIES]
    rows = [(kind, name) for kind, names in CORRUPTION_TYPES.items() for name in names]
    height = len(CORRUPTION_TYPES) * HEADER_HEIGHT + len(rows) * (tile + GAP) + GAP
    sheet = Image.new("RGB", (LABEL_WIDTH + len(columns) * cell_width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    rngs_for = lambda: image_rngs(seed, 1, range(k))  # noqa: E731 - the same seeds in every cell

    def paste(batch: np.ndarray, column: int, top: int) -> None:
        for i, image in enumerate(batch):
            big = Image.fromarray(image).resize((tile, tile), Image.NEAREST)
            sheet.paste(big, (LABEL_WIDTH + column * cell_width + i * tile, top))

    top = 0
    for kind, names in CORRUPTION_TYPES.items():
        draw.text((4, top + 4), f"Corrupted CIFAR-10 type {kind}", fill=INK, font=font)
        for column, title in enumerate(columns):
            draw.text((LABEL_WIDTH + column * cell_width, top + 20), title, fill=INK, font=font)
        top += HEADER_HEIGHT
        for name in names:
            draw.text((4, top + tile // 2 - 6), name, fill=INK, font=font)
            paste(images, 0, top)
            for column, severity in enumerate(SEVERITIES, start=1):
                paste(corrupt(images, name, severity, rngs_for()), column, top)
            top += tile + GAP
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="raw data directory (default: $DEBIAS_DATA_ROOT, else ./data)")
    parser.add_argument("--out", default="contact_sheet.png", help="PNG file to write (default: %(default)s)")
    parser.add_argument("--images", type=int, default=4, help="images per cell, one per class (1-10)")
    parser.add_argument("--scale", type=int, default=2, help="pixel magnification (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random corruptions")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 10:
        parser.error("--images must be between 1 and 10")
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    raw = load_cifar10(DataPaths.resolve(args.data_root))
    index = pick_images(raw.test_images, raw.test_labels, args.images)
    sheet = render(raw.test_images[index], scale=args.scale, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    classes = ", ".join(CLASS_NAMES[c] for c in raw.test_labels[index])
    print(f"wrote {out} ({sheet.width}x{sheet.height}; test images {index.tolist()}: {classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
