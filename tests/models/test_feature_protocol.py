"""Every registered model follows the feature protocol methods build on (models.FeatureModel):
`forward` is `classifier(features(x))`, and `feature_maps(x)` lists every stage's output, the last
of which (pooled, for a convolutional network) is `features(x)`."""

import pytest
import torch
import torch.nn.functional as F

from debiasbench.models import MODELS, FeatureModel, build_model

# The smallest input each architecture accepts, and its constructor's offline arguments.
INPUTS = {
    "mlp": ((3, 28, 28), {}),
    "resnet20": ((3, 32, 32), {}),
    "resnet18": ((3, 64, 64), {"pretrained": False}),
    "bagnet18": ((3, 64, 64), {}),
    "simple_convnet": ((3, 28, 28), {}),
}


def test_every_registered_model_has_an_input_here():
    assert set(MODELS.names()) <= set(INPUTS), (
        f"add the new model's input shape to INPUTS: {set(MODELS.names()) - set(INPUTS)}"
    )


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_feature_protocol(name):
    shape, kwargs = INPUTS[name]
    torch.manual_seed(0)
    model = build_model(name, 5, **kwargs).eval()
    x = torch.rand(2, *shape)
    assert isinstance(model, FeatureModel)
    with torch.no_grad():
        maps = model.feature_maps(x)
        features = model.features(x)
        logits = model(x)
    assert len(maps) >= 2, "a stage-wise method needs at least two stages"
    last = maps[-1] if maps[-1].dim() == 2 else F.adaptive_avg_pool2d(maps[-1], 1).flatten(1)
    torch.testing.assert_close(last, features)
    torch.testing.assert_close(logits, model.classifier(features))
    assert logits.shape == (2, 5)
    assert all(m.shape[0] == 2 for m in maps)
