"""Bring your own data: images plus a table of attributes (user guide: docs/your-own-data.md).

Images come from a folder (any format Pillow opens) or from one .npy array of uint8 images
(N x H x W x C, N x C x H x W, or N x H x W for grey). The table (CSV or Parquet) has one row per
sample: a column locating the image (a path relative to the folder, or an integer row of the
array), the target attribute, optionally a bias attribute, and optionally a train/test column.

* Attribute values may be integers or strings; the classes are the distinct values of the whole
  table in sorted order (numeric order when every value is an integer), and their names are kept.
* Splits come from `split_column` (values train / test) or from a seeded split stratified by
  (target, bias) group: each group of n rows gives floor(n * test_fraction + 1/2) test rows.
* The aligned mapping g(y) is inferred from the training split, as CelebA does: with as many bias
  values as classes, the one-to-one mapping with the most training samples on b == g(y) (the
  identity when it ties for best); otherwise each class's most frequent bias value.
* `ratio` subsamples the training split per class to that percentage of aligned samples and
  `balanced_test` the evaluation split to the same number of samples in every group (counts are
  documented in `subsample_to_ratio` and `balance_groups`), both seeded by the data seed.
* Images are decoded once, in parallel and with a progress bar, into a uint8 cache entry
  (datasets/_cache.py layout, renamed into place only when complete) keyed by the resolution, the
  table's bytes and every image file's size and modification time (or the array file's), so an
  edited table or image is a new entry. Only rows' images are cached; labels and splits are read
  from the table on every load.

The table is untrusted input: no pickle is read (np.load with allow_pickle=False), image paths
may not leave the root, and each problem raises `ImageTableError` (a ValueError) or
`ImageTableNotFoundError` (a DataNotFoundError) naming the row or file and the fix.

Layout: `params` (the parameters, their checks and canonical form), `table` (reading the table,
encoding its columns), `splits` (splits, aligned mapping, subsampling), `images` (locating and
fingerprinting the images, the array cache), `dataset` (the registered `ImageTable`) and
`errors`. Importing this package registers the dataset; its public names are importable from here.
"""

from debiasbench.datasets.image_table.dataset import ImageTable, Plan
from debiasbench.datasets.image_table.errors import ImageTableError, ImageTableNotFoundError
from debiasbench.datasets.image_table.images import (
    ARRAY_CHUNK,
    ImageSource,
    array_source,
    build_array_cache,
    folder_source,
    open_array,
)
from debiasbench.datasets.image_table.params import (
    ARRAY_SUFFIX,
    DEFAULT_FOLDER_RESOLUTION,
    DEFAULT_TEST_FRACTION,
    FAMILY,
    MIN_RESOLUTION,
    NORMALIZATIONS,
    OPTIMIZERS,
    RESIZE_MODES,
    ImageTableParams,
    canonical_params,
    is_array_root,
    model_arguments,
)
from debiasbench.datasets.image_table.splits import (
    SPLIT_VALUES,
    _largest_remainder,  # noqa: F401  (tests check its tie-breaking)
    aligned_mapping,
    balance_groups,
    group_ids,
    ratio_counts,
    stratified_test_rows,
    subsample_to_ratio,
)
from debiasbench.datasets.image_table.table import TABLE_FORMATS, Table, encode_attribute, read_table

__all__ = [
    "ARRAY_CHUNK",
    "ARRAY_SUFFIX",
    "DEFAULT_FOLDER_RESOLUTION",
    "DEFAULT_TEST_FRACTION",
    "FAMILY",
    "ImageSource",
    "ImageTable",
    "ImageTableError",
    "ImageTableNotFoundError",
    "ImageTableParams",
    "MIN_RESOLUTION",
    "NORMALIZATIONS",
    "OPTIMIZERS",
    "Plan",
    "RESIZE_MODES",
    "SPLIT_VALUES",
    "TABLE_FORMATS",
    "Table",
    "aligned_mapping",
    "array_source",
    "balance_groups",
    "build_array_cache",
    "canonical_params",
    "encode_attribute",
    "folder_source",
    "group_ids",
    "is_array_root",
    "model_arguments",
    "open_array",
    "ratio_counts",
    "read_table",
    "stratified_test_rows",
    "subsample_to_ratio",
]
