"""Network architectures, registered by name. Every model follows `FeatureModel`: `features(x)`
(the penultimate representation), a final linear layer `classifier`, and `feature_maps(x)` (the
output of every stage), so methods such as HEX, ReBias and OccamNets can use the representation
without knowing the architecture."""

from __future__ import annotations

from debiasbench._layout import refuse_old_name

refuse_old_name(__name__)  # this folder imported by its old top-level name

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from debiasbench.benchmark.registry import Registry


@runtime_checkable
class FeatureModel(Protocol):
    """What every registered model provides besides `forward(x) == classifier(features(x))`.

    `feature_maps(x)` returns the output of each stage, first to last: for a convolutional network
    the (B, C_k, H_k, W_k) maps after every residual stage (or layer), for the MLP the (B, width)
    activations after every hidden layer. Its last entry pooled (convolutional) or as it is (MLP)
    equals `features(x)`."""

    classifier: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]: ...


MODELS: Registry[type[nn.Module]] = Registry("model", "debiasbench.models")


def build_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    return MODELS.get(name)(num_classes=num_classes, **kwargs)
