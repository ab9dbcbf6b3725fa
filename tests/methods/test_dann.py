"""DANN with the bias as the domain (methods/dann.py): the gradient-reversal layer's sign and scale,
where every gradient of one step goes (features: reversed and scaled; adversary: ordinary;
classifier: the target loss only), and the contract."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.dann import DANN, DANNHparams, adversary_head, reverse_gradient

NUM_BIAS = 2


def test_reversal_is_identity_forward_and_minus_lambda_backward() -> None:
    h = torch.tensor([[1.0, -2.0, 0.5]], requires_grad=True)
    out = reverse_gradient(h, 0.7)
    assert torch.equal(out, h)
    upstream = torch.tensor([[0.3, 1.0, -4.0]])
    out.backward(upstream)
    torch.testing.assert_close(h.grad, -0.7 * upstream)


def test_reversed_gradient_at_the_feature_layer() -> None:
    """d/dh of CE(D(GRL(h)), b) is exactly -lambda times the ordinary gradient d/dh CE(D(h), b)."""
    torch.manual_seed(0)
    head = adversary_head(4, NUM_BIAS, width=5, depth=3)
    h = torch.randn(6, 4, requires_grad=True)
    b = torch.tensor([0, 1, 1, 0, 1, 0])
    (ordinary,) = torch.autograd.grad(F.cross_entropy(head(h), b), h)
    (reversed_,) = torch.autograd.grad(F.cross_entropy(head(reverse_gradient(h, 2.5)), b), h)
    torch.testing.assert_close(reversed_, -2.5 * ordinary)
    # The head's own gradient is unchanged by the reversal: it learns to predict b.
    plain = [g.clone() for g in torch.autograd.grad(F.cross_entropy(head(h), b), list(head.parameters()))]
    through = torch.autograd.grad(F.cross_entropy(head(reverse_gradient(h, 2.5)), b), list(head.parameters()))
    for a, c in zip(plain, through):
        torch.testing.assert_close(a, c)


def toy_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])


@pytest.mark.parametrize("grl_lambda", [1.0, 0.25, 0.0])
def test_one_step_routes_each_gradient(toy_context, grl_lambda) -> None:
    x, y, b = toy_batch()
    method = DANN(DANNHparams(grl_lambda=grl_lambda, head_width=7), toy_context(x, y, b, NUM_BIAS, lr=1.0))
    net, head = copy.deepcopy(method.net), copy.deepcopy(method.adversary)
    before_net = [p.detach().clone() for p in method.net.parameters()]
    before_head = [p.detach().clone() for p in method.adversary.parameters()]
    body = list(net.body.parameters())

    # The replica without any reversal layer: two separate losses, combined by hand.
    target_loss = F.cross_entropy(net(x), y)
    bias_loss = F.cross_entropy(head(net.features(x)), b)
    grad_target = torch.autograd.grad(target_loss, body, retain_graph=True)
    grad_bias = torch.autograd.grad(bias_loss, body, retain_graph=True)
    grad_classifier = torch.autograd.grad(target_loss, list(net.classifier.parameters()))
    grad_head = torch.autograd.grad(bias_loss, list(head.parameters()))

    output = method.train_step(Batch(index=torch.arange(8), x=x, y=y, bias=b))

    torch.testing.assert_close(output.loss, (target_loss + bias_loss).detach())
    # Feature extractor: dCE_y/dtheta - lambda * dCE_b/dtheta (SGD lr 1: new = old - grad).
    for old, new, g_t, g_b in zip(before_net[: len(body)], method.net.body.parameters(), grad_target, grad_bias):
        torch.testing.assert_close(new.detach(), old - (g_t - grl_lambda * g_b))
    # Target classifier: the target loss only.
    for old, new, g in zip(before_net[len(body) :], method.net.classifier.parameters(), grad_classifier):
        torch.testing.assert_close(new.detach(), old - g)
    # Adversary: its own loss, not reversed (it learns to predict b), whatever lambda is.
    for old, new, g in zip(before_head, method.adversary.parameters(), grad_head):
        torch.testing.assert_close(new.detach(), old - g)


def test_adversary_is_the_documented_mlp() -> None:
    head = adversary_head(64, 10, width=256, depth=3)
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[-1].out_features) == (64, 256, 10)
    assert [type(m).__name__ for m in adversary_head(64, 10, width=256, depth=1)] == ["Linear"]


def test_diagnostic_counts_the_adversarys_training_accuracy(toy_context) -> None:
    x, y, b = toy_batch()
    method = DANN(DANNHparams(), toy_context(x, y, b, NUM_BIAS, lr=0.0))
    with torch.no_grad():
        expected = (method.adversary(method.net.features(x)).argmax(1) == b).float().mean().item()
    method.train_step(Batch(index=torch.arange(8), x=x, y=y, bias=b))
    assert method.epoch_diagnostics() == {"adversary_bias_accuracy": pytest.approx(expected)}


def test_adversary_and_its_optimiser_survive_a_checkpoint(toy_context, saved_and_loaded) -> None:
    x, y, b = toy_batch()
    ctx = dataclasses.replace(toy_context(x, y, b, NUM_BIAS), optimizer_factory=lambda p: torch.optim.Adam(p, lr=0.1))
    method = DANN(DANNHparams(head_width=5), ctx)
    batch = Batch(index=torch.arange(8), x=x, y=y, bias=b)
    method.train_step(batch)
    restored = DANN(DANNHparams(head_width=5), ctx)
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    method.train_step(batch)
    restored.train_step(batch)
    for a, c in zip(method.adversary.parameters(), restored.adversary.parameters()):
        torch.testing.assert_close(a, c)


def test_needs_bias_labels(toy_context, registry_without_bias_labels, trial_api) -> None:
    assert DANN.supervision is Supervision.BIAS_LABELS
    x, y, b = toy_batch()
    with pytest.raises(ValueError, match="bias labels"):
        DANN(DANNHparams(), toy_context(x, y))
    method = DANN(DANNHparams(), toy_context(x, y, b, NUM_BIAS))
    with pytest.raises(ValueError, match="without bias labels"):
        method.train_step(Batch(index=torch.arange(8), x=x, y=y))
    with pytest.raises(trial_api.InvalidTrialError, match="needs bias labels"):
        trial_api.resolve_trial(trial_api.TrialConfig(dataset="no_bias_labels", method="dann"))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("dann") is DANN
    assert resolve_hparams(DANN, "cmnist") == DANNHparams(grl_lambda=1.0, head_width=256, head_depth=3)
    assert 1e-2 <= resolve_hparams(DANN, "cmnist", hparams_seed=1).grl_lambda <= 1e2
    for bad in ({"grl_lambda": -1.0}, {"head_depth": 0}):
        with pytest.raises(ValueError):
            DANNHparams(**bad)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("dann")
    assert output.trial.supervision == "bias-labels"
    accuracy = [r[5] for r in output.rows if r[4] == "adversary_bias_accuracy"]
    assert len(accuracy) == 1 and 0.0 <= accuracy[0] <= 1.0
