"""AND-mask (methods/and_mask.py): the mask and the masked, rescaled mean gradient on hand-set
gradients of two environments, one step against per-environment gradients computed separately,
the environment definitions, and the contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods.and_mask import ANDMask, ANDMaskHparams, and_mask
from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams

NUM_BIAS = 2
# Two environments, four components: agree (+), disagree, agree (+), one environment exactly 0.
G1 = torch.tensor([1.0, -2.0, 3.0, 0.0])
G2 = torch.tensor([2.0, 1.0, 4.0, 5.0])


def test_mask_requires_full_agreement_at_tau_one() -> None:
    grad, mask = and_mask(torch.stack([G1, G2]), tau=1.0, rescale=False)
    # |mean sign| = (1, 0, 1, 0.5)
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert grad.tolist() == [1.5, 0.0, 3.5, 0.0]  # mask * mean(g1, g2)


def test_rescaling_divides_by_the_kept_fraction() -> None:
    grad, _ = and_mask(torch.stack([G1, G2]), tau=1.0, rescale=True)
    torch.testing.assert_close(grad, torch.tensor([1.5, 0.0, 3.5, 0.0]) / (0.5 + 1e-10))


def test_lower_threshold_keeps_partial_agreement() -> None:
    grad, mask = and_mask(torch.stack([G1, G2]), tau=0.5, rescale=True)
    assert mask.tolist() == [1.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(grad, torch.tensor([1.5, 0.0, 3.5, 2.5]) / (0.75 + 1e-10))
    # tau 0 keeps everything: the plain mean gradient.
    grad, mask = and_mask(torch.stack([G1, G2]), tau=0.0, rescale=True)
    assert mask.tolist() == [1.0] * 4
    torch.testing.assert_close(grad, (G1 + G2) / 2)


def test_rescaling_is_per_parameter_tensor() -> None:
    matrix = torch.stack([torch.tensor([[1.0, -1.0], [1.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])])
    grad, mask = and_mask(matrix, tau=1.0, rescale=True)
    assert mask.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    torch.testing.assert_close(grad, torch.tensor([[1.0, 0.0], [1.0, 1.0]]) / (0.75 + 1e-10))


def hand_step(method: ANDMask, x, y, env, tau, rescale):
    """Per-environment gradients from separate forward/backward passes, then the mask formula
    written element by element."""
    params = list(method.net.parameters())
    per_env = []
    for e in sorted(set(env.tolist())):
        members = env == e
        loss = F.cross_entropy(method.net(x[members]), y[members])
        per_env.append([g.detach() for g in torch.autograd.grad(loss, params)])
    expected = []
    for index, param in enumerate(params):
        stacked = torch.stack([g[index] for g in per_env]).reshape(len(per_env), -1)
        flat = torch.zeros(stacked.shape[1])
        kept = 0
        for j in range(stacked.shape[1]):
            signs = [float(torch.sign(stacked[e, j])) for e in range(len(per_env))]
            if abs(sum(signs) / len(signs)) >= tau:
                flat[j] = stacked[:, j].mean()
                kept += 1
        if rescale:
            flat = flat / (kept / stacked.shape[1] + 1e-10)
        expected.append(param.detach() - flat.reshape(param.shape))  # SGD, lr 1
    return expected


@pytest.mark.parametrize("environments,tau,rescale", [("bias", 1.0, True), ("bias", 0.6, False), ("group", 0.5, True)])
def test_one_step_matches_the_hand_computed_update(toy_context, environments, tau, rescale) -> None:
    torch.manual_seed(0)
    x = torch.randn(10, 4)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    b = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    method = ANDMask(
        ANDMaskHparams(tau=tau, rescale=rescale, environments=environments), toy_context(x, y, b, NUM_BIAS, lr=1.0)
    )
    env = y * NUM_BIAS + b if environments == "group" else b
    expected = hand_step(method, x, y, env, tau, rescale)
    env_means = [F.cross_entropy(method.net(x[env == e]), y[env == e]) for e in sorted(set(env.tolist()))]

    output = method.train_step(Batch(index=torch.arange(10), x=x, y=y, bias=b))

    for new, ref in zip(method.net.parameters(), expected):
        torch.testing.assert_close(new.detach(), ref)
    torch.testing.assert_close(output.loss, torch.stack(env_means).mean().detach())


def test_alignment_environments_split_aligned_from_conflicting(toy_context) -> None:
    """Each class's aligned bias value is its majority bias in the training set; the step is the
    masked mean over the two environments, aligned and conflicting, each holding every class."""
    torch.manual_seed(0)
    x = torch.randn(9, 4)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    b = torch.tensor([1, 1, 0, 0, 0, 1, 0, 0, 1])  # majority bias: class 0 -> 1, class 1 -> 0, class 2 -> 0
    method = ANDMask(ANDMaskHparams(tau=1.0, environments="alignment"), toy_context(x, y, b, NUM_BIAS, lr=1.0))
    assert method.aligned_bias.tolist() == [1, 0, 0]
    env = torch.tensor([0, 0, 1, 0, 0, 1, 0, 0, 1])  # 1 = conflicting
    assert method.environment_of(y, b).tolist() == env.tolist()
    expected = hand_step(method, x, y, env, 1.0, True)
    method.train_step(Batch(index=torch.arange(9), x=x, y=y, bias=b))
    for new, ref in zip(method.net.parameters(), expected):
        torch.testing.assert_close(new.detach(), ref)


def test_environments_weigh_equally_whatever_their_size(toy_context) -> None:
    """With tau 0 and no rescaling the step is the mean of the environments' mean-loss gradients,
    not the batch-mean gradient."""
    torch.manual_seed(0)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    b = torch.tensor([0, 0, 0, 0, 1])  # 4 samples vs 1
    method = ANDMask(
        ANDMaskHparams(tau=0.0, rescale=False, environments="bias"), toy_context(x, y, b, NUM_BIAS, lr=1.0)
    )
    params = list(method.net.parameters())
    losses = [F.cross_entropy(method.net(x[b == e]), y[b == e]) for e in (0, 1)]
    grads = [torch.autograd.grad(loss, params) for loss in losses]
    expected = [p.detach() - (g0 + g1) / 2 for p, g0, g1 in zip(params, *grads)]
    method.train_step(Batch(index=torch.arange(5), x=x, y=y, bias=b))
    for new, ref in zip(method.net.parameters(), expected):
        torch.testing.assert_close(new.detach(), ref)


def test_diagnostic_reports_the_kept_fraction(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    b = torch.tensor([0, 1, 0, 1, 0, 1])
    method = ANDMask(ANDMaskHparams(tau=0.0), toy_context(x, y, b, NUM_BIAS, lr=0.0))
    method.train_step(Batch(index=torch.arange(6), x=x, y=y, bias=b))
    assert method.epoch_diagnostics() == {"mask_kept_fraction": pytest.approx(1.0)}
    assert method.epoch_diagnostics() == {"mask_kept_fraction": 0.0}  # reset each epoch


def test_needs_bias_labels(toy_context, registry_without_bias_labels, trial_api) -> None:
    assert ANDMask.supervision is Supervision.BIAS_LABELS
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="bias labels"):
        ANDMask(ANDMaskHparams(), toy_context(x, y))
    with pytest.raises(trial_api.InvalidTrialError, match="needs bias labels"):
        trial_api.resolve_trial(trial_api.TrialConfig(dataset="no_bias_labels", method="and_mask"))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("and_mask") is ANDMask
    assert resolve_hparams(ANDMask, "cmnist") == ANDMaskHparams(tau=1.0, rescale=True, environments="alignment")
    assert 0.5 <= resolve_hparams(ANDMask, "cmnist", hparams_seed=1).tau <= 1.0
    assert ANDMaskHparams(environments="alignment").environments == "alignment"
    for bad in ({"tau": 1.5}, {"environments": "class"}):
        with pytest.raises(ValueError):
            ANDMaskHparams(**bad)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("and_mask")
    assert output.trial.supervision == "bias-labels"
    kept = [r[5] for r in output.rows if r[4] == "mask_kept_fraction"]
    assert len(kept) == 1 and 0.0 <= kept[0] <= 1.0
