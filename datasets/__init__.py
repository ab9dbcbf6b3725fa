"""Biased datasets, one module each, registered by name (see datasets/base.py).

Installed, this is `debiasbench.datasets`, beside (never instead of) Hugging Face's `datasets`.
"""

if not __name__.startswith("debiasbench."):  # this folder imported by its old top-level name
    raise ImportError(
        f"`{__name__}` is DebiasBench's folder, imported as `debiasbench.{__name__}` since the package has one "
        f"import name: write `from debiasbench.{__name__}... import ...`; if you meant Hugging Face `datasets`, "
        "this checkout's datasets/ folder shadows it when Python runs from the checkout's root: run from another "
        "folder (docs/architecture.md)"
    )

from debiasbench.datasets.base import DATASETS, BiasedData, BiasedDataset, DataNotFoundError, DataPaths, Split

__all__ = ["DATASETS", "BiasedData", "BiasedDataset", "DataNotFoundError", "DataPaths", "Split"]
