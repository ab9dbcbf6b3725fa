"""Export the built-in Colored MNIST as an image folder plus a table, the layout `image_table` reads.

    python -m debiasbench.tools.export_cmnist_image_table --data-root ../shared/data --out DIR [--ratio 99.5]

writes

    DIR/images/train/00000.png ...   lossless RGB PNGs, 28 x 28, in the built-in dataset's order
    DIR/images/test/00000.png ...
    DIR/cmnist.csv                   path, digit, color, split (train rows first, then test rows)
    DIR/image_table.json             the image_table parameters that load it as the same data

The colours are written as color0 ... color9, so both the class and the bias names match the
built-in dataset, and sorted order is index order. The parameters in image_table.json take the
model (mlp), the input scaling, the augmentation (none) and the optimisation settings from the
built-in dataset, so a trial on the export trains exactly as one on `cmnist` with the same seeds.
The table is written last, under a temporary name renamed into place, so an interrupted export
leaves no table behind; DIR must be new or empty.

Other Colored MNIST parameters pass through --param KEY=VALUE (e.g. --param assignment=random,
--param target=color for the reversed task). --limit-train / --limit-test keep only the first N
samples of a split (for quick looks and tests; image_table then matches the built-in arrays'
first N rows).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from debiasbench.datasets.base import BiasedData, DataPaths
from debiasbench.datasets.cmnist import INPUT_SCALINGS, ColoredMNIST
from debiasbench.tools.dataset_cli import add_dataset_arguments, dataset_values

TABLE_NAME = "cmnist.csv"
PARAMS_NAME = "image_table.json"
COLUMNS = ("path", "digit", "color", "split")


def image_table_params(out: Path, cmnist_params: Any, data: BiasedData) -> dict[str, Any]:
    """The image_table parameters that reproduce the built-in dataset's inputs, model and protocol."""
    spec = data.input_spec
    scaling = [name for name, scale in INPUT_SCALINGS.items() if scale == spec.scale]
    if (
        not scaling
        or spec.mean is not None
        or spec.std is not None
        or spec.crop_padding
        or spec.horizontal_flip
        or spec.crop_size is not None
        or data.model != "mlp"
    ):
        raise RuntimeError(
            f"the built-in Colored MNIST pipeline ({spec}, model {data.model}) has options this export "
            "does not map to image_table parameters; update tools/export_cmnist_image_table.py"
        )
    protocol = ColoredMNIST.train_protocol(cmnist_params)
    target = cmnist_params.target  # "digit", or "color" for the reversed task
    return {
        "root": str(out.resolve()),
        "table": TABLE_NAME,
        "path_column": "path",
        "target": target,
        "bias": "color" if target == "digit" else "digit",
        "split_column": "split",
        "resolution": 28,
        "model": "mlp",
        "pretrained": False,
        "input_scaling": scaling[0],
        "normalization": "none",
        "horizontal_flip": False,
        "crop_padding": 0,
        "lr": protocol.lr,
        "weight_decay": protocol.weight_decay,
        "batch_size": protocol.batch_size,
        "epochs": protocol.epochs,
        "optimizer": protocol.optimizer,
    }


def export(
    out: Path,
    cmnist_params: Any,
    paths: DataPaths,
    data_seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the export and return its image_table parameters."""
    from PIL import Image
    from tqdm import tqdm

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; export into a new or empty folder")
    data = ColoredMNIST.load(cmnist_params, paths, data_seed)
    params = image_table_params(out, cmnist_params, data)
    rows: list[tuple[str, int, str, str]] = []
    for split_name, split, limit in (("train", data.train, limit_train), ("test", data.test, limit_test)):
        count = len(split) if limit is None else min(limit, len(split))
        digits, colors = split.targets, split.biases
        if cmnist_params.target != "digit":  # the reversed task: targets are colours
            digits, colors = colors, digits
        images = split.images[:count].numpy()
        folder = out / "images" / split_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in tqdm(
            range(count), desc=f"writing {split_name} PNGs", unit="img", disable=not progress, mininterval=2.0
        ):
            relative = f"images/{split_name}/{i:05d}.png"
            Image.fromarray(np.ascontiguousarray(images[i].transpose(1, 2, 0)), "RGB").save(
                out / relative, format="PNG", compress_level=1
            )
            rows.append((relative, int(digits[i]), f"color{int(colors[i])}", split_name))
    (out / PARAMS_NAME).write_text(json.dumps(params, indent=1) + "\n")
    partial = out / f".{TABLE_NAME}.partial"
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    os.replace(partial, out / TABLE_NAME)
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (new or empty)")
    add_dataset_arguments(parser, "assignment=random or target=color")
    parser.add_argument("--limit-train", type=int, help="export only the first N training samples")
    parser.add_argument("--limit-test", type=int, help="export only the first N test samples")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cmnist_params = ColoredMNIST.make_params(dataset_values(args))
    paths = DataPaths.resolve(args.data_root, args.cache_dir)
    out = Path(args.out).expanduser()
    params = export(out, cmnist_params, paths, args.data_seed, args.limit_train, args.limit_test, not args.quiet)
    print(f"wrote {out / TABLE_NAME} and its images; image_table parameters ({out / PARAMS_NAME}):")
    print(json.dumps(params, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
