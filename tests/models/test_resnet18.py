"""ResNet-18: shape contract, ImageNet weights from the torch hub cache, missing-weights error,
frozen backbone."""

import urllib.error

import pytest
import torch

from debiasbench.models import MODELS, build_model
from debiasbench.models.resnet18 import PretrainedWeightsNotFoundError, imagenet_weights_path


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, with downloads failing as on an offline machine."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_registered_with_features_and_classifier():
    assert "resnet18" in MODELS
    torch.manual_seed(0)
    model = build_model("resnet18", 6, pretrained=False).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.features(x)
    assert features.shape == (2, 512)
    assert model.classifier.in_features == 512 and model.classifier.out_features == 6
    assert torch.allclose(model(x), model.classifier(features))


def test_missing_weights_error_names_the_file_and_the_option(hub_dir):
    expected = imagenet_weights_path()
    assert expected == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(PretrainedWeightsNotFoundError) as error:
        build_model("resnet18", 2, pretrained=True)
    message = str(error.value)
    assert str(expected) in message and "pretrained=false" in message
    assert isinstance(error.value, FileNotFoundError)


def test_cached_weights_are_loaded(hub_dir):
    from torchvision.models import resnet18

    torch.manual_seed(123)
    reference = resnet18(weights=None).state_dict()
    path = imagenet_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    torch.manual_seed(0)  # a different initialisation, overwritten by the file
    model = build_model("resnet18", 3, pretrained=True)
    assert torch.equal(model.backbone.conv1.weight, reference["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, reference["layer4.1.bn2.running_var"])
    assert model.classifier.out_features == 3


def test_frozen_backbone_trains_only_the_classifier():
    torch.manual_seed(0)
    model = build_model("resnet18", 2, pretrained=False, freeze_backbone=True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    before = {k: v.clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
