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
    from debiasbench.datasets.base import DataPaths

    if not (data_root / "MNIST" / "raw").is_dir():
        pytest.skip(f"MNIST not found under {data_root}; set DEBIAS_DATA_ROOT")
    return DataPaths(data_root=data_root, cache_dir=tmp_path_factory.mktemp("cache"), allow_download=False)


@pytest.fixture(scope="session")
def toy_plugin():
    from debiasbench.benchmark.plugins import load_plugins

    load_plugins([TOY_PLUGIN])
    return TOY_PLUGIN


@pytest.fixture
def registry_without_bias_labels(monkeypatch):
    """Trial resolution sees only a BAR-like dataset without bias labels, which must never load data."""
    from debiasbench.benchmark.experiments import resolve as resolve_module
    from debiasbench.datasets.base import BiasedDataset

    class NoBiasLabels(BiasedDataset):
        name = "no_bias_labels"
        has_bias_labels = False

        @classmethod
        def make_params(cls, values=None):
            return None

        @classmethod
        def load(cls, params, paths, data_seed=0):
            raise AssertionError("a refused trial must never load data")

    class StubDatasets:
        def get(self, name: str):
            return NoBiasLabels

    monkeypatch.setattr(resolve_module, "DATASETS", StubDatasets())
