"""LfF with BiasEnsemble (methods/lff_be.py): the agreement rule on given probabilities, stage B's
biased update computed by hand (CE over the batch's pseudo-aligned samples only, EMAs for every
sample), stage A's held-out early stopping and its split, the mask surviving a checkpoint, and no
bias labels read anywhere."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import debiasbench.methods.lff_be as lff_be
from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.lff_be import LfFBE, LfFBEHparams, batch_stream, pseudo_aligned, split_holdout

LN3 = math.log(3)


def test_agreement_rule_on_given_probabilities() -> None:
    # Rows: 5 bias models; columns: 5 samples; tau = 0.99 (strictly above), agreement 3.
    probabilities = torch.tensor(
        [
            [0.995, 0.995, 0.999, 0.1, 0.991],
            [0.995, 0.995, 0.999, 0.1, 0.992],
            [0.995, 0.990, 0.999, 0.1, 0.993],
            [0.500, 0.990, 0.999, 0.1, 0.994],
            [0.500, 0.200, 0.999, 0.1, 0.100],
        ]
    )
    # Counts above 0.99: 3, 2 (0.990 is not above), 5, 0, 4.
    expected = torch.tensor([True, False, True, False, True])
    assert torch.equal(pseudo_aligned(probabilities, 0.99, 3), expected)
    assert torch.equal(pseudo_aligned(probabilities, 0.99, 5), torch.tensor([False, False, True, False, False]))
    assert torch.equal(pseudo_aligned(probabilities, 0.98, 3), torch.tensor([True, True, True, False, True]))


# -- stage B ------------------------------------------------------------------------------
# Three classes, zero-initialised linear networks: every p is uniform (1/3) and every CE is ln 3.
XB = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
YB = torch.tensor([0, 1, 2, 0])
MASK = torch.tensor([True, False, True, False])  # samples 0 and 2 are pseudo-aligned


def zero_linear() -> nn.Module:
    model = nn.Linear(2, 3)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return model


def stage_b_method(toy_context, mask=MASK, **hparams) -> LfFBE:
    ctx = dataclasses.replace(toy_context(XB, YB, lr=1.0, num_classes=3), model_factory=zero_linear)
    method = LfFBE(LfFBEHparams(**hparams), ctx)
    method.pseudo_aligned.copy_(mask)
    method.identified.fill_(True)
    return method


def test_biased_branch_learns_only_from_pseudo_aligned_samples(toy_context) -> None:
    method = stage_b_method(toy_context)
    out = method.train_step(Batch(index=torch.arange(4), x=XB, y=YB))
    # f_B: CE averaged over S = {0, 2}: grad of its bias = (1/2) sum_{i in S} (p_i - e_{y_i})
    #   = (1/2) [(1/3 - 1, 1/3, 1/3) + (1/3, 1/3, 1/3 - 1)] = (-1/6, 1/3, -1/6); SGD lr 1 moves by -grad.
    torch.testing.assert_close(method.biased.bias.detach(), torch.tensor([1 / 6, -1 / 3, 1 / 6]))
    # Its weight: (1/2) [(p_0 - e_0) x_0^T + (p_2 - e_2) x_2^T], x_0 = (1, 0), x_2 = (1, 1).
    grad_w = 0.5 * torch.tensor([[-2 / 3 + 1 / 3, 1 / 3], [1 / 3 + 1 / 3, 1 / 3], [1 / 3 - 2 / 3, -2 / 3]])
    torch.testing.assert_close(method.biased.weight.detach(), -grad_w)
    # Every EMA is updated, masked or not: first visit stores CE = ln 3 for all four samples.
    torch.testing.assert_close(method.ema_biased, torch.full((4,), LN3))
    torch.testing.assert_close(method.ema_debiased, torch.full((4,), LN3))
    # f_D as LfF: all normalised EMAs are 1, so W = 1/2 for all; grad of its bias =
    #   (1/4) sum_i (1/2)(p_i - e_{y_i}) = (1/8) (4/3 - (2, 1, 1)) = (-1/12, 1/24, 1/24).
    torch.testing.assert_close(method.debiased.bias.detach(), torch.tensor([1 / 12, -1 / 24, -1 / 24]))
    # Loss = CE_B mean over S + mean(W * CE_D) = ln3 + ln3 / 2.
    assert out.loss.item() == pytest.approx(1.5 * LN3, rel=1e-6)
    torch.testing.assert_close(out.per_sample_loss["biased"], torch.full((4,), LN3))


def test_samples_outside_the_mask_do_not_change_the_biased_update(toy_context) -> None:
    updates = []
    for x1, y1 in ((XB[1], 1), (torch.tensor([5.0, -3.0]), 2)):
        method = stage_b_method(toy_context)
        x, y = XB.clone(), YB.clone()
        x[1], y[1] = x1, y1
        method.train_step(Batch(index=torch.arange(4), x=x, y=y))
        updates.append([p.detach().clone() for p in method.biased.parameters()])
    for a, b in zip(*updates):
        torch.testing.assert_close(a, b)


def test_batch_without_pseudo_aligned_samples_leaves_the_biased_model(toy_context) -> None:
    method = stage_b_method(toy_context, mask=torch.zeros(4, dtype=torch.bool))
    out = method.train_step(Batch(index=torch.arange(4), x=XB, y=YB))
    assert math.isfinite(out.loss.item())
    assert all(torch.count_nonzero(p) == 0 for p in method.biased.parameters())
    assert torch.count_nonzero(method.debiased.bias) > 0


def test_gce_ablation_weights_the_masked_mean_by_q_p_to_the_q(toy_context) -> None:
    method = stage_b_method(toy_context, biased_loss="gce", q=0.7)
    method.train_step(Batch(index=torch.arange(4), x=XB, y=YB))
    # GCE's gradient is q p_y^q times CE's: p_y = 1/3 for both masked samples.
    scale = 0.7 * (1 / 3) ** 0.7
    torch.testing.assert_close(method.biased.bias.detach(), scale * torch.tensor([1 / 6, -1 / 3, 1 / 6]))


# -- stage A ------------------------------------------------------------------------------
# Two classes, a fixed linear model with logits = x: p(y | x) = sigmoid(x_y - x_other).
XA = torch.tensor([[5.0, 0.0], [4.0, 0.0], [0.0, 5.0], [5.0, 0.0]] * 5)
YA = torch.tensor([0, 0, 1, 1] * 5)
# p_y: sigmoid(5) = 0.9933 > 0.99; sigmoid(4) = 0.982; sigmoid(5); sigmoid(-5) = 0.0067.
MASK_A = torch.tensor([True, False, True, False] * 5)


def identity_linear() -> nn.Module:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    return model


def stage_a_context(toy_context, lr: float = 0.0, record=None):
    ctx = toy_context(XA, YA, lr=lr)

    def augmented(index):
        if record is not None:
            record.append(index.clone())
        return XA[index]

    return dataclasses.replace(ctx, model_factory=identity_linear, augmented_inputs=augmented, batch_size=4)


def test_prepare_marks_samples_most_models_fit_confidently(toy_context) -> None:
    record: list[torch.Tensor] = []
    steps = []

    made = []

    class CountingSGD(torch.optim.SGD):
        # A serial number, not id(): a freed optimiser's address can be reused by the next one.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
            self.serial = len(made)

        def step(self, closure=None):
            steps.append(self.serial)
            return super().step(closure)

    ctx = dataclasses.replace(
        stage_a_context(toy_context, record=record),
        optimizer_factory=lambda params: CountingSGD(params, lr=0.0),  # lr 0: every model stays p = sigmoid(x_y - x_o)
    )
    torch.manual_seed(0)
    method = LfFBE(LfFBEHparams(biased_model_train_iter=7, selection_every=3), ctx)
    stage_b = [p.detach().clone() for p in method.parameters()]
    method.prepare()
    assert torch.equal(method.pseudo_aligned, MASK_A) and bool(method.identified)
    # 5 models x 7 steps, each model on its own optimiser; stage B's networks never stepped.
    assert len(steps) == 35 and len(set(steps)) == 5
    assert not {getattr(o, "serial", None) for o in method.optimizers.values()} & set(steps)
    assert all(torch.equal(a, b) for a, b in zip(stage_b, method.parameters()))
    # 10% of 20 = 2 samples held out, never in a training batch; batches of the protocol's size 4.
    trained = torch.cat(record)
    assert len(record) == 35 and all(len(r) == 4 for r in record)
    assert len(set(trained.tolist())) == 18
    assert method.epoch_diagnostics()["pseudo_aligned_fraction"] == pytest.approx(0.5)


def test_each_bias_model_is_kept_at_its_best_holdout_accuracy(toy_context, monkeypatch) -> None:
    scripted = iter([0.5, 0.9, 0.7, 0.9])  # checks after steps 0, 3, 6, 9 (selection_every 3)
    snapshots = []

    def fake_accuracy(model, ctx, index):
        snapshots.append(model.weight.detach().clone())
        return next(scripted)

    monkeypatch.setattr(lff_be, "holdout_accuracy", fake_accuracy)
    torch.manual_seed(0)
    ctx = stage_a_context(toy_context, lr=0.5)  # the model moves every step
    method = LfFBE(LfFBEHparams(biased_model_train_iter=10, selection_every=3), ctx)
    generator = torch.Generator().manual_seed(0)
    pool, holdout = split_holdout(ctx.num_train, 0.1, generator)
    model, accuracy = method.train_bias_model(batch_stream(pool, 4, generator), holdout)
    assert len(snapshots) == 4 and accuracy == 0.9
    assert not torch.equal(snapshots[1], snapshots[3])  # training went on after the best check
    torch.testing.assert_close(model.weight.detach(), snapshots[1])  # strictly better only: the first 0.9


def test_without_a_holdout_the_last_state_is_kept(toy_context, monkeypatch) -> None:
    monkeypatch.setattr(lff_be, "holdout_accuracy", lambda *a: pytest.fail("no held-out part to evaluate"))
    torch.manual_seed(0)
    ctx = stage_a_context(toy_context, lr=0.5)
    method = LfFBE(LfFBEHparams(biased_model_train_iter=4, holdout_fraction=0.0, num_bias_models=1, agreement=1), ctx)
    method.prepare()
    assert "bias_model_holdout_accuracy" not in method.epoch_diagnostics()


def test_split_and_batches() -> None:
    pool, held = split_holdout(50, 0.1, torch.Generator().manual_seed(1))
    assert len(held) == 5 and sorted(torch.cat([pool, held]).tolist()) == list(range(50))
    stream = batch_stream(torch.arange(10), 4, torch.Generator().manual_seed(0))
    first_round = [next(stream) for _ in range(2)]  # 10 // 4 = 2 full batches, the remainder dropped
    assert all(len(b) == 4 for b in first_round) and len(set(torch.cat(first_round).tolist())) == 8


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert LfFBE.supervision is Supervision.NONE
    ctx = dataclasses.replace(
        toy_context(XA, YA, biases=poisoned_bias, num_bias=2), model_factory=identity_linear, batch_size=4
    )
    torch.manual_seed(0)
    method = LfFBE(LfFBEHparams(biased_model_train_iter=3), ctx)
    method.prepare()
    method.epoch_indices(0, torch.Generator())
    method.train_step(Batch(index=torch.arange(4), x=XA[:4], y=YA[:4], bias=poisoned_bias))
    method.epoch_diagnostics()


def test_mask_survives_a_checkpoint_and_is_required(toy_context, saved_and_loaded) -> None:
    torch.manual_seed(0)
    ctx = stage_a_context(toy_context)
    method = LfFBE(LfFBEHparams(biased_model_train_iter=2), ctx)
    method.prepare()
    restored = LfFBE(LfFBEHparams(biased_model_train_iter=2), ctx)
    with pytest.raises(RuntimeError, match="prepare"):
        restored.epoch_indices(0, torch.Generator())  # no mask yet: refuse, never train f_B on nothing
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert torch.equal(restored.pseudo_aligned, MASK_A) and bool(restored.identified)
    torch.testing.assert_close(restored.bias_model_accuracy, method.bias_model_accuracy)


def test_lr_option_reaches_every_network(toy_context) -> None:
    seen = []

    def factory(params, **kwargs):
        seen.append(kwargs)
        return torch.optim.SGD(params, lr=kwargs.get("lr", 0.0))

    ctx = dataclasses.replace(stage_a_context(toy_context), optimizer_factory=factory)
    torch.manual_seed(0)
    method = LfFBE(LfFBEHparams(lr=0.01, biased_model_train_iter=1, num_bias_models=2, agreement=1), ctx)
    assert all(opt.param_groups[0]["lr"] == 0.01 for opt in method.optimizers.values())
    seen.clear()
    method.prepare()
    assert seen == [{"lr": 0.01}, {"lr": 0.01}]  # both stage-A models
    seen.clear()
    LfFBE(LfFBEHparams(), ctx)
    assert seen == [{}, {}]  # the protocol's rate when unset


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("lff_be") is LfFBE
    h = resolve_hparams(LfFBE, "cmnist")
    assert (h.num_bias_models, h.biased_model_train_iter, h.softmax_threshold, h.agreement) == (5, 1000, 0.99, 3)
    assert (h.biased_loss, h.q, h.ema_alpha, h.selection_every, h.holdout_fraction) == ("ce", 0.7, 0.7, 500, 0.1)
    assert h.lr is None
    drawn = resolve_hparams(LfFBE, "cmnist", hparams_seed=4)
    assert drawn.agreement in (2, 3, 4) and drawn.softmax_threshold in (0.9, 0.95, 0.99)
    for bad in ({"agreement": 6}, {"softmax_threshold": 1.0}, {"holdout_fraction": 1.0}, {"selection_every": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LfFBEHparams(**bad)
