"""BFFHQ, Biased FFHQ (docs/data.md#bffhq): face photographs from FFHQ, curated by BiaSwap (Kim et
al., ICCV 2021) and published by DisEnt/DFA (Lee et al., NeurIPS 2021). Target: age (0 young,
1 old). Bias: gender (0 female, 1 male). In training, young faces are mostly female and old faces
mostly male, so a sample is bias-aligned iff bias == target (the identity mapping g(y) = y).

Layout under the data root, as published (DFA's Google Drive; BiasEnsemble adds 1, 2, 5 pct):

    <root>/bffhq/<pct>pct/align/[<folder>/]<id>_<target>_<bias>.png     bias-aligned training images
    <root>/bffhq/<pct>pct/conflict/[<folder>/]<id>_<target>_<bias>.png  bias-conflicting training images
    <root>/bffhq/valid/<id>_<target>_<bias>.png                         biased validation set
    <root>/bffhq/test/<id>_<target>_<bias>.png                          test set (aligned and conflicting)

The labels are in the file names only, read as the official loader does (the last two
"_"-separated fields). DFA globs align/*/* and conflict/*/* (one level of subfolders) but valid/*
and test/* (flat); copies differ, so every folder may hold its images directly or one level down.
The data is untrusted: a name that does not parse, a label outside {0, 1}, an aligned image whose
labels disagree (or a conflicting one whose labels agree) and a missing folder are all errors
naming the file or folder. The valid folder is indexed and checked but not used: the suite trains
on align + conflict, evaluates on test, and its validation protocol holds out part of the
training set (DFA used valid only to log a best validation accuracy).

Evaluation (`test_split`): "conflicting" (default) keeps the test images with target != bias, as
DFA's bFFHQDataset does, so `all` accuracy is the mean over the two bias-conflicting groups (DFA
reports accuracy over samples, the same number when the groups are equally large); "all" keeps
the whole test folder, so LfF-style unbiased (mean over the four groups), aligned and conflicting
accuracies are all reported.

Protocol, from the official code of kakaoenterprise/Learning-Debiased-Disentangled (the same in
kakaoenterprise/BiasEnsemble): learner.py: ResNet18 (`data2model`), batch 64 (`data2batch_size`),
Adam (`optimizer_b`); train.py: weight decay 0 (`--weight_decay`), 50,000 steps (`--num_steps`
500 * 100); scripts/run_bffhq_vanilla.sh: lr 1e-4; module/util.py `get_model`: torchvision
resnet18(pretrained=False) with a new 512 -> 2 final layer, hence pretrained=false here;
data/util.py `transforms_preprcs["bffhq"]` (used, `data2preprocess` is True): Resize((224, 224)),
RandomCrop(224, padding=4), RandomHorizontalFlip, Normalize with CIFAR-10's statistics (not
ImageNet's; kept as published). Converted: this suite's trainer counts epochs, DFA counts steps
with drop_last=True. Inferred from the 0.5pct size recalled from DFA's paper (19,104 aligned +
96 conflicting = 19,200 images; checked against neither the paper nor the data, which is not
available offline): 19,200 // 64 = 300 steps per epoch, 50,000 / 300 = 166.7, rounded up to 167
epochs (50,100 steps). The same 167 epochs serve every pct (BiasEnsemble keeps DFA's step count).

Images are decoded once, stretched to resolution x resolution (Resize((224, 224))), into a uint8
memory-mapped cache keyed by pct, resolution and the listed files (names and sizes); the crop and
flip run on the device. FFHQ is CC BY-NC-SA 4.0 (NVIDIA): never commit the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from debiasbench.datasets._image_decoding import build_memmap_cache, read_memmap_cache
from debiasbench.datasets.base import (
    BiasedData,
    BiasedDataset,
    DataNotFoundError,
    DataPaths,
    InputSpec,
    Split,
    TrainProtocol,
    register_dataset,
)

log = logging.getLogger(__name__)

CACHE_FAMILY = "bffhq"
PCTS = (0.5, 1.0, 2.0, 5.0)  # the published splits: percent of bias-conflicting training images
TEST_SPLITS = ("conflicting", "all")
# Value names are inferred, not read from the download (which has numbers only): young pairs with
# female in training and DFA's loader counts target == bias as aligned, so 0 young/female, 1 old/male.
CLASS_NAMES = ["young", "old"]
BIAS_NAMES = ["female", "male"]
# DFA's transforms_preprcs["bffhq"] normalises with CIFAR-10's statistics.
DFA_MEAN = (0.4914, 0.4822, 0.4465)
DFA_STD = (0.2023, 0.1994, 0.2010)
NAME_PATTERN = "<id>_<target>_<bias>.png (e.g. 00012_0_0.png; target 0 young / 1 old, bias 0 female / 1 male)"
_NAME = re.compile(r"^(?P<id>.+)_(?P<target>\d+)_(?P<bias>\d+)\.(?:png|jpe?g)$", re.IGNORECASE)
DOCS = "docs/data.md#bffhq"
DOWNLOAD = "the Google Drive folder linked from https://github.com/kakaoenterprise/Learning-Debiased-Disentangled"
# DFA: 50,000 Adam steps of batch 64; 19,200 training images at 0.5pct (see the module docstring).
DFA_STEPS, DFA_BATCH, DFA_TRAIN_IMAGES = 50_000, 64, 19_200


def dfa_epochs(steps: int = DFA_STEPS, batch: int = DFA_BATCH, images: int = DFA_TRAIN_IMAGES) -> int:
    """Epochs covering DFA's steps: whole batches per epoch (drop_last), rounded up."""
    return -(-steps // (images // batch))


@dataclass(frozen=True)
class BFFHQParams:
    pct: float = 0.5  # percent of bias-conflicting training images: reads bffhq/<pct>pct/
    resolution: int = 224  # images are stretched to resolution x resolution once, into the cache
    # "conflicting": DFA's test set (target != bias only); "all": the whole test folder.
    test_split: str = field(default="conflicting", metadata={"generation": False})
    pretrained: bool = field(default=False, metadata={"generation": False})  # DFA trains from scratch


@dataclass(frozen=True)
class SplitIndex:
    """The images of one split in a fixed order, with the labels their names give."""

    files: list[Path]
    targets: np.ndarray  # int64, 0 young / 1 old
    biases: np.ndarray  # int64, 0 female / 1 male

    def group_counts(self) -> dict[tuple[int, int], int]:
        return group_counts(self.targets, self.biases)


def group_counts(targets: np.ndarray, biases: np.ndarray) -> dict[tuple[int, int], int]:
    """Images per (target, bias) group, every group listed."""
    return {(t, b): int(np.sum((targets == t) & (biases == b))) for t in (0, 1) for b in (0, 1)}


def pct_folder(pct: float) -> str:
    return f"{pct:g}pct"


def bffhq_dir(paths: DataPaths) -> Path:
    return paths.data_root / "bffhq"


def _missing(paths: DataPaths, pct: float, what: Path, problem: str = "is missing") -> DataNotFoundError:
    root = bffhq_dir(paths)
    return DataNotFoundError(
        f"BFFHQ not found: {what} {problem}. Expected the published layout under the data root: "
        f"{root}/{pct_folder(pct)}/align/, {root}/{pct_folder(pct)}/conflict/, {root}/valid/ and {root}/test/ "
        f"holding {NAME_PATTERN} files. Download bffhq.zip from {DOWNLOAD} (BiasEnsemble's Drive for 1, 2 and 5 "
        f"pct) and unzip it into the data root, or point --data-root / DEBIAS_DATA_ROOT at the directory holding "
        f"bffhq/ (see {DOCS}; FFHQ's licence forbids committing it)"
    )


def parse_name(path: Path) -> tuple[int, int]:
    """(target, bias) from an image's file name, or a ValueError naming the file and the pattern."""
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"BFFHQ file {path} does not match the expected name {NAME_PATTERN}")
    target, bias = int(match["target"]), int(match["bias"])
    if target not in (0, 1) or bias not in (0, 1):
        raise ValueError(
            f"BFFHQ file {path} has target {target} and bias {bias}; both must be 0 or 1 in {NAME_PATTERN}"
        )
    return target, bias


def _image_files(folder: Path) -> list[Path]:
    """The files in `folder` and in its immediate subfolders, sorted by relative path. Hidden
    entries (.DS_Store, ._* from macOS archives) are skipped; anything deeper is an error."""
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            files.append(entry)
            continue
        for inner in sorted(entry.iterdir()):
            if inner.name.startswith("."):
                continue
            if inner.is_dir():
                raise ValueError(
                    f"BFFHQ folder {inner} is nested too deep: a split folder holds {NAME_PATTERN} files directly "
                    f"or in one level of subfolders (e.g. align/0/00012_0_0.png); see {DOCS}"
                )
            files.append(inner)
    return files


def _index_folder(paths: DataPaths, pct: float, folder: Path, aligned: bool | None) -> SplitIndex:
    """Index one folder; `aligned` True/False requires every image to be aligned/conflicting."""
    if not folder.is_dir():
        raise _missing(paths, pct, folder)
    files = _image_files(folder)
    if not files:
        raise _missing(paths, pct, folder, "holds no image")
    labels = np.array([parse_name(f) for f in files], dtype=np.int64).reshape(-1, 2)
    if aligned is not None:
        wrong = np.flatnonzero((labels[:, 0] == labels[:, 1]) != aligned)
        if len(wrong):
            kind, rule = ("aligned", "equal") if aligned else ("conflicting", "different")
            raise ValueError(
                f"BFFHQ file {files[wrong[0]]} is in the bias-{kind} folder {folder.name}/ but its target and bias "
                f"are {labels[wrong[0], 0]} and {labels[wrong[0], 1]}; {kind} images have {rule} labels "
                f"({len(wrong)} such file(s) in {folder}); re-download the dataset"
            )
    return SplitIndex(files=files, targets=labels[:, 0].copy(), biases=labels[:, 1].copy())


def read_index(paths: DataPaths, pct: float = 0.5) -> dict[str, SplitIndex]:
    """The train (align then conflict), valid and test splits of one pct, labels from the names."""
    root = bffhq_dir(paths)
    if not root.is_dir():
        raise _missing(paths, pct, root)
    train_root = root / pct_folder(pct)
    if not train_root.is_dir():
        raise _missing(paths, pct, train_root)
    align = _index_folder(paths, pct, train_root / "align", aligned=True)
    conflict = _index_folder(paths, pct, train_root / "conflict", aligned=False)
    train = SplitIndex(
        files=align.files + conflict.files,
        targets=np.concatenate([align.targets, conflict.targets]),
        biases=np.concatenate([align.biases, conflict.biases]),
    )
    return {
        "train": train,
        "valid": _index_folder(paths, pct, root / "valid", aligned=None),
        "test": _index_folder(paths, pct, root / "test", aligned=None),
    }


def _listing_digest(root: Path, index: dict[str, SplitIndex]) -> str:
    """A digest of the decoded files' relative paths and sizes: a changed download rebuilds the cache."""
    listing = [
        (split, str(f.relative_to(root)), f.stat().st_size) for split in ("train", "test") for f in index[split].files
    ]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


@register_dataset("bffhq")
class BFFHQ(BiasedDataset):
    Params = BFFHQParams
    has_bias_labels = True
    target_attribute = "Age"
    bias_attribute = "Gender"
    generator_version = "1"
    protocol = TrainProtocol(lr=1e-4, weight_decay=0.0, batch_size=DFA_BATCH, epochs=dfa_epochs(), optimizer="adam")

    @classmethod
    def canonical(cls, params: BFFHQParams) -> BFFHQParams:
        pct = params.pct
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or float(pct) not in PCTS:
            raise ValueError(
                f"invalid pct {pct!r}: BFFHQ is published with 0.5, 1, 2 or 5 percent bias-conflicting training "
                "images (folders 0.5pct, 1pct, 2pct, 5pct)"
            )
        if params.test_split not in TEST_SPLITS:
            raise ValueError(
                f"invalid test_split {params.test_split!r}: choose conflicting (DFA's bias-conflicting test images) "
                "or all (the whole test folder)"
            )
        if int(params.resolution) < 8:
            raise ValueError(f"invalid resolution {params.resolution!r}: at least 8 pixels")
        if not isinstance(params.pretrained, (bool, np.bool_)):
            raise ValueError(f"pretrained must be true or false, got {params.pretrained!r}")
        return replace(params, pct=float(pct), resolution=int(params.resolution), pretrained=bool(params.pretrained))

    @classmethod
    def images(cls, params: BFFHQParams, paths: DataPaths, index: dict[str, SplitIndex]) -> dict[str, np.ndarray]:
        """The cached uint8 train and test arrays (memory maps, index order), built once if needed."""
        key = {
            "family": CACHE_FAMILY,
            "version": cls.generator_version,
            "pct": params.pct,
            "resolution": params.resolution,
            "listing": _listing_digest(bffhq_dir(paths), index),
        }
        entry = (
            paths.cache_dir / CACHE_FAMILY / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        )
        arrays = read_memmap_cache(entry)
        if arrays is not None:
            return arrays
        if entry.exists():
            log.warning("BFFHQ cache entry %s is incomplete or corrupt; rebuilding it", entry)
            shutil.rmtree(entry, ignore_errors=True)
        todo = {
            split: ([str(f) for f in index[split].files], params.resolution, "stretch") for split in ("train", "test")
        }
        build_memmap_cache(entry, todo, {"params": key})
        arrays = read_memmap_cache(entry)
        if arrays is None:
            raise RuntimeError(f"BFFHQ cache {entry} could not be read back after building it")
        return arrays

    @classmethod
    def raw_paths(cls, params: BFFHQParams, paths: DataPaths) -> list[Path]:
        """The image folders a trial reads (a sample of each is hashed for the raw-data fingerprint)."""
        root = bffhq_dir(paths)
        return [root / pct_folder(params.pct) / "align", root / pct_folder(params.pct) / "conflict", root / "test"]

    @classmethod
    def prepare(cls, params: BFFHQParams, paths: DataPaths, data_seed: int = 0) -> None:
        params = cls.canonical(params)
        cls.images(params, paths, read_index(paths, params.pct))
        if params.pretrained:
            from debiasbench.models.resnet18 import ensure_imagenet_weights

            ensure_imagenet_weights()  # fail once in the driver, not in every trial

    @classmethod
    def load(cls, params: BFFHQParams, paths: DataPaths, data_seed: int = 0) -> BiasedData:
        params = cls.canonical(params)
        index = read_index(paths, params.pct)
        arrays = cls.images(params, paths, index)
        train_index, test_index = index["train"], index["test"]
        train = Split(
            images=torch.from_numpy(arrays["train"]),
            targets=torch.from_numpy(train_index.targets),
            biases=torch.from_numpy(train_index.biases),
        )
        rows = np.arange(len(test_index.files))
        if params.test_split == "conflicting":
            rows = np.flatnonzero(test_index.targets != test_index.biases)
            if not len(rows):
                raise ValueError(
                    f"the BFFHQ test folder {bffhq_dir(paths) / 'test'} has no bias-conflicting image "
                    "(target != bias); re-download the dataset, or evaluate on the whole folder with test_split=all"
                )
        test = Split(
            images=torch.from_numpy(np.ascontiguousarray(arrays["test"][rows])),
            targets=torch.from_numpy(test_index.targets[rows]),
            biases=torch.from_numpy(test_index.biases[rows]),
        )
        log.info(
            "BFFHQ %s: train groups %s, test (%s) groups %s",
            pct_folder(params.pct),
            train_index.group_counts(),
            params.test_split,
            group_counts(test.targets.numpy(), test.biases.numpy()),
        )
        return BiasedData(
            train=train,
            test=test,
            num_classes=2,
            class_names=list(CLASS_NAMES),
            num_bias_values=2,
            bias_names=list(BIAS_NAMES),
            aligned_bias=torch.tensor([0, 1]),
            input_spec=InputSpec(scale=1.0 / 255.0, mean=DFA_MEAN, std=DFA_STD, crop_padding=4, horizontal_flip=True),
            model="resnet18",
            model_kwargs={"pretrained": params.pretrained},
            generator_version=cls.generator_version,
        )
