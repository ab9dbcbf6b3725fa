"""Biased datasets, one module each, registered by name (see datasets/base.py).

Installed, this is `debiasbench.datasets`, beside (never instead of) Hugging Face's `datasets`.
"""

from debiasbench._layout import refuse_old_name

refuse_old_name(__name__)  # this folder imported by its old top-level name

from debiasbench.datasets.base import DATASETS, BiasedData, BiasedDataset, DataNotFoundError, DataPaths, Split

__all__ = ["DATASETS", "BiasedData", "BiasedDataset", "DataNotFoundError", "DataPaths", "Split"]
