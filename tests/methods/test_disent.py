"""DisEnt (methods/disent.py): one step on a 4-sample toy batch computed by hand, before and after
the swap warm-up, with a known permutation; the gradient reaches each encoder only through its own
head; the warm-up and the optional step-LR follow the official step rule; the wrapper is built
from the registered models; bias labels are never read.

The toy network. Inputs x = (x0, x1); the intrinsic encoder is set to z_i = x0, the bias encoder to
z_b = x1 (each a Linear(2, 1) without bias, so d = 1 and the heads are Linear(2, 2) on [z_i, z_b]).
  C_i logits = [ln3 * z_i, ln3 * z_b]        C_b logits = [ln2 * z_i, ln3 * z_b]      (heads' bias 0)
  samples: x = (1,0) y 0 | (0,1) y 1 | (1,1) y 0 | (0,0) y 1
Two classes, so p_1 = sigmoid(l_1 - l_0):
  C_i: s1 [ln3, 0] p_y = 3/4 | s2 [0, ln3] p_y = 3/4 | s3 [ln3, ln3] 1/2 | s4 [0, 0] 1/2
  C_b: s1 [ln2, 0] p_y = 2/3 | s2 [0, ln3] p_y = 3/4 | s3 [ln2, ln3] p_0 = 2/5 | s4 1/2
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.disent import DisEnt, DisentangledBranch, DisEntHparams, swapped_rate
from debiasbench.models import build_model

LN2, LN3 = math.log(2), math.log(3)
Q = 0.7
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
Y = torch.tensor([0, 1, 0, 1])
PERM = torch.tensor([1, 2, 3, 0])  # the injected swap permutation


class Probe(nn.Module):
    """A registered-model stand-in: features = Linear(2, 1) without bias; its own classifier is unused."""

    def __init__(self) -> None:
        super().__init__()
        self.v = nn.Linear(2, 1, bias=False)
        self.classifier = nn.Linear(1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.v(x)


def make_method(toy_context, **hparams) -> DisEnt:
    ctx = dataclasses.replace(toy_context(X, Y, lr=1.0), model_factory=Probe)
    method = DisEnt(DisEntHparams(**hparams), ctx)
    with torch.no_grad():
        method.intrinsic_branch.encoder.v.weight.copy_(torch.tensor([[1.0, 0.0]]))
        method.bias_branch.encoder.v.weight.copy_(torch.tensor([[0.0, 1.0]]))
        method.intrinsic_branch.head.weight.copy_(torch.tensor([[LN3, 0.0], [0.0, LN3]]))
        method.bias_branch.head.weight.copy_(torch.tensor([[LN2, 0.0], [0.0, LN3]]))
        method.intrinsic_branch.head.bias.zero_()
        method.bias_branch.head.bias.zero_()
    method.swap_permutation = lambda n: PERM
    return method


def gce(p: float) -> float:
    """GCE as coded (CE * q * p^q) of a sample whose true-class probability is p."""
    return -math.log(p) * Q * p**Q


# -- the hand computation -----------------------------------------------------------------
CE_I = [math.log(4 / 3), math.log(4 / 3), LN2, LN2]
P_B = [2 / 3, 3 / 4, 2 / 5, 1 / 2]  # C_b's p_y
CE_B = [-math.log(p) for p in P_B]  # ln(3/2), ln(4/3), ln(5/2), ln2
# First visit: the EMAs are the losses. Class maxima: class 0 = {s1, s3}, class 1 = {s2, s4}:
#   e_b max: class 0 ln(5/2), class 1 ln2;  e_i max: class 0 ln2, class 1 ln2.
E_B = [math.log(1.5) / math.log(2.5), math.log(4 / 3) / LN2, 1.0, 1.0]
E_I = [math.log(4 / 3) / LN2, math.log(4 / 3) / LN2, 1.0, 1.0]
W = [b / (b + i + 1e-8) for b, i in zip(E_B, E_I)]  # s1 0.5160; s2, s3, s4 1/2
L_DIS = sum(w * ce for w, ce in zip(W, CE_I)) / 4 + 10 * sum(gce(p) for p in P_B) / 4
# Swap with pi = [1, 2, 3, 0]: z_b~ = z_b[pi] = [1, 1, 0, 0], y~ = y[pi] = [1, 0, 1, 0].
#   C_i([z_i, z_b~]) with y:  s1 [ln3, ln3] 1/2 | s2 [0, ln3] y1 3/4 | s3 [ln3, 0] y0 3/4 | s4 [0, 0] 1/2
CE_SWAP_I = [LN2, math.log(4 / 3), math.log(4 / 3), LN2]
#   C_b([z_i, z_b~]) with y~: s1 [ln2, ln3] p_1 3/5 | s2 [0, ln3] p_0 1/4 | s3 [ln2, 0] p_1 1/3 | s4 1/2
P_SWAP_B = [3 / 5, 1 / 4, 1 / 3, 1 / 2]
L_SWAP = sum(w * ce for w, ce in zip(W, CE_SWAP_I)) / 4 + 10 * sum(gce(p) for p in P_SWAP_B) / 4


def batch() -> Batch:
    return Batch(index=torch.arange(4), x=X, y=Y)


def test_relative_difficulty_and_loss_before_the_warm_up_ends(toy_context) -> None:
    method = make_method(toy_context, curr_step=0)  # step index 0 is not > 0: no swap
    out = method.train_step(batch())
    torch.testing.assert_close(method.ema_debiased, torch.tensor(CE_I))
    torch.testing.assert_close(method.ema_biased, torch.tensor(CE_B))
    torch.testing.assert_close(method.relative_difficulty(torch.arange(4), Y), torch.tensor(W))
    assert out.loss.item() == pytest.approx(L_DIS, rel=1e-6)
    torch.testing.assert_close(out.per_sample_loss["intrinsic"], torch.tensor(CE_I))
    torch.testing.assert_close(out.per_sample_loss["bias"], torch.tensor(CE_B))
    assert int(method.step) == 1 and int(method.swap_steps) == 0


def test_loss_after_the_warm_up_adds_the_swap_term(toy_context) -> None:
    method = make_method(toy_context, curr_step=0, lambda_swap=0.5)
    method.step.fill_(1)  # step index 1 > curr_step 0: swap
    out = method.train_step(batch())
    assert out.loss.item() == pytest.approx(L_DIS + 0.5 * L_SWAP, rel=1e-6)
    assert int(method.swap_steps) == 1
    # The permuted labels matter: with y instead of y~, C_b's swapped p_y would be 2/5, 3/4, 2/3, 1/2.
    wrong = L_DIS + 0.5 * (
        L_SWAP - 10 * sum(gce(p) for p in P_SWAP_B) / 4 + 10 * sum(map(gce, [0.4, 0.75, 2 / 3, 0.5])) / 4
    )
    assert out.loss.item() != pytest.approx(wrong, rel=1e-4)


def test_one_step_updates_each_encoder_through_its_own_head_only(toy_context) -> None:
    """SGD lr 1: every parameter moves by minus its gradient, computed here by hand (no swap)."""
    method = make_method(toy_context, curr_step=0)
    method.train_step(batch())
    c = [Q * p**Q for p in P_B]  # GCE's gradient scale q * p_y^q on (p - e_y)
    # C_b's bias: (10 / 4) * sum c_n (p_n - e_y); with two classes component 1 = -component 0, and
    # p_0 - [y = 0] = -1/3 (s1), 1/4 (s2), -3/5 (s3), 1/2 (s4).
    g0 = 10 / 4 * (c[0] * (-1 / 3) + c[1] * (1 / 4) + c[2] * (-3 / 5) + c[3] * (1 / 2))
    torch.testing.assert_close(method.bias_branch.head.bias.detach(), torch.tensor([-g0, g0]))
    # E_i (z_i = v_i . x) gets only W * CE_i's gradient: dCE/dz_i = ln3 * (p_0 - [y = 0]) under C_i
    # = ln3 * (-1/4, 1/4, -1/2, 1/2); times x = (1,0), (0,1), (1,1), (0,0); averaged over 4.
    grad_vi = torch.tensor([(-W[0] * LN3 / 4 - W[2] * LN3 / 2) / 4, (W[1] * LN3 / 4 - W[2] * LN3 / 2) / 4])
    torch.testing.assert_close(method.intrinsic_branch.encoder.v.weight.detach()[0], torch.tensor([1.0, 0.0]) - grad_vi)
    # E_b (z_b = v_b . x) gets only 10 * GCE's gradient: c_n * ln3 * (p_1 - [y = 1]) under C_b
    # = c_n * ln3 * (1/3, -1/4, 3/5, -1/2); times x; times 10 / 4.
    grad_vb = 10 / 4 * LN3 * torch.tensor([c[0] / 3 + c[2] * 3 / 5, -c[1] / 4 + c[2] * 3 / 5])
    torch.testing.assert_close(method.bias_branch.encoder.v.weight.detach()[0], torch.tensor([0.0, 1.0]) - grad_vb)
    # The encoders' own classifiers are not trained.
    for branch in (method.intrinsic_branch, method.bias_branch):
        trained = {
            id(p)
            for group in method.optimizers["intrinsic" if branch is method.intrinsic_branch else "bias"].param_groups
            for p in group["params"]
        }
        assert not any(id(p) in trained for p in branch.encoder.classifier.parameters())


def test_swap_step_keeps_each_head_gradient_on_its_own_encoder(toy_context) -> None:
    """After the warm-up: the bias branch moves only through the lambda-weighted GCE terms, and the
    intrinsic branch's update does not depend on them (z_i and z_b~ are detached where they must be)."""
    moved = {}
    for lam in (0.0, 10.0):
        method = make_method(toy_context, curr_step=0, lambda_dis_align=lam, lambda_swap_align=lam)
        method.step.fill_(1)
        method.train_step(batch())
        moved[lam] = method
    silent = moved[0.0]
    torch.testing.assert_close(silent.bias_branch.encoder.v.weight.detach(), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(silent.bias_branch.head.weight.detach(), torch.tensor([[LN2, 0.0], [0.0, LN3]]))
    for name in ("encoder.v.weight", "head.weight", "head.bias"):  # the trained parameters
        torch.testing.assert_close(
            moved[0.0].intrinsic_branch.get_parameter(name), moved[10.0].intrinsic_branch.get_parameter(name)
        )
    assert not torch.equal(moved[10.0].bias_branch.encoder.v.weight, silent.bias_branch.encoder.v.weight)


def test_swap_starts_after_curr_step_steps_as_the_official_rule(toy_context) -> None:
    method = make_method(toy_context, curr_step=2)
    calls = []
    method.swap_permutation = lambda n: calls.append(int(method.step)) or PERM
    for _ in range(5):
        method.train_step(batch())
    assert calls == [3, 4]  # `step > curr_step` on the 0-based step index
    assert method.epoch_diagnostics() == {"steps": 5.0, "swap_steps": 2.0}


def test_optional_step_lr_follows_the_official_step_lr(toy_context) -> None:
    # Official: StepLR(decay 2, gamma 0.5) stepped after every update with t >= curr_step = 1,
    # so before update t it has been stepped max(0, t - 1) times: rates 1, 1, 1, .5, .5, .25.
    method = make_method(toy_context, curr_step=1, lr_decay_step=2, lr_gamma=0.5)
    rates = []
    for _ in range(6):
        method.train_step(batch())
        rates.append([opt.param_groups[0]["lr"] for opt in method.optimizers.values()])
    assert rates == [[r, r] for r in (1.0, 1.0, 1.0, 0.5, 0.5, 0.25)]
    assert swapped_rate(0.01, 23_499, 10_000, 10_000, 0.5) == pytest.approx(0.005)
    assert swapped_rate(0.01, 23_499, 10_000, None, 0.5) == 0.01  # off by default


def test_lr_option_is_passed_to_the_optimiser_factory_only_when_set(toy_context) -> None:
    seen = []

    def factory(params, **kwargs):
        seen.append(kwargs)
        return torch.optim.SGD(params, lr=kwargs.get("lr", 0.123))

    ctx = dataclasses.replace(toy_context(X, Y), model_factory=Probe, optimizer_factory=factory)
    DisEnt(DisEntHparams(), ctx)
    DisEnt(DisEntHparams(lr=0.01), ctx)
    assert seen == [{}, {}, {"lr": 0.01}, {"lr": 0.01}]


def test_evaluation_reads_both_encoders_through_each_head(toy_context) -> None:
    method = make_method(toy_context)
    # s3 = (1, 1): z = [1, 1]; C_i -> [ln3, ln3], C_b -> [ln2, ln3].
    torch.testing.assert_close(method.logits(X[2:3], "intrinsic"), torch.tensor([[LN3, LN3]]))
    torch.testing.assert_close(method.logits(X[2:3], "bias"), torch.tensor([[LN2, LN3]]))
    assert DisEnt.predictor_role == "intrinsic" and DisEnt.roles == ("intrinsic", "bias")


@pytest.mark.parametrize(
    ("model", "kwargs", "shape", "width"), [("mlp", {}, (3, 28, 28), 100), ("resnet20", {}, (3, 32, 32), 64)]
)
def test_branches_wrap_the_registered_models(model, kwargs, shape, width) -> None:
    torch.manual_seed(0)
    encoder = build_model(model, 10, **kwargs)
    branch = DisentangledBranch(encoder, 10)
    assert branch.width == width and branch.head.in_features == 2 * width and branch.head.out_features == 10
    x = torch.randn(2, *shape)
    encoder.eval()
    torch.testing.assert_close(branch.features(x), encoder.features(x))


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert DisEnt.supervision is Supervision.NONE
    ctx = dataclasses.replace(toy_context(X, Y, biases=poisoned_bias, num_bias=2), model_factory=Probe)
    method = DisEnt(DisEntHparams(curr_step=0), ctx)
    for _ in range(2):  # before and after the warm-up
        method.train_step(Batch(index=torch.arange(4), x=X, y=Y, bias=poisoned_bias))
    method.epoch_diagnostics()


def test_step_counter_survives_a_checkpoint(toy_context, saved_and_loaded) -> None:
    method = make_method(toy_context, curr_step=1)
    for _ in range(3):
        method.train_step(batch())
    restored = make_method(toy_context, curr_step=1)
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert int(restored.step) == 3 and int(restored.swap_steps) == 1
    torch.testing.assert_close(restored.ema_biased, method.ema_biased)


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("disent") is DisEnt
    defaults = resolve_hparams(DisEnt, "cmnist")
    assert (defaults.lambda_dis_align, defaults.lambda_swap_align, defaults.lambda_swap) == (10.0, 10.0, 1.0)
    assert (defaults.curr_step, defaults.q, defaults.ema_alpha) == (10_000, 0.7, 0.7)
    assert defaults.lr is None and defaults.lr_decay_step is None  # the protocol's rate, no decay
    drawn = resolve_hparams(DisEnt, "cmnist", hparams_seed=2)
    assert drawn.lambda_swap in (0.1, 0.5, 1.0) and drawn.curr_step in (0, 2_000, 5_000, 10_000)
    for bad in ({"curr_step": -1}, {"q": 0.0}, {"lr": 0.0}, {"lr_decay_step": 0}, {"lambda_swap": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DisEntHparams(**bad)
