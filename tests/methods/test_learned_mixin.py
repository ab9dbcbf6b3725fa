"""Learned-Mixin +H (methods/learned_mixin.py): the combined log-probabilities and the entropy term
against their probability-space definitions, one step against a hand-written replica (where every
gradient goes), prediction by the main model alone, and the run-level contract."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.learned_mixin import (
    LearnedMixin,
    LearnedMixinHparams,
    mixed_log_scores,
    scaled_bias_entropy,
    smoothed_log_probs,
)
from debiasbench.methods.losses import generalized_ce

C = 3


def test_mixed_scores_are_the_renormalised_product_of_main_probs_and_powered_bias_probs() -> None:
    z_d = torch.tensor([[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]], dtype=torch.float64)
    p_b = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    gate = torch.tensor([0.5, 2.0], dtype=torch.float64)
    y = torch.tensor([0, 2])
    mixed = mixed_log_scores(z_d, p_b.log(), gate)
    ce = F.cross_entropy(mixed, y, reduction="none")
    entropy = scaled_bias_entropy(p_b.log(), gate)
    for i in range(2):
        main = [math.exp(v) for v in z_d[i].tolist()]
        main = [v / sum(main) for v in main]
        product = [main[c] * p_b[i, c].item() ** gate[i].item() for c in range(C)]
        # CE of the mixture: -log of the renormalised product at the target.
        assert ce[i].item() == pytest.approx(-math.log(product[y[i]] / sum(product)), rel=1e-12)
        powered = [p_b[i, c].item() ** gate[i].item() for c in range(C)]
        q = [v / sum(powered) for v in powered]
        assert entropy[i].item() == pytest.approx(-sum(v * math.log(v) for v in q), rel=1e-12)


def test_zero_gate_is_plain_cross_entropy_and_a_larger_gate_lowers_the_entropy() -> None:
    z_d, log_p_b, y = torch.randn(4, C), torch.log_softmax(torch.randn(4, C), 1), torch.tensor([0, 1, 2, 0])
    zero = torch.zeros(4)
    torch.testing.assert_close(F.cross_entropy(mixed_log_scores(z_d, log_p_b, zero), y), F.cross_entropy(z_d, y))
    torch.testing.assert_close(scaled_bias_entropy(log_p_b, zero), torch.full((4,), math.log(C)))
    # The +H penalty is minimised by sharpening, i.e. by a larger gate: it stops g collapsing to 0.
    gate = torch.full((4,), 0.5, requires_grad=True)
    scaled_bias_entropy(log_p_b, gate).sum().backward()
    assert torch.all(gate.grad < 0)


def hand_loss(main, biased, gate_layer, x, y, q, entropy_weight):
    """The objective from its definition, in probability space, on replica modules."""
    h = main.features(x)
    main_probs = torch.softmax(main.classifier(h), 1)
    logits_b = biased(x)
    p_b = torch.softmax(logits_b, 1).detach()
    gate = torch.log1p(torch.exp(gate_layer(h).squeeze(1)))  # softplus written out
    powered = p_b ** gate[:, None]
    product = main_probs * powered
    mixed_ce = -torch.log(product[torch.arange(len(y)), y] / product.sum(1))
    q_dist = powered / powered.sum(1, keepdim=True)
    entropy = -(q_dist * q_dist.log()).sum(1)
    gce = generalized_ce(logits_b, y, q)
    return gce.mean() + mixed_ce.mean() + entropy_weight * entropy.mean(), gce.mean()


def test_one_step_matches_the_written_out_objective_and_routes_gradients(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    hparams = LearnedMixinHparams(entropy_weight=0.5, q=0.7)
    method = LearnedMixin(hparams, toy_context(x, y, lr=1.0))
    with torch.no_grad():  # a bias branch far from uniform, so the mixture and the gate matter
        method.biased.classifier.weight.mul_(5.0)
    main, biased, gate = (copy.deepcopy(m) for m in (method.main, method.biased, method.gate))
    before = {
        name: [p.detach().clone() for p in m.parameters()]
        for name, m in (("main", method.main), ("biased", method.biased), ("gate", method.gate))
    }

    loss, gce = hand_loss(main, biased, gate, x, y, hparams.q, hparams.entropy_weight)
    loss.backward()
    output = method.train_step(Batch(index=torch.arange(8), x=x, y=y))

    torch.testing.assert_close(output.loss, loss.detach())
    # SGD(lr=1): new = old - grad, for f_D, f_B and the gate, from the one objective.
    for name, module, replica in (
        ("main", method.main, main),
        ("biased", method.biased, biased),
        ("gate", method.gate, gate),
    ):
        for old, new, ref in zip(before[name], module.parameters(), replica.parameters()):
            torch.testing.assert_close(new.detach(), old - ref.grad)
    # f_B's gradient is GCE's alone: the mixture reads a detached log p_B.
    only_gce = copy.deepcopy(method.biased)
    for old, p in zip(before["biased"], only_gce.parameters()):
        p.data.copy_(old)
    generalized_ce(only_gce(x), y, hparams.q).mean().backward()
    for p, ref in zip(only_gce.parameters(), biased.parameters()):
        torch.testing.assert_close(p.grad, ref.grad)
    torch.testing.assert_close(output.per_sample_loss["main"], F.cross_entropy(main(x), y, reduction="none").detach())


def test_bias_smoothing_mixes_the_bias_branch_with_the_uniform_distribution() -> None:
    logits = torch.tensor([[80.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(smoothed_log_probs(logits, 0.0), F.log_softmax(logits, 1))
    smoothed = smoothed_log_probs(logits, 0.06)
    expected = (0.94 * torch.softmax(logits, 1) + 0.02).log()
    torch.testing.assert_close(smoothed, expected)
    # An over-confident branch (log p = -80 off the argmax) is floored at log(alpha / K).
    assert smoothed[0, 1].item() == pytest.approx(math.log(0.02), rel=1e-9)


def test_bias_smoothing_enters_the_step_and_bounds_the_mixture(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    losses = {}
    for alpha in (0.0, 0.3):
        torch.manual_seed(1)
        method = LearnedMixin(LearnedMixinHparams(bias_smoothing=alpha), toy_context(x, y))
        with torch.no_grad():  # a near-certain bias branch, as GCE produces on Colored MNIST
            method.biased.classifier.weight.mul_(50.0)
        losses[alpha] = method.train_step(Batch(index=torch.arange(8), x=x, y=y)).loss.item()
    # Flooring the branch's wrong-class probabilities caps the mixture's loss on samples it gets wrong.
    assert losses[0.3] < losses[0.0]


def test_prediction_uses_the_main_model_alone(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    method = LearnedMixin(LearnedMixinHparams(), toy_context(x, y))
    torch.testing.assert_close(method.logits(x, "main"), method.main(x))
    torch.testing.assert_close(method.logits(x, "biased"), method.biased(x))
    assert LearnedMixin.predictor_role == "main" and LearnedMixin.roles == ("main", "biased")


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert LearnedMixin.supervision is Supervision.NONE
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    method = LearnedMixin(LearnedMixinHparams(), toy_context(x, y, biases=poisoned_bias, num_bias=3))
    method.prepare()
    assert method.epoch_indices(0, torch.Generator()) is None
    method.train_step(Batch(index=torch.arange(6), x=x, y=y, bias=poisoned_bias))
    assert method.epoch_diagnostics()["mean_gate"] > 0


def test_gate_and_its_optimiser_survive_a_checkpoint(toy_context, saved_and_loaded) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    ctx = dataclasses.replace(toy_context(x, y), optimizer_factory=lambda p: torch.optim.Adam(p, lr=0.1))
    method = LearnedMixin(LearnedMixinHparams(), ctx)
    method.train_step(Batch(index=torch.arange(6), x=x, y=y))
    restored = LearnedMixin(LearnedMixinHparams(), ctx)
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    torch.testing.assert_close(restored.gate.weight, method.gate.weight)
    assert (
        restored.optimizers["gate"].state_dict()["state"].keys()
        == method.optimizers["gate"].state_dict()["state"].keys()
    )
    restored.train_step(Batch(index=torch.arange(6), x=x, y=y))
    method.train_step(Batch(index=torch.arange(6), x=x, y=y))
    torch.testing.assert_close(restored.gate.weight, method.gate.weight)  # Adam moments resumed too


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("learned_mixin") is LearnedMixin
    assert resolve_hparams(LearnedMixin, "cmnist") == LearnedMixinHparams(
        entropy_weight=0.36, q=0.7, bias_smoothing=0.0
    )
    drawn = resolve_hparams(LearnedMixin, "cmnist", hparams_seed=2)
    assert 0.01 <= drawn.entropy_weight <= 1.0 and drawn.q in (0.3, 0.5, 0.7, 0.9)
    for bad in ({"entropy_weight": -1.0}, {"q": 0.0}, {"bias_smoothing": 1.0}, {"bias_smoothing": -0.1}):
        with pytest.raises(ValueError):
            LearnedMixinHparams(**bad)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("learned_mixin")
    assert output.trial.supervision == "none"
    assert {r[1] for r in output.rows if r[2] == "test"} == {"main", "biased"}
    assert any(r[4] == "mean_gate" for r in output.rows)
