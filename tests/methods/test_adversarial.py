"""Adversarial training: FGSM moves every pixel by exactly epsilon along the sign of the loss
gradient (clipped to [0, 1]) in pixel units whatever the input scaling; PGD stays in the epsilon
ball; the first mix_fraction of the batch is replaced and the network takes one CE step on the mix."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.adversarial import Adversarial, AdversarialHparams, perturb
from debiasbench.methods.base import METHODS, Batch, Supervision

SCALE = 1.0 / 255.0  # Colored MNIST's reference scaling: model inputs are pixels x 1/255


class Linear2(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.classifier = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)

    def features(self, x):
        return x

    def forward(self, x):
        return self.classifier(x)


def test_fgsm_moves_each_pixel_by_epsilon_along_the_gradient_sign_in_pixel_units():
    # Two classes, logits = W x. For y = 0, dCE/dx = (p - onehot) W = p1 * (W[1] - W[0]): its sign
    # is sign(W[1] - W[0]) per pixel, here (+, -, +).
    weight = torch.tensor([[1.0, 2.0, 0.0], [3.0, -1.0, 0.5]])
    net = Linear2(weight)
    pixels = torch.tensor([[0.5, 0.5, 0.95]])
    x = pixels * SCALE
    hparams = AdversarialHparams(epsilon=0.1)
    adversarial = perturb(net, x, torch.tensor([0]), hparams, lambda v: v / SCALE, lambda u: u * SCALE)
    # +0.1, -0.1, +0.1 then clipped to [0, 1]: the last pixel stops at 1.0.
    torch.testing.assert_close(adversarial / SCALE, torch.tensor([[0.6, 0.4, 1.0]]))
    # And it raises the loss, as an attack must.
    assert F.cross_entropy(net(adversarial / SCALE), torch.tensor([0])) > F.cross_entropy(
        net(pixels), torch.tensor([0])
    )


def test_pgd_stays_in_the_epsilon_ball_and_the_unit_range():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    pixels = torch.rand(16, 6)
    hparams = AdversarialHparams(attack="pgd", epsilon=0.2, steps=5)
    adversarial = perturb(net, pixels, torch.randint(0, 3, (16,)), hparams, lambda v: v, lambda u: u)
    assert (adversarial - pixels).abs().max() <= 0.2 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - pixels).abs().max() > 0.1  # it moved


def test_the_step_replaces_the_first_mix_fraction_and_takes_one_ce_step(toy_context):
    torch.manual_seed(0)
    inputs = torch.rand(8, 4)
    targets = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    ctx = toy_context(inputs, targets, lr=0.5)
    method = Adversarial(AdversarialHparams(epsilon=0.1, mix_fraction=0.25), ctx)
    before = {n: p.detach().clone() for n, p in method.net.named_parameters()}
    # By hand: the first 2 of 8 samples perturbed against the network as it was.
    reference = type(method.net)(4, 2)
    reference.load_state_dict(method.net.state_dict())
    expected_x = torch.cat(
        [perturb(reference, inputs[:2], targets[:2], method.hparams, ctx.unit_inputs, ctx.model_inputs), inputs[2:]]
    )
    output = method.train_step(Batch(index=torch.arange(8), x=inputs, y=targets))
    loss = F.cross_entropy(reference(expected_x), targets)
    assert output.loss.item() == pytest.approx(loss.item())
    loss.backward()
    for name, parameter in method.net.named_parameters():
        grad = dict(reference.named_parameters())[name].grad
        torch.testing.assert_close(parameter.detach(), before[name] - 0.5 * grad)
    assert method.epoch_diagnostics()["mean_abs_perturbation"] == pytest.approx(0.1, abs=1e-6)


def test_registered_without_bias_labels_and_validated():
    assert METHODS.get("adversarial") is Adversarial
    assert Adversarial.supervision is Supervision.NONE
    with pytest.raises(ValueError, match="pgd"):
        AdversarialHparams(steps=3)
    with pytest.raises(ValueError, match="steps"):
        AdversarialHparams(attack="pgd", steps=1)
    with pytest.raises(ValueError, match="pixel units"):
        AdversarialHparams(epsilon=8)


@pytest.mark.parametrize("hparams", [{}, {"attack": "pgd", "steps": 2}])
def test_one_epoch_through_the_real_trainer(train_toy_epoch, hparams):
    output = train_toy_epoch("adversarial", hparams)
    moved = [r[5] for r in output.rows if r[4] == "mean_abs_perturbation"]
    assert moved and 0 < moved[0] <= 0.25 + 1e-6
