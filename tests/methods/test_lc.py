"""LC (methods/lc.py): the class-by-pseudo-bias matrix update and its column normalisation on toy
batches computed by hand (and against the official per-sample loop), GroupMixUp's eligible partners and
lambda's range, the corrected loss on given logits and corrections by hand, f_B's 0.1x learning rate,
and one whole step against a replica computed from the formulas."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods import lc as lc_module
from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision, resolve_hparams
from debiasbench.methods.lc import (
    LC,
    LCHparams,
    column_normalised,
    group_partners,
    logit_corrected_ce,
    mixup_lambda,
    sigmoid_rampup,
    update_bias_matrix,
)


def official_loop(matrix, visited, values, y, a, alpha):
    """EMA_squre.update with avg_type "mv", one sample at a time (shengliu66/LC util.py)."""
    matrix, visited = matrix.clone(), visited.clone()
    for i in range(len(y)):
        matrix[y[i], a[i]] = alpha * matrix[y[i], a[i]] + (1 - alpha * visited[y[i], a[i]]) * values[i]
        visited[y[i], a[i]] = 1
    return matrix, visited


# -- the matrix and the correction ------------------------------------------------------------------
def test_matrix_update_by_hand() -> None:
    matrix, visited = torch.zeros(2, 2), torch.zeros(2, 2)
    # Batch 1, alpha 0.5: cell (0, 0) sees 0.8, 0.6, 0.4 in that order; cell (1, 0) sees 0.3.
    # (0, 0): first visit stores 0.8; then 0.5*0.8 + 0.5*0.6 = 0.7; then 0.5*0.7 + 0.5*0.4 = 0.55.
    # (1, 0): first visit stores 0.3. Cells (0, 1), (1, 1) untouched.
    y, a = torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 0, 0])
    update_bias_matrix(matrix, visited, torch.tensor([0.8, 0.6, 0.3, 0.4]), y, a, 0.5)
    torch.testing.assert_close(matrix, torch.tensor([[0.55, 0.0], [0.3, 0.0]]))
    torch.testing.assert_close(visited, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    # Batch 2: (0, 0) sees 1.0 (visited: 0.5*0.55 + 0.5*1.0 = 0.775); (1, 1) sees 0.9 (first: 0.9).
    update_bias_matrix(matrix, visited, torch.tensor([1.0, 0.9]), torch.tensor([0, 1]), torch.tensor([0, 1]), 0.5)
    torch.testing.assert_close(matrix, torch.tensor([[0.775, 0.0], [0.3, 0.9]]))


def test_matrix_update_equals_the_official_per_sample_loop() -> None:
    torch.manual_seed(0)
    matrix, visited = torch.zeros(4, 4), torch.zeros(4, 4)
    ref_matrix, ref_visited = matrix.clone(), visited.clone()
    for _ in range(5):
        y, a, v = torch.randint(4, (64,)), torch.randint(4, (64,)), torch.rand(64)
        update_bias_matrix(matrix, visited, v, y, a, 0.995)
        ref_matrix, ref_visited = official_loop(ref_matrix, ref_visited, v, y, a, 0.995)
        torch.testing.assert_close(matrix, ref_matrix)
        assert torch.equal(visited, ref_visited)


def test_column_normalisation_and_correction_by_hand() -> None:
    # Column 0 sums to 0.85: p_hat(. | 0) = (0.55 / 0.85, 0.3 / 0.85); column 1 is all zero and stays zero.
    normalised = column_normalised(torch.tensor([[0.55, 0.0], [0.3, 0.0]]))
    torch.testing.assert_close(normalised, torch.tensor([[0.55 / 0.85, 0.0], [0.3 / 0.85, 0.0]]))


# -- GroupMixUp ---------------------------------------------------------------------------------------
Y = torch.tensor([0, 0, 0, 1, 1, 2, 2])
A = torch.tensor([0, 1, 1, 1, 1, 2, 0])  # pseudo-minority (a != y): samples 1, 2 (class 0) and 6 (class 2)


def test_partner_is_the_eligible_member_with_the_largest_key() -> None:
    keys = torch.zeros(7, 7)
    keys[0] = torch.tensor([0.9, 0.1, 0.3, 0.99, 0.0, 0.0, 0.0])  # 0 and 3 are not eligible for anchor 0
    keys[1] = torch.tensor([0.0, 0.6, 0.5, 0.0, 0.0, 0.0, 0.0])  # anchor 1 may draw itself
    partner = group_partners(Y, A, keys, torch.rand(7))
    assert partner[0].item() == 2 and partner[1].item() == 1
    assert partner[5].item() == 6 and partner[6].item() == 6  # class 2's only minority member


def test_partners_are_uniform_over_eligible_members_or_a_class_permutation() -> None:
    torch.manual_seed(0)
    drawn = {i: set() for i in range(7)}
    for _ in range(200):
        partner = group_partners(Y, A, torch.rand(7, 7), torch.rand(7))
        for i, j in enumerate(partner.tolist()):
            drawn[i].add(j)
        # Class 1 has no pseudo-minority member: its two members are matched by a permutation.
        assert sorted(partner[3:5].tolist()) == [3, 4]
    assert all(drawn[i] == {1, 2} for i in (0, 1, 2))  # both eligible members occur, nothing else
    assert drawn[3] == drawn[4] == {3, 4} and drawn[5] == drawn[6] == {6}


def test_sigmoid_rampup_and_the_lambda_range(toy_context, monkeypatch) -> None:
    assert sigmoid_rampup(0, 0) == 1.0 and sigmoid_rampup(7, 0) == 1.0
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5.0 * 0.25))
    assert sigmoid_rampup(10, 10) == 1.0 and sigmoid_rampup(30, 10) == 1.0
    assert mixup_lambda(0.5, 0.0) == 0.0 and mixup_lambda(0.5, 0.999) == pytest.approx(0.4995)
    assert mixup_lambda(0.2, 0.5) == pytest.approx(0.7)  # U(0.6, 0.8) at its midpoint
    # The lambdas the method's steps use: alpha 0.5 (curr_step 0) gives lambda in [0, 0.5]; a 100-step
    # ramp at steps 0..9 gives alpha_t = 0.5 exp(-5 (1 - t/100)^2) and lambda in [1 - 2 alpha_t, 1 - alpha_t].
    seen: list[tuple[float, float]] = []
    monkeypatch.setattr(
        lc_module, "mixup_lambda", lambda alpha, u: seen.append((alpha, mixup_lambda(alpha, u))) or seen[-1][1]
    )
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    for curr_step in (0, 100):
        seen.clear()
        method = LC(LCHparams(curr_step=curr_step), lr_context(toy_context, x, y, lr=0.01))
        for _ in range(10):
            method.train_step(Batch(index=torch.arange(6), x=x, y=y))
        for t, (alpha, lam) in enumerate(seen):
            expected_alpha = 0.5 if curr_step == 0 else 0.5 * math.exp(-5 * (1 - t / 100) ** 2)
            assert alpha == pytest.approx(expected_alpha) and 1 - 2 * alpha <= lam <= 1 - alpha
    lambdas = [lam for _, lam in seen]
    assert len(seen) == 10 and max(lambdas) > min(lambdas)  # drawn afresh every step


# -- the corrected loss -------------------------------------------------------------------------------
def test_corrected_loss_by_hand() -> None:
    logits, y = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0])  # float64: no rounding
    # eta 1: corrected logits (1 + ln 0.8001, 0 + ln 0.2001); CE = ln(1 + exp(c1 - c0)).
    gap = -1.0 + math.log(0.2001) - math.log(0.8001)
    value = logit_corrected_ce(logits, y, torch.tensor([[0.8, 0.2]], dtype=torch.float64), 1.0)
    assert value.item() == pytest.approx(math.log(1 + math.exp(gap)), rel=1e-9)
    # eta 2: delta^2 = (0.64, 0.04), so the gap is -1 + ln(0.0401) - ln(0.6401).
    gap2 = -1.0 + math.log(0.0401) - math.log(0.6401)
    value2 = logit_corrected_ce(logits, y, torch.tensor([[0.8, 0.2]], dtype=torch.float64), 2.0)
    assert value2.item() == pytest.approx(math.log(1 + math.exp(gap2)), rel=1e-9)
    # A zero correction for class 1 pushes its logit down by ln(1e-4): CE = ln(1 + e^{-1} 1e-4 / 1.0001).
    value3 = logit_corrected_ce(logits, y, torch.tensor([[1.0, 0.0]], dtype=torch.float64), 1.0)
    assert value3.item() == pytest.approx(math.log(1 + math.exp(-1) * 1e-4 / 1.0001), rel=1e-9)


# -- the method ---------------------------------------------------------------------------------------
def lr_context(toy_context, x, y, lr: float = 1.0) -> MethodContext:
    """The toy context with a factory that takes `lr=` (as the trainer's does): plain SGD."""
    return dataclasses.replace(
        toy_context(x, y),
        optimizer_factory=lambda params, lr=lr: torch.optim.SGD(params, lr=lr),
    )


def test_biased_net_learns_at_a_tenth_of_the_debiased_rate(toy_context) -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    method = LC(LCHparams(), lr_context(toy_context, x, y, lr=0.01))
    assert method.optimizers["debiased"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert method.optimizers["biased"].param_groups[0]["lr"] == pytest.approx(0.001)
    assert set(method.nets) == {"debiased", "biased"}


def test_one_step_equals_the_formulas(toy_context) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    hp = LCHparams(lambda_dis_align=2.0, ema_alpha=0.9, tau=0.5, q=0.7)
    method = LC(hp, lr_context(toy_context, x, y, lr=1.0))  # f_D at lr 1, f_B at lr 0.1
    nets = {role: copy.deepcopy(net) for role, net in method.nets.items()}
    matrix, visited = method.bias_matrix.clone(), method.visited.clone()
    torch.manual_seed(5)
    draws = torch.rand(6 * 6 + 6 + 1)  # what the step will draw from the global generator
    # The formulas.
    logits_b = nets["biased"](x)
    prob = torch.softmax(logits_b.detach() / 0.5, 1)
    a = prob.argmax(1)
    matrix, visited = official_loop(matrix, visited, prob[torch.arange(6), y], y, a, 0.9)
    delta = (matrix / matrix.sum(0, keepdim=True))[:, a].t()
    partner = group_partners(y, a, draws[:36].view(6, 6), draws[36:42])
    lam = 0.5 * draws[42].item()  # alpha 0.5: U(0, 0.5)
    x_mix, delta_mix = lam * x + (1 - lam) * x[partner], lam * delta + (1 - lam) * delta[partner]
    corrected = nets["debiased"](x_mix) + torch.log(delta_mix + 1e-4)
    lc = lam * F.cross_entropy(corrected, y, reduction="none") + (1 - lam) * F.cross_entropy(
        corrected, y[partner], reduction="none"
    )
    p_y = torch.softmax(logits_b, 1)[torch.arange(6), y].detach()
    gce = F.cross_entropy(logits_b, y, reduction="none") * 0.7 * p_y**0.7
    expected_loss = lc.mean() + 2.0 * gce.mean()
    expected_loss.backward()
    clean_ce = F.cross_entropy(nets["debiased"](x), y, reduction="none")

    torch.manual_seed(5)
    output = method.train_step(Batch(index=torch.arange(6), x=x, y=y))
    torch.testing.assert_close(output.loss, expected_loss.detach())
    torch.testing.assert_close(method.bias_matrix, matrix)
    for role, rate in (("debiased", 1.0), ("biased", 0.1)):
        for after, ref in zip(method.nets[role].parameters(), nets[role].parameters()):
            torch.testing.assert_close(after.detach(), ref.detach() - rate * ref.grad)
    torch.testing.assert_close(output.per_sample_loss["debiased"], clean_ce.detach())
    torch.testing.assert_close(
        output.per_sample_loss["biased"], F.cross_entropy(logits_b, y, reduction="none").detach()
    )
    assert int(method.step) == 1 and method._steps == 1


def test_raw_matrix_option_skips_the_normalisation(toy_context) -> None:
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    method = LC(LCHparams(normalise_columns=False), lr_context(toy_context, x, y))
    method.bias_matrix.copy_(torch.tensor([[0.5, 0.1, 0.0], [0.2, 0.3, 0.0], [0.1, 0.0, 0.0]]))
    torch.testing.assert_close(method.correction(), method.bias_matrix)
    normalised = LC(LCHparams(), lr_context(toy_context, x, y))
    normalised.bias_matrix.copy_(method.bias_matrix)
    torch.testing.assert_close(normalised.correction()[:, 0], torch.tensor([0.625, 0.25, 0.125]))  # 0.5, 0.2, 0.1 / 0.8


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert LC.supervision is Supervision.NONE
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.arange(8) % 3
    ctx = dataclasses.replace(lr_context(toy_context, x, y), train_bias=poisoned_bias, num_bias_values=2)
    method = LC(LCHparams(), ctx)
    method.train_step(Batch(index=torch.arange(8), x=x, y=y, bias=poisoned_bias))
    method.epoch_diagnostics()


def test_state_survives_a_checkpoint(toy_context, saved_and_loaded) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.arange(8) % 3
    ctx = lr_context(toy_context, x, y, lr=0.1)
    method = LC(LCHparams(curr_step=10), ctx)
    for _ in range(3):
        method.train_step(Batch(index=torch.arange(8), x=x, y=y))
    restored = LC(LCHparams(curr_step=10), ctx)
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert torch.equal(restored.bias_matrix, method.bias_matrix) and torch.equal(restored.visited, method.visited)
    assert restored._steps == 3 and restored.mixup_alpha() == method.mixup_alpha() == pytest.approx(
        0.5 * math.exp(-5 * 0.7**2)
    )


def test_diagnostics_count_pseudo_minority_samples(toy_context) -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    method = LC(LCHparams(), lr_context(toy_context, x, y))
    # A fixed f_B predicting class 0 everywhere: the two class-1 samples are pseudo-minority.
    with torch.no_grad():
        for parameter in method.biased.parameters():
            parameter.zero_()
        method.biased.classifier.bias.copy_(torch.tensor([5.0, 0.0]))
    method.optimizers["biased"] = torch.optim.SGD(method.biased.parameters(), lr=0.0)
    method.train_step(Batch(index=torch.arange(4), x=x, y=y))
    diagnostics = method.epoch_diagnostics()
    assert diagnostics["pseudo_minority_fraction"] == pytest.approx(0.5) and diagnostics["mixup_alpha"] == 0.5
    # Only column 0 is visited; p_hat(0 | 0) = p_B(0) / (p_B(0) + p_B(1)) with p_B = softmax(5, 0).
    p0 = 1 / (1 + math.exp(-5))
    assert diagnostics["correction_diagonal"] == pytest.approx(p0 / (p0 + (1 - p0)))
    assert method.epoch_diagnostics()["pseudo_minority_fraction"] == 0.0  # reset every epoch


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("lc") is LC
    assert resolve_hparams(LC, "cmnist") == LCHparams(
        q=0.7, lambda_dis_align=1.0, ema_alpha=0.995, tau=1.0, eta=1.0, curr_step=0, biased_lr_ratio=0.1
    )
    drawn = resolve_hparams(LC, "cmnist", hparams_seed=4)
    assert drawn.lambda_dis_align in (0.1, 0.5, 1.0, 2.0, 5.0) and drawn.tau in (0.1, 0.5, 1.0)
    bad_values = (
        {"q": 0.0}, {"lambda_dis_align": -1.0}, {"ema_alpha": 1.0}, {"tau": 0.0}, {"eta": -1.0},
        {"curr_step": -1}, {"biased_lr_ratio": 0.0}, {"avg_type": "epoch"},
    )  # fmt: skip
    for bad in bad_values:
        with pytest.raises(ValueError, match=next(iter(bad))):
            LCHparams(**bad)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("lc", {"curr_step": 5})
    assert output.trial.supervision == "none" and output.trial.predictor_role == "debiased"
    diagnostics = {r[4]: r[5] for r in output.rows if r[3] == "method"}
    assert 0.0 <= diagnostics["pseudo_minority_fraction"] <= 1.0
    assert diagnostics["mixup_alpha"] == 0.5  # 7 steps (400 samples, batch 64) ramp past curr_step 5
    assert any(r[1] == "biased" and r[4] == "loss" for r in output.rows)
