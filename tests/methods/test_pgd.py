"""PGD (methods/pgd.py): the closed-form per-sample last-layer gradient norm equals autograd's, the
sampling probabilities of a toy training set equal a hand computation, stage 1 is GCE on f_B only, the
debiased net starts from f_B's weights, epochs are multinomial draws with replacement, and the
probabilities survive a checkpoint (stage 1 never reruns on resume)."""

from __future__ import annotations

import collections
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision, resolve_hparams
from debiasbench.methods.pgd import PGD, PGDHparams, last_layer_gradient_norms, sampling_probabilities


class LinearOnInputs(nn.Module):
    """features(x) = x, classifier a 2x2 Linear: every score is a hand computation."""

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.classifier = nn.Linear(2, 2)
        with torch.no_grad():
            self.classifier.weight.copy_(weight if weight is not None else torch.zeros(2, 2))
            self.classifier.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def frozen_context(toy_context, inputs, targets, model) -> MethodContext:
    """Stage 1 at lr 0: f_B stays as `model` builds it, so the scores are known."""
    return dataclasses.replace(
        toy_context(inputs, targets),
        model_factory=model,
        optimizer_factory=lambda params, lr=None: torch.optim.SGD(params, lr=0.0),
    )


def copy_of(net: nn.Module) -> nn.Module:
    """A copy of a TinyNet(3, 3) with the same weights (the hand computation's network)."""
    replica = type(net)(3, 3)
    replica.load_state_dict(net.state_dict())
    return replica


# -- the per-sample gradient ------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.7, 1.0, 2.0, math.inf])
def test_closed_form_norm_equals_autograd_per_sample(p, toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    net = toy_context(x, y).model_factory()  # TinyNet: Linear-ReLU body, linear classifier
    closed = last_layer_gradient_norms(net.features(x), net(x), y, p)
    for i in range(len(y)):
        net.zero_grad()
        F.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()  # one sample, one backward
        expected = torch.linalg.vector_norm(net.classifier.weight.grad.flatten(), ord=p)
        torch.testing.assert_close(closed[i], expected, rtol=1e-5, atol=1e-7)


def test_gradient_norm_by_hand() -> None:
    # logits (0, 0), y = 0: softmax - onehot = (-0.5, 0.5); h = (1, 2); g = [[-0.5, -1], [0.5, 1]].
    h, z, y = torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), torch.tensor([0])
    assert last_layer_gradient_norms(h, z, y, 2.0).item() == pytest.approx(math.sqrt(0.25 + 1 + 0.25 + 1))
    assert last_layer_gradient_norms(h, z, y, 1.0).item() == pytest.approx(0.5 + 1 + 0.5 + 1)
    # p = 0.7 (the official default): (sum |g|^0.7)^(1/0.7), not a norm but what torch.norm computes.
    assert last_layer_gradient_norms(h, z, y, 0.7).item() == pytest.approx((2 * 0.5**0.7 + 2 * 1.0) ** (1 / 0.7))
    # logits (2, 0), y = 0: p_0 = e^2 / (e^2 + 1); residual (p_0 - 1, 1 - p_0); h = (2, 0): L1 = 2 * 2 (1 - p_0).
    p0 = math.exp(2) / (math.exp(2) + 1)
    value = last_layer_gradient_norms(torch.tensor([[2.0, 0.0]]), torch.tensor([[2.0, 0.0]]), y, 1.0)
    assert value.item() == pytest.approx(2 * (1 - p0) * 2)


def test_sampling_probabilities_clamp_and_normalise() -> None:
    probabilities = sampling_probabilities(torch.tensor([3.0, 1.0, 0.0]))
    torch.testing.assert_close(probabilities, torch.tensor([3.0, 1.0, 1e-8]) / (4.0 + 1e-8))


def test_prepare_scores_the_training_set_by_hand(toy_context) -> None:
    # f_B = zero weights: every softmax is (0.5, 0.5) and ||softmax - onehot||_2 = sqrt(0.5) for every
    # sample, so s_i = sqrt(0.5) * ||x_i||_2 = sqrt(0.5) * (5, 1, 1, 0) and P = (5, 1, 1, ~0) / 7.
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1, 0, 1])
    method = PGD(PGDHparams(biased_epochs=1, norm_p=2.0), frozen_context(toy_context, x, y, LinearOnInputs))
    method.prepare()
    s = math.sqrt(0.5)
    expected = torch.tensor([5 * s, s, s, 1e-8]) / (7 * s + 1e-8)
    torch.testing.assert_close(method.probabilities, expected)
    # f_B predicts class 0 on every sample (tied logits): right on samples 0 and 2.
    assert method.epoch_diagnostics()["biased_train_accuracy"] == pytest.approx(0.5)


def test_prepare_scores_a_trained_classifier_by_hand(toy_context) -> None:
    # W = I: sample (2, 0) with y = 0 has p_0 = e^2/(e^2+1), its L1 score 2 (1 - p_0) * 2;
    # sample (0, 1) with y = 0 has logits (0, 1): p_0 = 1/(1+e), residual (p_0 - 1, 1 - p_0), score 2 (1 - p_0) * 1.
    x, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    ctx = frozen_context(toy_context, x, y, lambda: LinearOnInputs(torch.eye(2)))
    method = PGD(PGDHparams(biased_epochs=1, norm_p=1.0), ctx)
    method.prepare()
    s0 = 2 * (1 - math.exp(2) / (math.exp(2) + 1)) * 2
    s1 = 2 * (1 - 1 / (1 + math.e)) * 1
    torch.testing.assert_close(method.probabilities, torch.tensor([s0, s1]) / (s0 + s1))


# -- stage 1 and the debiased initialisation --------------------------------------------------------
def test_stage_one_is_gce_on_the_biased_net_and_the_debiased_net_starts_from_it(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    ctx = dataclasses.replace(
        toy_context(x, y), batch_size=6, optimizer_factory=lambda params, lr=None: torch.optim.SGD(params, lr=1.0)
    )
    method = PGD(PGDHparams(biased_epochs=1, q=0.7), ctx)
    replica = copy_of(method.biased)
    own_init = [p.detach().clone() for p in method.debiased.parameters()]
    # One epoch of one full batch: f_B <- f_B - grad mean(CE * 0.7 * sg(p_y)^0.7) (lr 1).
    logits = replica(x)
    p_y = torch.softmax(logits, 1)[torch.arange(6), y].detach()
    (F.cross_entropy(logits, y, reduction="none") * 0.7 * p_y**0.7).mean().backward()
    method.prepare()
    for after, ref in zip(method.biased.parameters(), replica.parameters()):
        torch.testing.assert_close(after.detach(), ref.detach() - ref.grad)
    # f_D's initial weights are f_B's after stage 1, not its own initialisation.
    for d, b, init in zip(method.debiased.parameters(), method.biased.parameters(), own_init):
        assert torch.equal(d, b) and not torch.equal(d, init)


def test_init_from_biased_false_keeps_the_debiased_nets_own_weights(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    method = PGD(PGDHparams(biased_epochs=1, init_from_biased=False), toy_context(x, y))
    own_init = [p.detach().clone() for p in method.debiased.parameters()]
    method.prepare()
    assert all(torch.equal(d, init) for d, init in zip(method.debiased.parameters(), own_init))


# -- stage 3 -----------------------------------------------------------------------------------------
def prepared(toy_context, probabilities: list[float]) -> PGD:
    n = len(probabilities)
    x, y = torch.randn(n, 3), torch.arange(n) % 3
    method = PGD(PGDHparams(), toy_context(x, y))
    method.probabilities.copy_(torch.tensor(probabilities))
    method.prepared.fill_(True)
    return method


def test_epoch_is_n_multinomial_draws_with_replacement(toy_context) -> None:
    method = prepared(toy_context, [0.5, 0.25, 0.25, 0.0])
    order = method.epoch_indices(0, torch.Generator().manual_seed(7))
    expected = torch.multinomial(
        torch.tensor([0.5, 0.25, 0.25, 0.0]), 4, True, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(order, expected) and len(order) == 4
    # Over many epochs: index 3 (probability 0) never drawn, index 0 about twice as often as 1 or 2.
    generator = torch.Generator().manual_seed(0)
    counts = collections.Counter(torch.cat([method.epoch_indices(e, generator) for e in range(2000)]).tolist())
    assert counts[3] == 0 and 1.8 < counts[0] / counts[1] < 2.2 and 0.9 < counts[1] / counts[2] < 1.1


def test_diagnostics_by_hand(toy_context) -> None:
    # P = (0.5, 0.25, 0.25, 0), N = 4: ESS = 1 / sum P^2 = 1 / 0.375, as a fraction 1 / 1.5; max ratio
    # 0.5 * 4 = 2; min 0; top 1% = the top ceil(0.04) = 1 sample: 0.5.
    diagnostics = prepared(toy_context, [0.5, 0.25, 0.25, 0.0]).epoch_diagnostics()
    assert diagnostics["sampling_ess_fraction"] == pytest.approx(1 / 1.5)
    assert diagnostics["sampling_max_ratio"] == pytest.approx(2.0)
    assert diagnostics["sampling_min_ratio"] == 0.0 and diagnostics["sampling_top1pct_mass"] == pytest.approx(0.5)


def test_train_step_is_plain_ce_on_the_debiased_net_only(toy_context) -> None:
    torch.manual_seed(0)
    method = prepared(toy_context, [0.25] * 4)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    replica = copy_of(method.debiased)
    biased_before = [p.detach().clone() for p in method.biased.parameters()]
    F.cross_entropy(replica(x), y).backward()
    output = method.train_step(Batch(index=torch.arange(4), x=x, y=y))
    for after, ref in zip(method.debiased.parameters(), replica.parameters()):
        torch.testing.assert_close(after.detach(), ref.detach() - ref.grad)
    assert all(torch.equal(a, b) for a, b in zip(method.biased.parameters(), biased_before))
    # The reported per-sample loss is f_D's CE before the step (the replica is never stepped).
    torch.testing.assert_close(output.per_sample_loss["debiased"], F.cross_entropy(replica(x), y, reduction="none"))
    assert set(output.per_sample_loss) == {"debiased"}


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert PGD.supervision is Supervision.NONE
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.arange(8) % 3
    method = PGD(PGDHparams(biased_epochs=2), toy_context(x, y, biases=poisoned_bias, num_bias=2))
    method.prepare()
    index = method.epoch_indices(0, torch.Generator().manual_seed(0))[:4]
    method.train_step(Batch(index=index, x=x[index], y=y[index], bias=poisoned_bias))
    method.epoch_diagnostics()


def test_probabilities_survive_a_checkpoint_and_are_required(toy_context, saved_and_loaded) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.arange(8) % 3
    ctx = toy_context(x, y)
    method = PGD(PGDHparams(biased_epochs=2), ctx)
    method.prepare()
    restored = PGD(PGDHparams(biased_epochs=2), ctx)
    with pytest.raises(RuntimeError, match="prepare"):
        restored.epoch_indices(0, torch.Generator())
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert torch.equal(restored.probabilities, method.probabilities) and bool(restored.prepared)
    assert all(torch.equal(a, b) for a, b in zip(restored.biased.parameters(), method.biased.parameters()))
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(restored.epoch_indices(1, generator()), method.epoch_indices(1, generator()))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("pgd") is PGD
    assert resolve_hparams(PGD, "cmnist") == PGDHparams(biased_epochs=None, q=0.7, norm_p=0.7, init_from_biased=True)
    drawn = resolve_hparams(PGD, "cmnist", hparams_seed=2)
    assert drawn.norm_p in (0.5, 0.7, 1.0, 2.0) and drawn.biased_epochs in (10, 20, 50, 100)
    for bad in ({"biased_epochs": 0}, {"q": 0.0}, {"q": 1.5}, {"norm_p": 0.0}, {"norm_p": -2.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PGDHparams(**bad)
    PGDHparams(norm_p=math.inf)  # the max-norm is allowed


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("pgd", {"biased_epochs": 3})
    assert output.trial.supervision == "none" and output.trial.predictor_role == "debiased"
    diagnostics = {r[4]: r[5] for r in output.rows if r[3] == "method"}
    assert 0.0 < diagnostics["sampling_ess_fraction"] <= 1.0 and diagnostics["sampling_max_ratio"] >= 1.0


def test_stage_1_lasts_the_trials_epochs_unless_set(toy_context) -> None:
    # The official stage 1 runs args.epochs, the same count as stage 3: None follows the trial.
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    ctx = dataclasses.replace(toy_context(x, y), epochs=7)
    assert PGD(PGDHparams(), ctx).stage1_epochs() == 7
    assert PGD(PGDHparams(biased_epochs=2), ctx).stage1_epochs() == 2
    with pytest.raises(ValueError, match="ctx.epochs"):
        PGD(PGDHparams(), toy_context(x, y)).stage1_epochs()
