"""Network architectures, registered by name. Every model exposes `features(x)` (penultimate
representation) and a final linear layer `classifier`, so methods such as HEX and ReBias can use
the representation without knowing the architecture."""

from __future__ import annotations

from typing import Any

from torch import nn

from benchmark.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("model", "models")


def build_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    return MODELS.get(name)(num_classes=num_classes, **kwargs)
