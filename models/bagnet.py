"""Small-receptive-field networks: ReBias' biased model family G (docs/methods.md#rebias).

- `bagnet18`: a BagNet-style ResNet-18 for natural images (ReBias' choice for scene and texture
  bias). Unpadded convolutions, and every convolution after the stem is 1x1 except the first
  `kernel3[i]` blocks of stage i, so with the default (1, 0, 0, 0) each output position sees a
  5x5 input patch; global average pooling then makes it a bag of local features.
- `simple_convnet`: four conv-BN-ReLU layers, global average pooling, a linear classifier
  (ReBias' Biased-MNIST SimpleConvNet). With kernel sizes (1, 1, 1, 1) it sees single pixels,
  i.e. only colour (Colored MNIST); with (3, 1, 1, 1) a 3x3 patch, enough for the noise, blur
  and pixelation of Corrupted CIFAR-10 but not for object shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from debiasbench.models import MODELS


class LocalBlock(nn.Module):
    """Residual block: k x k (stride s, unpadded) then 1x1 convolution, each with BatchNorm."""

    def __init__(self, in_channels: int, channels: int, stride: int, kernel_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = self.shortcut(x)
        # Unpadded k x k convolutions shrink the map: drop the shortcut's extra trailing rows and
        # columns so both branches cover the same positions.
        identity = identity[..., : out.shape[-2], : out.shape[-1]]
        return self.relu(out + identity)


@MODELS.register("bagnet18")
class BagNet18(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        layers: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (2, 2, 2, 1),
        kernel3: Sequence[int] = (1, 0, 0, 0),
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        stem_width = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 1, bias=False),
            nn.Conv2d(stem_width, stem_width, 3, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        channels = stem_width
        for blocks, stride, n3, width in zip(layers, strides, kernel3, widths):
            stage = [
                LocalBlock(channels if i == 0 else width, width, stride if i == 0 else 1, 3 if i < n3 else 1)
                for i in range(blocks)
            ]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial map before pooling: each position depends on a small input patch."""
        return self.stages(self.stem(x))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after each stage."""
        out, maps = self.stem(x), []
        for stage in self.stages:
            out = stage(out)
            maps.append(out)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.local_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register("simple_convnet")
class SimpleConvNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64, 128),
        kernel_sizes: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        if len(widths) != len(kernel_sizes):
            raise ValueError("simple_convnet needs one kernel size per layer width")
        layers: list[nn.Module] = []
        channels = in_channels
        for width, kernel in zip(widths, kernel_sizes):
            layers += [
                nn.Conv2d(channels, width, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.body = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def local_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after each Conv-BN-ReLU layer."""
        maps = []
        for module in self.body:
            x = module(x)
            if isinstance(module, nn.ReLU):
                maps.append(x)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.local_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
