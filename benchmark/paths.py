"""Where raw data and generated datasets live (--data-root / --cache-dir, else the environment,
else ./data and the user's cache folder), and whether the code runs from a checkout of this
project. Torch-free, so the training stack and the report resolve them the same way."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "DEBIAS_DATA_ROOT"
CACHE_DIR_ENV = "DEBIAS_CACHE_DIR"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root, else $DEBIAS_DATA_ROOT, else ./data."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data").expanduser().resolve()


def user_cache_dir() -> Path:
    """The user's cache folder for this suite: $XDG_CACHE_HOME/debiasbench, else ~/.cache/debiasbench.
    Not the working directory: a command started elsewhere finds the same generated data."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "debiasbench"


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """--cache-dir, else $DEBIAS_CACHE_DIR, else the user's cache folder (`user_cache_dir`)."""
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or user_cache_dir()).expanduser().resolve()


_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding benchmark/, methods/, ...


def checkout_root() -> Path | None:
    """The root of a source checkout of this project when the code runs from one, else None (an
    installed package: the folder above it is site-packages, not the project)."""
    pyproject = _PACKAGE_ROOT / "pyproject.toml"
    if (_PACKAGE_ROOT / "run_all.py").is_file() and pyproject.is_file():
        if 'name = "debiasbench"' in pyproject.read_text(errors="replace"):
            return _PACKAGE_ROOT
    return None
