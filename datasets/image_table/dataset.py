"""The registered `image_table` dataset: `plan` reads and checks the table, splits and subsamples
it and locates the images (no pixels); `images` decodes them once into the cache; `load` returns
the splits and what the trainer needs (input scaling, model arguments, optimisation)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiasbench.datasets._cache import cache_key
from debiasbench.datasets._image_decoding import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    UnreadableImageError,
    build_memmap_cache,
    read_memmap_cache,
)
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataPaths,
    DiagnosisSettings,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)
from debiasbench.datasets.cmnist import INPUT_SCALINGS
from debiasbench.datasets.image_table.errors import ImageTableError, ImageTableNotFoundError
from debiasbench.datasets.image_table.images import ImageSource, _take, array_source, build_array_cache, folder_source
from debiasbench.datasets.image_table.params import (
    FAMILY,
    ImageTableParams,
    _text,
    canonical_params,
    is_array_root,
    model_arguments,
)
from debiasbench.datasets.image_table.splits import (
    SPLIT_VALUES,
    aligned_mapping,
    balance_groups,
    group_ids,
    stratified_test_rows,
    subsample_to_ratio,
    warn_repeated_images,
)
from debiasbench.datasets.image_table.table import Table, _missing, encode_attribute, read_table

# The package's name, as before it became a package: trial logs show it (%(name)s).
log = logging.getLogger(__package__)


@dataclass
class Plan:
    """Everything but the pixels: located files, labels, split rows and the aligned mapping."""

    root: Path
    cache_dir: Path
    table: Table
    source: ImageSource
    targets: np.ndarray
    class_names: list[str]
    biases: np.ndarray | None
    bias_names: list[str] | None
    train_rows: np.ndarray
    test_rows: np.ndarray
    mapping: np.ndarray | None


@register_dataset("image_table")
class ImageTable(BiasedDataset):
    Params = ImageTableParams
    has_bias_labels = True  # the family can have them; per parameters: has_bias_labels_for
    target_attribute = "<target column>"
    bias_attribute = "<bias column, optional>"
    generator_version = "1"

    @classmethod
    def has_bias_labels_for(cls, params: ImageTableParams) -> bool:
        return _text(params.bias, "bias", required=False) is not None

    @classmethod
    def canonical(cls, params: ImageTableParams) -> ImageTableParams:
        return canonical_params(params)

    @classmethod
    def train_protocol(cls, params: ImageTableParams) -> TrainProtocol:
        return TrainProtocol(
            lr=params.lr,
            weight_decay=params.weight_decay,
            batch_size=params.batch_size,
            epochs=params.epochs,
            optimizer=params.optimizer,
        )

    # -- files and labels ----------------------------------------------------------------------

    @classmethod
    def raw_paths(cls, params: ImageTableParams, paths: DataPaths) -> list[Path]:
        return list(cls.locate(params, paths))  # the images (a folder: a sample is hashed) and the table

    @staticmethod
    def locate(params: ImageTableParams, paths: DataPaths) -> tuple[Path, Path]:
        """(root, table) as absolute paths; a relative root is under the data root and a relative
        table inside the root folder (beside the array file)."""
        root = Path(os.path.expanduser(params.root))
        root = Path(os.path.normpath(root if root.is_absolute() else paths.data_root / root))
        array_mode = is_array_root(params.root)
        if not root.exists():
            raise ImageTableNotFoundError(
                f"image_table root {params.root!r} not found: {root} does not exist. A relative root is read under "
                f"the data root {paths.data_root} (--data-root or DEBIAS_DATA_ROOT); give an absolute path or move "
                f"the {'array file' if array_mode else 'image folder'} there"
            )
        if array_mode and not root.is_file():
            raise ImageTableError(f"image_table root {root} ends in .npy but is not a file; give the .npy array file")
        if not array_mode and not root.is_dir():
            raise ImageTableError(f"image_table root {root} is neither a folder of images nor a .npy array file")
        base = root.parent if array_mode else root
        table = Path(os.path.expanduser(params.table))
        table = Path(os.path.normpath(table if table.is_absolute() else base / table))
        if not table.is_file():
            raise ImageTableNotFoundError(
                f"image_table table {params.table!r} not found: {table} does not exist. A relative table is read "
                f"{'beside the array file' if array_mode else 'inside the root folder'} {base}; give an absolute "
                "path or move the table there"
            )
        return root, table

    @classmethod
    def plan(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> Plan:
        """Read and check the table, locate the images, split and subsample (no pixels decoded)."""
        params = cls.canonical(params)
        root, table_path = cls.locate(params, paths)
        table = read_table(table_path)
        targets, class_names = encode_attribute(table, params.target, "target")
        if len(class_names) < 2:
            raise ImageTableError(
                f"the target column {params.target!r} of {table.path} has a single value {class_names[0]!r} in "
                "every row; a classification target needs at least two classes: choose another column"
            )
        biases = bias_names = None
        if params.bias is not None:
            biases, bias_names = encode_attribute(table, params.bias, "bias")
            if len(bias_names) < 2:
                raise ImageTableError(
                    f"the bias column {params.bias!r} of {table.path} has a single value {bias_names[0]!r} in every "
                    "row, so no sample can conflict with it: choose another column, or leave bias unset"
                )
        num_bias = len(bias_names) if bias_names else 1
        target_name, bias_name = params.target, params.bias

        def describe(y: int | None, b: int | None) -> str:
            parts = ([f"{target_name}={class_names[y]}"] if y is not None else []) + (
                [f"{bias_name}={bias_names[b]}"] if b is not None else []
            )
            return "(" + ", ".join(parts) + ")"

        groups = group_ids(targets, biases, num_bias)
        if params.split_column is not None:
            values = table.column(params.split_column, "split_column")
            split = np.array([str(v).strip().lower() if not _missing(v) else "" for v in values])
            bad = np.flatnonzero(~np.isin(split, SPLIT_VALUES))
            if len(bad):
                others = sorted({str(values[i]) for i in bad})
                raise ImageTableError(
                    f"{table.row(int(bad[0]))}: the split column {params.split_column!r} holds {values[bad[0]]!r}; "
                    f"every row must say train or test ({len(bad)} rows do not; values seen: "
                    f"{', '.join(repr(v) for v in others[:5])}). Relabel or remove those rows (e.g. fold validation "
                    "rows into train or test), or drop split_column to split by test_fraction"
                )
            test_mask = split == "test"
            how = f"the split column {params.split_column!r}"
        else:
            test_mask = stratified_test_rows(groups, params.test_fraction, data_seed)
            strata = "(target, bias) group" if biases is not None else "class"
            how = (
                f"test_fraction={params.test_fraction:g} (each {strata} of n rows gives "
                "floor(n * test_fraction + 1/2) test rows)"
            )
        train_rows, test_rows = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
        for name, rows in (("training", train_rows), ("test", test_rows)):
            if not len(rows):
                fix = (
                    "put some rows in it"
                    if params.split_column is not None
                    else "use a larger test_fraction or more rows"
                    if name == "test"
                    else "use a smaller test_fraction"
                )
                raise ImageTableError(f"the {name} split is empty: {how} assigns no row of {table.path} to it; {fix}")

        mapping = None
        if biases is not None:
            mapping = aligned_mapping(targets[train_rows], biases[train_rows], len(class_names), num_bias)
            cls._log_mapping(params, targets[train_rows], biases[train_rows], mapping, class_names, bias_names)
            if params.ratio is not None:
                kept = subsample_to_ratio(
                    targets[train_rows], biases[train_rows], mapping, params.ratio, data_seed, describe
                )
                train_rows = train_rows[kept]
        missing = sorted(set(range(len(class_names))) - set(np.unique(targets[train_rows]).tolist()))
        if missing:
            log.warning(
                "image_table: class(es) %s of %r have no training samples",
                ", ".join(class_names[y] for y in missing),
                params.target,
            )
        if params.balanced_test:
            all_groups = list(range(len(class_names) * num_bias))
            kept = balance_groups(
                groups[test_rows],
                all_groups,
                data_seed,
                lambda g: describe(g // num_bias, g % num_bias if biases is not None else None),
            )
            test_rows = test_rows[kept]

        if is_array_root(params.root):
            source = array_source(table, params.path_column, root, params.resolution)
        else:
            source = folder_source(table, params.path_column, root, params.resolution)
        warn_repeated_images(table, source.row_ref, train_rows, test_rows, targets, biases, describe)
        cls._check_model_input(params, source)
        return Plan(
            root=root,
            cache_dir=paths.cache_dir,
            table=table,
            source=source,
            targets=targets,
            class_names=class_names,
            biases=biases,
            bias_names=bias_names,
            train_rows=train_rows,
            test_rows=test_rows,
            mapping=mapping,
        )

    @staticmethod
    def _log_mapping(params, targets, biases, mapping, class_names, bias_names) -> None:
        parts = []
        for y, b in enumerate(mapping):
            in_class = targets == y
            share = float(np.mean(biases[in_class] == b)) if in_class.any() else float("nan")
            parts.append(f"{class_names[y]} -> {bias_names[b]} ({share:.1%} of {int(in_class.sum())})")
        log.info(
            "image_table aligned mapping g(%s) = %s, by majority over %d training samples: %s",
            params.target,
            params.bias,
            len(targets),
            "; ".join(parts),
        )

    @staticmethod
    def _check_model_input(params: ImageTableParams, source: ImageSource) -> None:
        arguments = model_arguments(params.model)
        if source.channels != 3 and not ({"in_channels", "in_features"} & arguments):
            raise ImageTableError(
                f"model {params.model!r} takes RGB images but the array has {source.channels} "
                "channel(s); choose a model with in_channels or in_features (e.g. simple_convnet, "
                "resnet20, mlp) or store RGB images"
            )
        if params.normalization == "imagenet" and source.channels != 3:
            raise ImageTableError(
                f"normalization=imagenet needs RGB images but the array has {source.channels} "
                "channel(s); set normalization=none"
            )

    # -- pixels --------------------------------------------------------------------------------

    @classmethod
    def images(cls, params: ImageTableParams, plan: Plan) -> np.ndarray:
        """The cached uint8 (distinct images, C, H, W) memory map, decoding it once if needed."""
        source = plan.source
        array_mode = is_array_root(params.root)
        key = {
            "family": FAMILY,
            "version": cls.generator_version,
            "mode": "array" if array_mode else "folder",
            "root": str(plan.root),
            "path_column": params.path_column,
            "table_sha256": plan.table.digest,
            "files_sha256": source.fingerprint,
            "size": list(source.size),
            "resize": params.resize,
        }
        entry = plan.cache_dir / FAMILY / cache_key(key)
        arrays = read_memmap_cache(entry)
        if arrays is not None:
            return arrays["images"]
        if entry.exists():
            log.warning("image_table cache entry %s is incomplete or corrupt; rebuilding it", entry)
            shutil.rmtree(entry, ignore_errors=True)
        meta = {"params": key, "table": str(plan.table.path)}
        if array_mode:
            build_array_cache(entry, plan.root, source, params.resize, meta)
        else:
            try:
                build_memmap_cache(entry, {"images": (source.refs, source.size[0], params.resize)}, meta)
            except UnreadableImageError as error:
                row = source.first_row.get(error.path)
                where = plan.table.row(row) if row is not None else str(plan.table.path)
                raise ImageTableError(
                    f"{where}: the image file {error.path} cannot be read ({str(error).split(': ', 1)[-1]}); "
                    "replace it with an image Pillow can open (PNG, JPEG, ...) or remove its row"
                ) from None
        arrays = read_memmap_cache(entry)
        if arrays is None:
            raise RuntimeError(f"image_table cache {entry} could not be read back after building it")
        return arrays["images"]

    @classmethod
    def diagnosis_settings(cls, params: Mapping[str, Any], paths: DataPaths) -> DiagnosisSettings:
        """Reverse: swap the `target` and `bias` columns. Balanced: `ratio` = 100 / (number of bias
        values), i.e. each class keeps as many aligned samples as a uniform bias would give it (with a
        binary bias: exactly as many aligned as conflicting samples per class; with more values the
        conflicting samples keep their groups' proportions). Reads the table (no images) to count the
        bias values and name the classes."""
        values = dict(params)
        canonical = cls.make_params(values)
        if canonical.bias is None:
            raise ValueError(
                "image_table needs bias=COLUMN to be diagnosed: the diagnosis compares training on the "
                "data as it is with a bias-balanced subsample, so it must know the bias column"
            )
        _, table_path = cls.locate(canonical, paths)
        table = read_table(table_path)
        _, target_values = encode_attribute(table, canonical.target, "target")
        _, bias_values = encode_attribute(table, canonical.bias, "bias")
        if len(bias_values) < 2:
            raise ValueError(f"the bias column {canonical.bias!r} has a single value, so no sample conflicts with it")
        biased = {**values, "target": canonical.target, "bias": canonical.bias}
        return DiagnosisSettings(
            biased=biased,
            balanced={**biased, "ratio": 100.0 / len(bias_values)},
            reversed={**biased, "target": canonical.bias, "bias": canonical.target},
            target=canonical.target,
            bias=canonical.bias,
            target_values=tuple(str(v) for v in target_values),
            bias_values=tuple(str(v) for v in bias_values),
            balanced_how=(
                f"the training split subsampled per class to ratio={100.0 / len(bias_values):g}% aligned "
                f"samples (1 in {len(bias_values)} bias values: a uniform bias given the target"
                + (")" if len(bias_values) == 2 else "; conflicting groups keep their proportions)")
            ),
        )

    @classmethod
    def prepare(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> None:
        params = cls.canonical(params)
        cls.images(params, cls.plan(params, paths, data_seed))
        if params.pretrained and params.model == "resnet18":
            from debiasbench.models.resnet18 import ensure_imagenet_weights

            ensure_imagenet_weights()  # fail once in the driver, not in every trial

    @classmethod
    def load(cls, params: ImageTableParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        plan = cls.plan(params, paths, data_seed)
        images = cls.images(params, plan)

        def split(rows: np.ndarray) -> Split:
            return Split(
                images=_take(images, plan.source.row_ref[rows]),
                targets=torch.from_numpy(plan.targets[rows]),
                biases=None if plan.biases is None else torch.from_numpy(plan.biases[rows]),
            )

        channels, (height, width) = plan.source.channels, plan.source.size
        arguments = model_arguments(params.model)
        model_kwargs: dict[str, Any] = {}
        if "in_features" in arguments:
            model_kwargs["in_features"] = channels * height * width
        if "in_channels" in arguments:
            model_kwargs["in_channels"] = channels
        if "pretrained" in arguments:
            model_kwargs["pretrained"] = params.pretrained
        imagenet = params.normalization == "imagenet"
        return BiasedData(
            train=split(plan.train_rows),
            test=split(plan.test_rows),
            num_classes=len(plan.class_names),
            class_names=plan.class_names,
            num_bias_values=None if plan.bias_names is None else len(plan.bias_names),
            bias_names=plan.bias_names,
            aligned_bias=None if plan.mapping is None else torch.from_numpy(plan.mapping),
            input_spec=InputSpec(
                scale=INPUT_SCALINGS[params.input_scaling],
                mean=IMAGENET_MEAN if imagenet else None,
                std=IMAGENET_STD if imagenet else None,
                crop_padding=params.crop_padding,
                horizontal_flip=params.horizontal_flip,
            ),
            model=params.model,
            model_kwargs=model_kwargs,
            generator_version=cls.generator_version,
        )
