"""Colored MNIST (docs/protocol.md#colored-mnist): target Digit, bias Color (or the reversed task).

Each image of bias value b is coloured with one RGB colour c = clamp(palette[b] + N(0, sigma^2 I))
that multiplies the grey digit per channel; the float result is truncated to uint8 as the
reference does (np.uint8 of a float array truncates).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from debiasbench.datasets._bias import (
    aligned_fraction_from_ratio,
    assign_bias,
    check_assignment,
    swapped_target_diagnosis,
)
from debiasbench.datasets._cache import load_or_build
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataNotFoundError,
    DataPaths,
    DiagnosisSettings,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)

# The ten mean colours of the paper's experiments (RGB in [0, 1]), one per bias value.
PALETTE = np.array(
    [
        (0.98368, 0.31252, 0.16858),
        (0.99053, 0.91561, 0.35151),
        (0.67296, 0.46107, 0.57981),
        (0.78325, 0.83156, 0.60133),
        (0.08802, 0.77796, 0.98181),
        (0.32139, 0.96105, 0.44645),
        (0.02462, 0.23565, 0.75867),
        (0.55525, 0.10158, 0.76176),
        (0.20772, 0.39295, 0.01870),
        (0.83366, 0.20241, 0.26694),
    ],
    dtype=np.float32,
)
COLOR_STD = {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005}  # sigma by difficulty
TARGETS = ("digit", "color")
# The reference stores [0, 1] inputs and its MLP divides by 255 again (inputs in [0, 1/255]).
INPUT_SCALINGS = {"reference": 1.0 / 255.0 / 255.0, "unit": 1.0 / 255.0}
UNBIASED_RATIO = 10.0  # percent aligned in the unbiased splits: uniform bias given the target

_STREAM_BIAS, _STREAM_COLOR = 0, 1
_SPLIT_CODE = {"train": 0, "test": 1}


@dataclass(frozen=True)
class CMNISTParams:
    ratio: float = 99.0  # percent of bias-aligned training samples
    difficulty: int = 4  # 1..4: colour noise sigma 0.05, 0.02, 0.01, 0.005
    target: str = field(default="digit", metadata={"generation": False})  # "color": reversed task
    unbiased_train: bool = False  # Table 1's Accuracy*: training set coloured at the 10% ratio
    input_scaling: str = field(default="reference", metadata={"generation": False})
    # Which samples of a class get which colour: "reference" (positional, the paper's) or "random".
    assignment: str = "reference"


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist(paths: DataPaths, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Raw MNIST (uint8 images N x 28 x 28, labels) in torchvision's layout under the data root."""
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(str(paths.data_root), train=train, download=False)
    except RuntimeError:
        if not paths.allow_download:
            raise DataNotFoundError(_missing_mnist_message(paths)) from None
        try:
            dataset = MNIST(str(paths.data_root), train=train, download=True)
        except Exception as error:  # offline, or an unwritable data root
            raise DataNotFoundError(f"{_missing_mnist_message(paths)} (download failed: {error})") from None
    return dataset.data.numpy(), dataset.targets.numpy()


def _missing_mnist_message(paths: DataPaths) -> str:
    return (
        f"MNIST not found under {paths.data_root / 'MNIST' / 'raw'} and it could not be downloaded. "
        "Put the four idx files there (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), or point the suite at a directory that has "
        "them with --data-root DIR or the DEBIAS_DATA_ROOT environment variable"
    )


def colorize(gray: np.ndarray, biases: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3, 28, 28): each grey digit times its own noisy palette colour, truncated."""
    colors = PALETTE[biases] + rng.standard_normal((len(biases), 3), dtype=np.float32) * np.float32(sigma)
    colors = np.clip(colors, 0.0, 1.0)
    colored = gray[:, None, :, :].astype(np.float32) * colors[:, :, None, None]
    return colored.astype(np.uint8)


def make_split(
    gray: np.ndarray,
    digits: np.ndarray,
    aligned_fraction: float,
    sigma: float,
    data_seed: int,
    split: str,
    assignment: str = "reference",
) -> dict[str, np.ndarray]:
    code = _SPLIT_CODE[split]
    bias_rng = np.random.default_rng([data_seed, code, _STREAM_BIAS])
    color_rng = np.random.default_rng([data_seed, code, _STREAM_COLOR])
    colors = assign_bias(digits, aligned_fraction, len(PALETTE), assignment, bias_rng)
    return {
        f"{split}_images": colorize(gray, colors, sigma, color_rng),
        f"{split}_digits": digits.astype(np.int64),
        f"{split}_colors": colors,
    }


@register_dataset("cmnist")
class ColoredMNIST(BiasedDataset):
    downloads = True
    Params = CMNISTParams
    has_bias_labels = True
    target_attribute = "Digit"
    bias_attribute = "Color"
    generator_version = "2"  # 2: the assignment parameter (reference rule by default)
    protocol = TrainProtocol(lr=1e-3, weight_decay=0.0, batch_size=256, epochs=100)

    @classmethod
    def canonical(cls, params: CMNISTParams) -> CMNISTParams:
        if params.difficulty not in COLOR_STD:
            raise ValueError(f"invalid difficulty {params.difficulty!r}: Colored MNIST difficulty is 1, 2, 3 or 4")
        if params.target not in TARGETS:
            raise ValueError(f"invalid target {params.target!r}: choose one of {', '.join(TARGETS)}")
        if params.input_scaling not in INPUT_SCALINGS:
            raise ValueError(
                f"invalid input_scaling {params.input_scaling!r}: choose one of {', '.join(INPUT_SCALINGS)}"
            )
        check_assignment(params.assignment)
        if params.unbiased_train:
            # The ratio is irrelevant for the unbiased training set; fix it so keys stay canonical.
            return replace(params, ratio=UNBIASED_RATIO)
        aligned_fraction_from_ratio(params.ratio, len(PALETTE))
        return replace(params, ratio=float(params.ratio))

    @classmethod
    def diagnosis_settings(cls, params, paths: DataPaths | None = None) -> DiagnosisSettings:
        """Reverse: the other target (Digit <-> Color); balanced: the unbiased training set
        (Table 1's Accuracy*), so the diagnosis trials are Table 1's."""
        return swapped_target_diagnosis(
            params,
            TARGETS,
            {"digit": "Digit", "color": "Color"},
            {"digit": tuple(str(d) for d in range(10)), "color": tuple(f"color{c}" for c in range(10))},
            "Colored MNIST",
        )

    @classmethod
    def arrays(cls, params: CMNISTParams, paths: DataPaths, data_seed: int) -> dict[str, np.ndarray]:
        key = {
            "family": "cmnist",
            "version": cls.generator_version,
            "data_seed": data_seed,
            **cls.generation_params(params),
        }

        def build() -> dict[str, np.ndarray]:
            sigma = COLOR_STD[params.difficulty]
            ratio = UNBIASED_RATIO if params.unbiased_train else params.ratio
            train_gray, train_digits = load_mnist(paths, train=True)
            test_gray, test_digits = load_mnist(paths, train=False)
            return {
                **make_split(train_gray, train_digits, ratio / 100.0, sigma, data_seed, "train", params.assignment),
                **make_split(
                    test_gray, test_digits, UNBIASED_RATIO / 100.0, sigma, data_seed, "test", params.assignment
                ),
            }

        ranges = {f"{split}_{name}": 10 for split in ("train", "test") for name in ("digits", "colors")}
        return load_or_build(
            paths.cache_dir, "cmnist", key, build, label_ranges=ranges, raw=cls.raw_fingerprint(params, paths)
        )

    @classmethod
    def raw_paths(cls, params: CMNISTParams, paths: DataPaths) -> list[Path]:
        """The four MNIST idx files in torchvision's layout (None of them: not yet downloaded)."""
        return [paths.data_root / "MNIST" / "raw" / name for name in MNIST_FILES]

    @classmethod
    def load(cls, params: CMNISTParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        arrays = cls.arrays(params, paths, data_seed)
        digit_names = [str(d) for d in range(10)]
        color_names = [f"color{c}" for c in range(10)]

        def split(name: str) -> Split:
            digits = torch.from_numpy(arrays[f"{name}_digits"])
            colors = torch.from_numpy(arrays[f"{name}_colors"])
            target, bias = (digits, colors) if params.target == "digit" else (colors, digits)
            return Split(images=torch.from_numpy(arrays[f"{name}_images"]), targets=target, biases=bias)

        reversed_task = params.target == "color"
        return BiasedData(
            train=split("train"),
            test=split("test"),
            num_classes=10,
            class_names=color_names if reversed_task else digit_names,
            num_bias_values=10,
            bias_names=digit_names if reversed_task else color_names,
            aligned_bias=torch.arange(10),
            input_spec=InputSpec(scale=INPUT_SCALINGS[params.input_scaling]),
            model="mlp",
            model_kwargs={"in_features": 3 * 28 * 28},
            generator_version=cls.generator_version,
        )
