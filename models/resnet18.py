"""torchvision's ResNet-18 with its final layer replaced for C classes (docs/protocol.md#celeba, docs/protocol.md#bar).

ImageNet weights (ResNet18_Weights.IMAGENET1K_V1) are read from the local torch hub cache with
`torch.load(..., weights_only=True)`; when the file is absent a download is tried, and if that
fails (offline machine) the error names the expected file and the `pretrained=false` option.
`freeze_backbone` trains only the new final layer, as the reference LfF CelebA code does; the
paper's text says the network is fine-tuned, which is the default here.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn

from debiasbench.models import MODELS

FEATURE_DIM = 512
DOWNLOAD_TIMEOUT_S = 60.0


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """ImageNet weights are neither cached nor downloadable; the message names the file."""


def imagenet_weights_url() -> str:
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.IMAGENET1K_V1.url


def imagenet_weights_path() -> Path:
    """Where torchvision caches the ImageNet ResNet-18 weights: <torch hub dir>/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet_weights_url()).name


def ensure_imagenet_weights() -> Path:
    """The cached weights file, downloading it first if it is absent and the machine is online."""
    path = imagenet_weights_path()
    if path.is_file():
        return path
    previous_timeout = socket.getdefaulttimeout()
    # urllib waits forever by default; a firewall that drops packets must not hang every trial.
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.load_state_dict_from_url(
            imagenet_weights_url(), model_dir=str(path.parent), progress=False, check_hash=True, weights_only=True
        )
    except Exception as error:  # offline, proxy, unwritable cache: all end in the same advice
        raise PretrainedWeightsNotFoundError(
            f"ImageNet ResNet-18 weights not found at {path} and the download from "
            f"{imagenet_weights_url()} failed ({type(error).__name__}: {error}). Copy the file "
            f"{path.name} (torchvision ResNet18_Weights.IMAGENET1K_V1) into {path.parent} (the torch hub "
            "cache; set TORCH_HOME to move it), or train from scratch with the dataset parameter "
            "pretrained=false (e.g. --dataset-param pretrained=false)"
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    if not path.is_file():
        raise PretrainedWeightsNotFoundError(f"downloaded ImageNet weights but {path} is missing")
    return path


class PretrainedWeightsError(ValueError):
    """The ImageNet weights file is damaged or not a plain weights file; the message names it."""


def _weights_fix(path: Path) -> str:
    return (
        f"delete it and copy a fresh {path.name} (torchvision ResNet18_Weights.IMAGENET1K_V1) into {path.parent}, "
        "or train from scratch with --dataset-param pretrained=false"
    )


def verify_imagenet_weights(path: Path) -> None:
    """The file's SHA-256 must start with the digest in its name (torch hub's convention), as the
    published file's does: a damaged, truncated or substituted file is refused before any load."""
    import hashlib

    expected = path.stem.rpartition("-")[2]
    with open(path, "rb") as handle:
        actual = (
            hashlib.file_digest(handle, "sha256").hexdigest()
            if hasattr(hashlib, "file_digest")
            else hashlib.sha256(handle.read()).hexdigest()
        )
    if not actual.startswith(expected):
        raise PretrainedWeightsError(
            f"ImageNet weights file {path} is damaged or not the published file (its SHA-256 starts with "
            f"{actual[:8]}, its name promises {expected}); it was not loaded. {_weights_fix(path).capitalize()}"
        )


def load_imagenet_state_dict() -> dict[str, torch.Tensor]:
    path = ensure_imagenet_weights()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        import pickle

        # torch's own message suggests weights_only=False, which would run whatever the file holds.
        cause = (
            "it holds objects other than tensors and plain containers, which are never loaded"
            if isinstance(error, pickle.UnpicklingError)
            else f"it is damaged or truncated ({(str(error).strip().splitlines() or [type(error).__name__])[0][:160]})"
        )
        raise PretrainedWeightsError(f"cannot load ImageNet weights {path}: {cause}; {_weights_fix(path)}") from None


@MODELS.register("resnet18")
class ResNet18(nn.Module):
    """ResNet-18 whose `features(x)` is the 512-d globally pooled representation and whose
    `classifier` is a fresh Linear(512, num_classes)."""

    def __init__(self, num_classes: int, pretrained: bool = True, freeze_backbone: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if pretrained:
            net.load_state_dict(load_imagenet_state_dict())
        net.fc = nn.Identity()
        self.backbone = net
        self.classifier = nn.Linear(FEATURE_DIM, num_classes)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            # As the reference: only the new layer gets gradients. BatchNorm statistics still
            # update in train mode, as they do there.
            for parameter in self.backbone.parameters():
                parameter.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after torchvision's layer1..layer4."""
        net = self.backbone
        out = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        maps = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            out = stage(out)
            maps.append(out)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
