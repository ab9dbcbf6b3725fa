"""ResNet-20 for CIFAR (docs/protocol.md#corrupted-cifar-10): architecture, parameter count,
option-A shortcuts, init."""

import math

import pytest
import torch
from torch import nn

from debiasbench.models import MODELS, build_model
from debiasbench.models.resnet_cifar import PadShortcut, ResNetCIFAR


def expected_parameters(num_classes: int) -> int:
    """Convolutions (3x3, no bias) and batch norms (2 per channel) of the stem and the 9 blocks,
    plus the classifier; option-A shortcuts add nothing."""
    conv = lambda cin, cout: 9 * cin * cout  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(3, 16) + bn(16)
    in_planes = 16
    for planes in (16, 32, 64):
        for _ in range(3):
            total += conv(in_planes, planes) + bn(planes) + conv(planes, planes) + bn(planes)
            in_planes = planes
    return total + 64 * num_classes + num_classes


def test_parameter_count_is_0_27m():
    model = build_model("resnet20", 10)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected_parameters(10) == 269_722
    assert sum(p.numel() for p in build_model("resnet20", 2).parameters()) == expected_parameters(2)


def test_registered_and_shapes():
    assert MODELS.get("resnet20") is ResNetCIFAR
    model = build_model("resnet20", 7).eval()
    x = torch.randn(5, 3, 32, 32)
    features = model.features(x)
    assert features.shape == (5, 64)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 64
    assert model.classifier.out_features == 7
    torch.testing.assert_close(model(x), model.classifier(features))


def test_three_stages_of_three_blocks_with_option_a_shortcuts():
    model = ResNetCIFAR(10)
    for stage, width in zip((model.layer1, model.layer2, model.layer3), (16, 32, 64)):
        assert len(stage) == 3
        assert all(block.conv2.out_channels == width for block in stage)
    shortcuts = [m for m in model.modules() if isinstance(m, PadShortcut)]
    assert len(shortcuts) == 2 and all(not list(s.parameters()) for s in shortcuts)
    x = torch.randn(2, 16, 32, 32)
    out = PadShortcut(16)(x)
    assert out.shape == (2, 32, 16, 16)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0


def test_kaiming_normal_init():
    torch.manual_seed(0)
    model = ResNetCIFAR(10)
    weight = model.layer3[1].conv1.weight  # 64 * 64 * 9 values, fan_in 576
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    assert weight.mean().abs().item() < 0.01


def test_trains_one_step_channels_last():
    model = build_model("resnet20", 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (4,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
