"""The dataset contract. A dataset is one module in `datasets/` with a class registered by
`@register_dataset("name")`. It turns raw data plus protocol parameters into a `BiasedData`:
train and evaluation splits with target and (optional) bias attributes, the aligned mapping and
what the trainer needs to feed the model (input scaling, augmentation, architecture, optimiser).
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from debiasbench.benchmark.paths import resolve_cache_dir, resolve_data_root
from debiasbench.benchmark.raw_data import fingerprint
from debiasbench.benchmark.registry import Registry


class DataNotFoundError(FileNotFoundError):
    """Raw data is missing; the message says where to put it."""


@dataclass(frozen=True)
class DataPaths:
    data_root: Path  # raw data (may be read-only)
    cache_dir: Path  # generated datasets
    allow_download: bool = True

    @classmethod
    def resolve(
        cls, data_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
    ) -> DataPaths:
        """--data-root, else $DEBIAS_DATA_ROOT, else ./data; cache: --cache-dir, else
        $DEBIAS_CACHE_DIR, else the user's cache folder (~/.cache/debiasbench)."""
        return cls(data_root=resolve_data_root(data_root), cache_dir=resolve_cache_dir(cache_dir))


@dataclass
class Split:
    images: torch.Tensor  # uint8, (N, C, H, W)
    targets: torch.Tensor  # long, (N,)
    biases: torch.Tensor | None = None  # long, (N,); None when the dataset has no bias labels

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8:
            raise TypeError(f"split images must be uint8, got {self.images.dtype}")
        if len(self.images) != len(self.targets) or (self.biases is not None and len(self.biases) != len(self.targets)):
            raise ValueError("images, targets and biases of a split must have the same length")

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class InputSpec:
    """How uint8 images become model inputs: x = uint8 * scale, then optional augmentation
    (training only) and per-channel normalisation."""

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_padding: int = 0  # random crop of the input size from the image padded by this much
    horizontal_flip: bool = False
    # Stored images larger than the model input (BAR): evaluation takes a centre crop of
    # crop_size; training takes the same centre crop, or a RandomResizedCrop to crop_size when
    # random_resized_crop is set (torchvision's sampling of area scale and aspect ratio).
    crop_size: int | None = None
    random_resized_crop: bool = False
    resized_crop_scale: tuple[float, float] = (0.08, 1.0)
    resized_crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)

    def __post_init__(self) -> None:
        if self.random_resized_crop and not self.crop_size:
            raise ValueError("random_resized_crop needs crop_size (the output size of the crop)")
        if self.crop_size is not None and self.crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")


@dataclass(frozen=True)
class TrainProtocol:
    """The paper's optimisation settings for a dataset (docs/protocol.md#training-and-selection)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 100
    optimizer: str = "adam"


@dataclass
class BiasedData:
    train: Split
    test: Split  # the evaluation split (unbiased test set, or the official validation partition)
    num_classes: int
    class_names: list[str]
    num_bias_values: int | None  # None: no bias labels (BAR)
    bias_names: list[str] | None
    aligned_bias: torch.Tensor | None  # g(y) for each class y: sample is aligned iff b == g(y)
    input_spec: InputSpec
    model: str
    generator_version: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def aligned_mask(self, split: Split) -> torch.Tensor | None:
        """Bias-aligned samples of `split` (anything with `targets` and `biases`, on any device)."""
        if split.biases is None or self.aligned_bias is None:
            return None
        return split.biases == self.aligned_bias.to(split.targets.device)[split.targets]


@dataclass(frozen=True)
class DiagnosisSettings:
    """How a dataset expresses the paper's Section 2 test for one (target, bias) direction
    (docs/diagnose.md): the parameters of the training set as it is, of a bias-balanced training
    set for the same direction, and of the reverse direction (the bias becomes the target). Each
    is a plain parameter mapping a `TrialConfig` takes; the reverse direction's own balanced set
    comes from calling the hook again on `reversed`."""

    biased: dict[str, Any]
    balanced: dict[str, Any]
    reversed: dict[str, Any]
    target: str  # how outputs name the target attribute ("Digit", "Wearing_Lipstick")
    bias: str
    target_values: tuple[str, ...] = ()  # names of the target's values, in class-index order (optional)
    bias_values: tuple[str, ...] = ()
    balanced_how: str = ""  # one line: how the balanced training set is made


class BiasedDataset(abc.ABC):
    """A registered dataset family. `Params` is a frozen dataclass of protocol parameters;
    fields with metadata {"generation": False} change the input pipeline, not the generated data."""

    name: ClassVar[str]
    Params: ClassVar[type]
    has_bias_labels: ClassVar[bool] = True
    target_attribute: ClassVar[str] = ""
    bias_attribute: ClassVar[str] = ""
    generator_version: ClassVar[str] = "1"
    downloads: ClassVar[bool] = False  # absent raw data is fetched on first use when online (MNIST, CIFAR-10)
    protocol: ClassVar[TrainProtocol] = TrainProtocol()

    @classmethod
    def has_bias_labels_for(cls, params: Any) -> bool:
        """Whether the dataset built from (canonical) `params` has bias labels. The class-level
        `has_bias_labels` is the family's answer, used where no parameters are known yet; a family
        whose bias attribute is optional (image_table without `bias`) overrides this."""
        return cls.has_bias_labels

    @classmethod
    def train_protocol(cls, params: Any) -> TrainProtocol:
        """The paper's optimisation settings for these parameters."""
        return cls.protocol

    @classmethod
    def make_params(cls, values: Mapping[str, Any] | None = None) -> Any:
        """Validated, canonical parameters from a plain mapping (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls.Params)}
        unknown = set(values or {}) - names
        if unknown:
            raise ValueError(
                f"dataset {cls.name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                f"its parameters are: {', '.join(sorted(names))}"
            )
        return cls.canonical(cls.Params(**dict(values or {})))

    @classmethod
    def canonical(cls, params: Any) -> Any:
        """Validate `params` and return a canonical form (raise ValueError naming the fix)."""
        return params

    @classmethod
    def resolved_params(cls, params: Any) -> dict[str, Any]:
        """Canonical parameters as a trial stores them and hashes them into its key: every field,
        except that a field marked `metadata={"omit_default": True}` is left out while it holds its
        default. A family can so gain a parameter whose default keeps the old behaviour without
        changing the keys of the trials stored before it existed."""
        values = dataclasses.asdict(params)
        for f in dataclasses.fields(params):
            if f.metadata.get("omit_default") and values[f.name] == f.default:
                del values[f.name]
        return values

    @classmethod
    def diagnosis_settings(cls, params: Mapping[str, Any], paths: DataPaths) -> DiagnosisSettings | None:
        """The Section 2 test's training sets for the direction `params` names (docs/diagnose.md):
        `params` are the user's dataset parameters (possibly naming `target` and `bias`). None: the
        family cannot be diagnosed (the command says so); a ValueError names what is wrong with
        `params`. Default: None."""
        return None

    @classmethod
    def generation_params(cls, params: Any) -> dict[str, Any]:
        return {
            f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.metadata.get("generation", True)
        }

    @classmethod
    def raw_paths(cls, params: Any, paths: DataPaths) -> list[Path]:
        """The raw files and folders the generated data is made from (index files, label files, image
        folders), for its fingerprint (benchmark/raw_data.py). Empty: nothing to fingerprint (the
        family generates its data from code alone, or has not said)."""
        return []

    @classmethod
    def raw_fingerprint(cls, params: Any, paths: DataPaths) -> str | None:
        """The fingerprint of the raw data under `paths` for `params`, recorded in every cache entry and
        beside every trial key; None when it is unknown (raw data absent, or no raw paths declared)."""
        try:
            found = cls.raw_paths(params, paths)
            return fingerprint(found) if found else None
        except (OSError, ValueError):  # absent or unreadable: the data's own loader says why
            return None

    @classmethod
    def missing_raw_data(cls, params: Any, paths: DataPaths) -> str | None:
        """For the pre-flight check (benchmark/experiments/readiness.py): what raw data is absent and
        will not be downloaded, in a few words naming the path, or None."""
        if cls.downloads:
            return None
        try:
            absent = [path for path in cls.raw_paths(params, paths) if not path.exists()]
        except (OSError, ValueError) as error:  # e.g. image_table's root or table not found
            return str(error).split("; ")[0]
        return f"{', '.join(str(p) for p in absent)} missing" if absent else None

    @classmethod
    def raw_data_note(cls, params: Any, paths: DataPaths) -> str | None:
        """For the pre-flight check: a caveat about raw data that is present (a partial copy), or None."""
        return None

    @classmethod
    @abc.abstractmethod
    def load(cls, params: Any, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        """Generate (or read from the cache) and return the dataset."""

    @classmethod
    def prepare(cls, params: Any, paths: DataPaths, data_seed: int = 0) -> None:
        """Make sure the generated dataset is cached (the runner calls this before training)."""
        cls.load(params, paths, data_seed)


DATASETS: Registry[type[BiasedDataset]] = Registry("dataset", "debiasbench.datasets")
register_dataset = DATASETS.register
