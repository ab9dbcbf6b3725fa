"""Where raw data and generated datasets live: --data-root / --cache-dir, else the environment,
else ./data. Torch-free, so the training stack and the report resolve them the same way."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "DEBIAS_DATA_ROOT"
CACHE_DIR_ENV = "DEBIAS_CACHE_DIR"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $DEBIAS_DATA_ROOT, else ./data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data").expanduser().resolve()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """--cache-dir, else $DEBIAS_CACHE_DIR, else ./data/cache (never inside a read-only data root)."""
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or "data/cache").expanduser().resolve()
