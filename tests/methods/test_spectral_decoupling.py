"""Spectral Decoupling (methods/spectral_decoupling.py): the penalty's value and normalisation by
hand, and one step's gradient from the closed form dL/dz = (softmax - onehot)/B + lambda z / B."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.spectral_decoupling import SpectralDecoupling, SpectralDecouplingHparams, logit_penalty


def test_penalty_value_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    # (0.1 / 2) * mean(1 + 4, 9 + 1) = 0.05 * 7.5
    assert logit_penalty(logits, 0.1).item() == pytest.approx(0.375)


def test_penalty_equals_domainbeds_form_with_rescaled_coefficient() -> None:
    logits = torch.randn(5, 4)
    sd_reg = 0.1
    torch.testing.assert_close(logit_penalty(logits, 2 * sd_reg / 4), sd_reg * logits.pow(2).mean())


def linear_context(toy_context, x, y, lr):
    return toy_context(x, y, lr=lr, model=lambda: nn.Linear(x.shape[1], 3))


def test_one_step_follows_the_closed_form_gradient(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    sd_lambda = 0.3
    method = SpectralDecoupling(SpectralDecouplingHparams(sd_lambda=sd_lambda), linear_context(toy_context, x, y, 1.0))
    weight, bias = method.net.weight.detach().clone(), method.net.bias.detach().clone()
    z = x @ weight.T + bias
    batch = len(y)
    # No autograd: dL/dz written out, then chained through z = W x + b.
    grad_z = (torch.softmax(z, 1) - F.one_hot(y, 3).float()) / batch + sd_lambda * z / batch
    expected_loss = F.cross_entropy(z, y) + sd_lambda / 2 * (z**2).sum(1).mean()

    output = method.train_step(Batch(index=torch.arange(batch), x=x, y=y))

    torch.testing.assert_close(output.loss, expected_loss)
    torch.testing.assert_close(method.net.weight.detach(), weight - grad_z.T @ x)
    torch.testing.assert_close(method.net.bias.detach(), bias - grad_z.sum(0))
    torch.testing.assert_close(output.per_sample_loss["main"], F.cross_entropy(z, y, reduction="none"))


def test_zero_lambda_is_plain_erm(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    method = SpectralDecoupling(SpectralDecouplingHparams(sd_lambda=0.0), linear_context(toy_context, x, y, 1.0))
    replica = nn.Linear(5, 3)
    replica.load_state_dict(method.net.state_dict())
    F.cross_entropy(replica(x), y).backward()
    method.train_step(Batch(index=torch.arange(4), x=x, y=y))
    torch.testing.assert_close(method.net.weight.detach(), replica.weight.detach() - replica.weight.grad)


def test_diagnostic_is_the_epochs_mean_penalty(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    # lr 0: both steps see the same logits, so the mean penalty is that of one step.
    method = SpectralDecoupling(SpectralDecouplingHparams(sd_lambda=0.2), linear_context(toy_context, x, y, 0.0))
    expected = logit_penalty(method.net(x).detach(), 0.2).item()
    for _ in range(2):
        method.train_step(Batch(index=torch.arange(4), x=x, y=y))
    assert method.epoch_diagnostics() == {"mean_logit_penalty": pytest.approx(expected)}
    assert method.epoch_diagnostics() == {"mean_logit_penalty": 0.0}  # reset each epoch


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert SpectralDecoupling.supervision is Supervision.NONE
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    method = SpectralDecoupling(SpectralDecouplingHparams(), toy_context(x, y, biases=poisoned_bias, num_bias=3))
    method.prepare()
    assert method.epoch_indices(0, torch.Generator()) is None
    method.train_step(Batch(index=torch.arange(6), x=x, y=y, bias=poisoned_bias))
    method.epoch_diagnostics()


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("spectral_decoupling") is SpectralDecoupling
    assert resolve_hparams(SpectralDecoupling, "cmnist").sd_lambda == 0.1
    assert 1e-3 <= resolve_hparams(SpectralDecoupling, "cmnist", hparams_seed=5).sd_lambda <= 1e-1
    with pytest.raises(ValueError):
        SpectralDecouplingHparams(sd_lambda=-0.1)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("spectral_decoupling")
    assert output.trial.supervision == "none"
    assert any(r[4] == "mean_logit_penalty" for r in output.rows)
