"""Biased datasets, one module each, registered by name (see datasets/base.py).

Note: this top-level package shadows Hugging Face's `datasets` inside this project; the suite
does not use that library.
"""

from datasets.base import DATASETS, BiasedData, BiasedDataset, DataNotFoundError, DataPaths, Split

__all__ = ["DATASETS", "BiasedData", "BiasedDataset", "DataNotFoundError", "DataPaths", "Split"]
