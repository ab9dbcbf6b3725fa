import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parent.parent
TOY_PLUGIN = str(REPO / "tests" / "fixtures" / "toy_plugin.py")


def _data_root() -> Path:
    candidates = [os.environ.get("DEBIAS_DATA_ROOT"), REPO / "data", REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "MNIST" / "raw").is_dir():
            return Path(candidate)
    return Path(candidates[0] or REPO / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _data_root()


@pytest.fixture(scope="session")
def mnist_paths(data_root, tmp_path_factory):
    """DataPaths with real MNIST and a session-wide generated-data cache (skip without MNIST)."""
    from datasets.base import DataPaths

    if not (data_root / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found under {data_root}; set DEBIAS_DATA_ROOT")
    return DataPaths(data_root=data_root, cache_dir=tmp_path_factory.mktemp("cache"), allow_download=False)


@pytest.fixture(scope="session")
def toy_plugin():
    from benchmark.plugins import load_plugins

    load_plugins([TOY_PLUGIN])
    return TOY_PLUGIN
