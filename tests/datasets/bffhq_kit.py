"""A tiny fake BFFHQ in the published layout, written by the tests (the real data is never in the
repository: FFHQ's licence forbids redistributing it).

Images are small synthetic PNGs: the target is a shape (0 "young": a filled square, 1 "old": a
horizontal bar) and the bias a colour style (0 "female": red on a light background, 1 "male": blue
on a dark one), so a decoded row can be matched to its name's labels by colour alone.

    bffhq/0.5pct/align/<target>/<id>_<t>_<b>.png   one level of class subfolders, as DFA globs it
    bffhq/0.5pct/conflict/<target>/...
    bffhq/1pct/align/<id>_<t>_<b>.png              flat, as some copies are
    bffhq/1pct/conflict/...
    bffhq/valid/<id>_<t>_<b>.png                   biased, like the training set
    bffhq/test/<id>_<t>_<b>.png                    aligned and conflicting images
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 20
# Images per (target, bias) group. Aligned groups are (0, 0) and (1, 1).
TRAIN_COUNTS = {
    0.5: {(0, 0): 4, (0, 1): 1, (1, 0): 2, (1, 1): 3},
    1.0: {(0, 0): 3, (0, 1): 2, (1, 0): 2, (1, 1): 3},
}
VALID_COUNTS = {(0, 0): 3, (0, 1): 1, (1, 0): 1, (1, 1): 2}
TEST_COUNTS = {(0, 0): 2, (0, 1): 3, (1, 0): 2, (1, 1): 1}
SUBFOLDERS = {0.5: True, 1.0: False}
COLOURS = {0: ((220, 40, 40), (235, 235, 235)), 1: ((40, 40, 220), (25, 25, 25))}  # bias: (shape, background)


def fake_face(target: int, bias: int) -> Image.Image:
    """A SIZE x SIZE RGB image: shape by target, colours by bias."""
    shape, background = COLOURS[bias]
    pixels = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[:] = background
    if target == 0:
        pixels[5:15, 5:15] = shape
    else:
        pixels[8:12, 2:18] = shape
    return Image.fromarray(pixels)


class Ids:
    """Unique five-digit image ids across the whole tree, like FFHQ's."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> str:
        self.next += 1
        return f"{self.next:05d}"


def _write_groups(folder: Path, counts: dict[tuple[int, int], int], ids: Ids, subfolders: bool) -> None:
    for (target, bias), count in counts.items():
        where = folder / str(target) if subfolders else folder
        where.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            fake_face(target, bias).save(where / f"{ids()}_{target}_{bias}.png")


def make_bffhq(root: Path, pcts: tuple[float, ...] = (0.5, 1.0)) -> Path:
    """Write the fake tree under root/bffhq and return that folder. A macOS .DS_Store is left in
    align/, as archives made on a Mac carry one; the loader must skip it."""
    bffhq = root / "bffhq"
    ids = Ids()
    for pct in pcts:
        train = bffhq / f"{pct:g}pct"
        counts = TRAIN_COUNTS[pct]
        aligned = {group: n for group, n in counts.items() if group[0] == group[1]}
        conflicting = {group: n for group, n in counts.items() if group[0] != group[1]}
        _write_groups(train / "align", aligned, ids, SUBFOLDERS[pct])
        _write_groups(train / "conflict", conflicting, ids, SUBFOLDERS[pct])
        (train / "align" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _write_groups(bffhq / "valid", VALID_COUNTS, ids, subfolders=False)
    _write_groups(bffhq / "test", TEST_COUNTS, ids, subfolders=False)
    return bffhq
