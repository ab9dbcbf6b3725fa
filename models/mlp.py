"""The Colored MNIST multi-layer perceptron: flatten, three hidden layers of 100 units with ReLU,
a linear classifier (docs/protocol.md#colored-mnist). Input scaling is done by the input pipeline, not here."""

from __future__ import annotations

import torch
from torch import nn

from debiasbench.models import MODELS


@MODELS.register("mlp")
class MLP(nn.Module):
    def __init__(self, num_classes: int, in_features: int = 3 * 28 * 28, hidden: int = 100, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.feature_extractor = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor(x)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after every hidden layer (Linear + ReLU), first to last."""
        maps = []
        for module in self.feature_extractor:
            x = module(x)
            if isinstance(module, nn.ReLU):
                maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
