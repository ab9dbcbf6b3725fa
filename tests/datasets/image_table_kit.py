"""Shared by the image_table tests: small folders of solid-colour PNG/JPEG files (each row's colour
tells which file it came from) with a CSV or Parquet table, and readers of what was loaded."""

from collections import Counter

import numpy as np
from PIL import Image

from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.image_table import (
    ImageTable,
)

# (label, bg, split, rows): cats mostly on water and dogs mostly on land, so the aligned mapping
# in sorted index order (cat 0, dog 1; land 0, water 1) is the swap.
DESIGN = [
    ("cat", "water", "train", 12),
    ("cat", "land", "train", 3),
    ("dog", "land", "train", 10),
    ("dog", "water", "train", 2),
] + [(y, b, "test", 2) for y in ("cat", "dog") for b in ("land", "water")]
SIZES = (1, 2, 10)  # an integer column: classes in numeric order 1, 2, 10


def colour_of(i: int) -> tuple[int, int, int]:
    return (10 + (i * 37) % 230, 10 + (i * 91) % 230, 10 + (i * 53) % 230)


def make_rows(seed: int = 0) -> list[dict]:
    rows = [dict(label=y, bg=b, split=s) for y, b, s, n in DESIGN for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(rows))  # splits interleaved in the table
    rows = [rows[k] for k in order]
    for i, row in enumerate(rows):
        row["path"] = f"{'jpeg/' if i % 6 == 5 else 'png/'}{i:03d}.{'jpg' if i % 6 == 5 else 'png'}"
        row["size"] = SIZES[i % 3]
    return rows


def write_images(root, rows, size=(10, 7)) -> None:
    for i, row in enumerate(rows):
        path = root / row["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, colour_of(i)).save(path, quality=95)


def write_table(path, rows, columns=("path", "label", "bg", "split", "size")) -> None:
    import pandas as pd

    frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows])
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


class Folder:
    """An image folder with its table, and a loader with the usual test parameters."""

    def __init__(self, tmp_path, table="labels.csv"):
        self.root = tmp_path / "images"
        self.rows = make_rows()
        write_images(self.root, self.rows)
        self.table = self.root / table
        write_table(self.table, self.rows)
        self.paths = DataPaths(tmp_path / "data", tmp_path / "cache", allow_download=False)

    def params(self, **overrides):
        values = dict(
            root=str(self.root),
            table=self.table.name,
            target="label",
            bias="bg",
            split_column="split",
            resolution=8,
            model="mlp",
        )
        values.update(overrides)
        return ImageTable.make_params({k: v for k, v in values.items() if v is not None or k == "bias"})

    def load(self, data_seed=0, **overrides):
        return ImageTable.load(self.params(**overrides), self.paths, data_seed)

    def entries(self):
        family = self.paths.cache_dir / "image_table"
        return sorted(p.name for p in family.iterdir()) if family.exists() else []


def row_ids(split) -> list[int]:
    """Which table row each sample came from, read back from its solid colour."""
    lookup = {colour_of(i): i for i in range(200)}
    means = split.images.float().mean((2, 3)).round().long().tolist()
    out = []
    for mean in means:
        best = min(lookup, key=lambda c: sum(abs(a - b) for a, b in zip(c, mean)))
        assert sum(abs(a - b) for a, b in zip(best, mean)) < 12
        out.append(lookup[best])
    return out


def groups(data, split) -> Counter:
    names = data.bias_names
    return Counter(
        (data.class_names[y], names[b] if names else None)
        for y, b in zip(
            split.targets.tolist(), (split.biases if split.biases is not None else split.targets * 0).tolist()
        )
    )
