"""ResNet-20 for CIFAR (He et al. 2016, section 4.2; docs/protocol.md#corrupted-cifar-10): a 3x3
stem of 16 channels, three
stages of 3 basic blocks with 16, 32 and 64 channels (stride 2 at the start of stages 2 and 3),
option-A shortcuts (identity; subsample and zero-pad the channels where the shape changes, so
shortcuts have no parameters), global average pooling, a linear classifier. Kaiming-normal init.
269,722 parameters for 10 classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.models import MODELS


class PadShortcut(nn.Module):
    """Option A: take every other pixel and zero-pad the new channels equally on both sides."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if stride != 2:
                raise ValueError("option-A shortcuts subsample by 2; use stride 2 where the width changes")
            self.shortcut = PadShortcut(planes - in_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@MODELS.register("resnet20")
class ResNetCIFAR(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; n = 3 (the default) is ResNet-20."""

    def __init__(
        self,
        num_classes: int,
        blocks_per_stage: int = 3,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_planes = widths[0]
        for index, planes in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.feature_dim = widths[-1]
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps after each of the three stages."""
        out = F.relu(self.bn1(self.conv1(x)))
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3):
            out = stage(out)
            maps.append(out)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d globally average-pooled representation."""
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_maps(x)[-1], 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
