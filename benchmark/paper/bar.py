"""BAR's published metadata (metadata.json: per image its action class and split), read once for
the dataset and for the report's Table 7. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path

from debiasbench.benchmark.paper.axes import BAR_CLASS_ALIASES, BAR_CLASSES


def bar_class_index(name: str) -> int:
    """Class index of a metadata `cls` value or a file prefix (vaulting may be spelt "pole vaulting")."""
    key = name.strip().lower()
    key = BAR_CLASS_ALIASES.get(key, key)
    if key not in BAR_CLASSES:
        raise ValueError(
            f"unknown BAR class {name!r}; the classes are {', '.join(BAR_CLASSES)} "
            "(vaulting may be spelt 'pole vaulting')"
        )
    return BAR_CLASSES.index(key)


def read_bar_metadata(path: Path) -> dict[str, tuple[int, bool]]:
    """Per image key: (class index, whether it is a training image)."""
    metadata = json.loads(Path(path).read_text())
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} is not BAR's metadata.json: expected an object keyed by image name")
    return {key: (bar_class_index(str(item["cls"])), bool(item["train"])) for key, item in metadata.items()}


def bar_class_counts(path: Path) -> dict[str, dict[str, int]]:
    """Table 7: images per split ("train", "test") and class name."""
    counts = {split: dict.fromkeys(BAR_CLASSES, 0) for split in ("train", "test")}
    for class_index, train in read_bar_metadata(path).values():
        counts["train" if train else "test"][BAR_CLASSES[class_index]] += 1
    return counts
