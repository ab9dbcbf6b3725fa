"""The paper's training protocol as data (torch-free): per dataset the epochs and the dataset
parameters the paper's numbers were made with, and the paper's methods' default hyper-parameters.
The report reads it to say when a table cell's trials depart from the protocol (and then does not
flag them against the paper's value as if they were a reproduction). A test checks these values
against the registered datasets' and methods' own defaults, so the two cannot drift apart.

Axes of the tables (ratio, difficulty, target, bias, unbiased_train) are not protocol: they are
what a table varies. Methods beyond the paper have no entry here (the paper has no number for
them); their protocol is their registered defaults, which every trial records beside its
hyper-parameters (`method_defaults` in its configuration), so a setting off them is named too."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

PAPER_EPOCHS = MappingProxyType({"cmnist": 100, "ccifar1": 200, "ccifar2": 200, "celeba": 50, "bar": 90})

PAPER_DATASET_PARAMS = MappingProxyType(
    {
        "cmnist": {"input_scaling": "reference", "assignment": "reference"},
        "ccifar1": {"assignment": "reference"},
        "ccifar2": {"assignment": "reference"},
        "celeba": {"resolution": 224, "pretrained": True, "freeze_backbone": False},
        "bar": {"resolution": 224, "pretrained": True, "freeze_backbone": False},
    }
)

_LFF = {"q": 0.7, "ema_alpha": 0.7}
PAPER_METHOD_HPARAMS = MappingProxyType(
    {
        "vanilla": {},
        "lff": {**_LFF, "biased_loss": "gce"},
        "lff_ce": {**_LFF, "biased_loss": "ce"},
        "lff_rubi": {"q": 0.7, "detach_mask": True, "mask_source": "biased_logits"},
        "hex": {
            "nglcm_input": "gray_permax",
            "n_gray": 16,
            "shift_row": 0,
            "shift_col": 1,
            "nglcm_features": 32,
            "feature_norm": "sample",
            "dropout": 0.5,
            "ridge": 0.0001,
            "freeze_nglcm": False,
        },
        "repair": {  # every variant (T/R/C/S) is the paper's: "variant" is not a departure
            "threshold": 0.5,
            "keep_ratio": 0.5,
            "weight_epochs": 200,
            "weight_batch_size": 128,
            "probe_lr": 0.001,
            "probe_momentum": 0.9,
            "weight_lr": 10.0,
            "epoch_length": "full",
        },
        "group_dro": {
            "eta": 0.01,
            "group_balanced_sampling": True,
            "generalization_adjustment": 0.0,
            "normalize_loss": False,
        },
        "rebias": {
            "lambda_f": 1.0,
            "lambda_g": 1.0,
            "sigma": "median",
            "sigma_update_fraction": 0.25,
            "sigma_update_per_epoch": True,
            "sigma_pairing": "reference",
            "median_bn_mode": "batch",
            "biased_net": "auto",
            "update_g_cls": True,
        },
    }
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def protocol_departures(
    dataset: str,
    method: str,
    epochs: int | None,
    params: dict,
    hparams: dict,
    method_defaults: dict | None = None,
) -> list[str]:
    """What of one trial departs from the paper's protocol, as 'name=value (paper: value)' texts, or,
    for a method beyond the paper, 'name=value (default: value)' against its recorded defaults.
    Empty for a trial made as the paper made its numbers, and for datasets the paper does not have."""
    if dataset not in PAPER_EPOCHS:
        return []
    out = []
    if epochs is not None and int(epochs) != PAPER_EPOCHS[dataset]:
        out.append(f"epochs={int(epochs)} (paper: {PAPER_EPOCHS[dataset]})")
    for name, paper in PAPER_DATASET_PARAMS[dataset].items():
        if name in params and not _same(params[name], paper):
            out.append(f"{name}={params[name]} (paper: {paper})")
    if method in PAPER_METHOD_HPARAMS:
        reference, source = PAPER_METHOD_HPARAMS[method], "paper"
    else:  # unknown for trials recorded before defaults were (then nothing is claimed either way)
        reference, source = method_defaults or {}, "default"
    for name, value in reference.items():
        if name in hparams and not _same(hparams[name], value):
            out.append(f"{method}.{name}={hparams[name]} ({source}: {value})")
    return out
