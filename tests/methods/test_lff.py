"""One LfF step computed by hand on a fixed tiny batch, every intermediate compared
(docs/methods.md#lff-and-lff-ce): EMA first-visit rule, class-wise max over all training samples of the class,
W detached, GCE coded as CE * q * p_y^q, weighted CE divided by B, one backward."""

import copy

import pytest
import torch
from torch import nn

from debiasbench.methods.base import Batch, MethodContext, resolve_hparams
from debiasbench.methods.lff import LfF, LfFCE, class_max

N, C, D = 6, 3, 4
TARGETS = torch.tensor([0, 1, 2, 0, 1, 2])


def make_context(lr: float = 1.0) -> MethodContext:
    torch.manual_seed(0)
    return MethodContext(
        dataset="toy",
        num_classes=C,
        num_train=N,
        train_targets=TARGETS,
        device=torch.device("cpu"),
        model_factory=lambda: nn.Linear(D, C),
        # Plain SGD with lr 1 makes each parameter change equal minus its gradient.
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr),
        train_inputs=lambda index: torch.zeros(len(index), D),
        unit_inputs=lambda x: x,
    )


def hand_step(nets, x, y, index, ema, seen, q, alpha, biased_loss):
    """The update written out from the formulas, on copies of the networks."""
    z_b, z_d = nets["biased"](x), nets["debiased"](x)
    ce_b = -torch.log_softmax(z_b, 1)[torch.arange(len(y)), y]
    ce_d = -torch.log_softmax(z_d, 1)[torch.arange(len(y)), y]
    ema = {k: v.clone() for k, v in ema.items()}
    for role, ce in (("biased", ce_b), ("debiased", ce_d)):
        for i, j in enumerate(index.tolist()):
            if seen[j]:
                ema[role][j] = alpha * ema[role][j] + (1 - alpha) * ce[i].detach()
            else:
                ema[role][j] = ce[i].detach()
    seen = seen.clone()
    seen[index] = 1
    normalised = {}
    for role in ema:
        maxima = torch.stack([ema[role][TARGETS == c].max() for c in range(C)])
        normalised[role] = ema[role][index] / maxima[y]
    weight = normalised["biased"] / (normalised["biased"] + normalised["debiased"] + 1e-8)
    p_y = torch.softmax(z_b, 1)[torch.arange(len(y)), y]
    loss_b = ce_b * q * p_y.detach() ** q if biased_loss == "gce" else ce_b
    loss = loss_b.sum() / len(y) + (weight * ce_d).sum() / len(y)
    loss.backward()
    return ema, seen, weight, loss


@pytest.mark.parametrize("method_cls", [LfF, LfFCE])
def test_one_step_matches_hand_computation(method_cls):
    hparams = resolve_hparams(method_cls, "toy")
    method = method_cls(hparams, make_context())
    torch.manual_seed(1)
    x_all = torch.randn(N, D)
    # Step 1 visits samples 0-3 for the first time; step 2 revisits 2-3 and first-visits 4-5.
    for index in (torch.tensor([0, 1, 2, 3]), torch.tensor([2, 3, 4, 5])):
        y = TARGETS[index]
        nets = {role: copy.deepcopy(net) for role, net in method.nets.items()}
        ema_before = {"biased": method.ema_biased.clone(), "debiased": method.ema_debiased.clone()}
        seen_before = method.seen.clone()
        ema, seen, weight, loss = hand_step(
            nets, x_all[index], y, index, ema_before, seen_before, hparams.q, hparams.ema_alpha, hparams.biased_loss
        )
        params_before = {role: [p.detach().clone() for p in net.parameters()] for role, net in method.nets.items()}

        output = method.train_step(Batch(index=index, x=x_all[index], y=y))

        torch.testing.assert_close(method.ema_biased, ema["biased"])
        torch.testing.assert_close(method.ema_debiased, ema["debiased"])
        torch.testing.assert_close(method.seen, seen)
        torch.testing.assert_close(method.relative_difficulty(index, y), weight)
        torch.testing.assert_close(output.loss, loss.detach())
        # SGD(lr=1): new = old - grad, for both networks, from the single backward.
        for role, net in method.nets.items():
            for before, after, hand in zip(params_before[role], net.parameters(), nets[role].parameters()):
                torch.testing.assert_close(after.detach(), before - hand.grad)


def test_ema_first_visit_then_blend():
    method = LfF(resolve_hparams(LfF, "toy"), make_context())
    index = torch.tensor([1])
    method._update_ema(method.ema_biased, index, torch.tensor([2.0]))
    assert method.ema_biased[1] == 2.0  # first visit stores the loss (seen is still 0)
    method.seen[index] = 1
    method._update_ema(method.ema_biased, index, torch.tensor([1.0]))
    assert method.ema_biased[1] == pytest.approx(0.7 * 2.0 + 0.3 * 1.0)


def test_class_max_covers_every_sample_of_the_class():
    values = torch.tensor([0.1, 5.0, 0.3, 0.9, 0.2, 0.0])
    torch.testing.assert_close(class_max(values, TARGETS, C), torch.tensor([0.9, 5.0, 0.3]))


def test_gce_gradient_is_q_times_textbook():
    from debiasbench.methods.losses import generalized_ce

    logits = torch.tensor([[1.0, -0.5, 0.2]], requires_grad=True)
    y = torch.tensor([0])
    generalized_ce(logits, y, q=0.7).sum().backward()
    coded = logits.grad.clone()
    logits.grad = None
    p_y = torch.softmax(logits, 1)[0, 0]
    ((1 - p_y**0.7) / 0.7).backward()
    torch.testing.assert_close(coded, 0.7 * logits.grad)


def test_conflicting_sample_gets_larger_weight():
    """A sample the biased model finds hard (relative to the debiased one) weighs more."""
    method = LfF(resolve_hparams(LfF, "toy"), make_context())
    method.ema_biased[:] = torch.tensor([0.1, 0.1, 0.1, 2.0, 0.1, 0.1])
    method.ema_debiased[:] = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    weight = method.relative_difficulty(torch.tensor([0, 3]), torch.tensor([0, 0]))
    torch.testing.assert_close(weight, torch.tensor([0.05 / 1.05, 1.0 / 2.0]))


def test_lff_ce_is_a_flag_not_a_copy():
    assert LfFCE.train_step is LfF.train_step
    assert resolve_hparams(LfFCE, "toy").biased_loss == "ce"
    with pytest.raises(ValueError, match="biased_loss"):
        resolve_hparams(LfF, "toy", overrides={"biased_loss": "focal"})


def test_per_sample_losses_are_each_networks_own_cross_entropy_before_the_step():
    method = LfF(resolve_hparams(LfF, "toy"), make_context())
    torch.manual_seed(2)
    x = torch.randn(3, D)
    index, y = torch.tensor([0, 1, 2]), TARGETS[:3]
    expected = {role: -torch.log_softmax(net(x), 1)[torch.arange(3), y].detach() for role, net in method.nets.items()}

    output = method.train_step(Batch(index=index, x=x, y=y))

    assert set(output.per_sample_loss) == {"biased", "debiased"}
    for role in ("biased", "debiased"):
        torch.testing.assert_close(output.per_sample_loss[role], expected[role])
    # The two networks start from different weights, so a swapped key would show.
    assert not torch.allclose(expected["biased"], expected["debiased"])


def test_lff_ce_searches_only_what_it_uses():
    """q is GCE's exponent: LfF-CE trains its biased model with CE, so q has no effect there and a
    search over it would spend samples on nothing."""
    assert set(LfF.search_space) == {"q", "ema_alpha"}
    assert set(LfFCE.search_space) == {"ema_alpha"}


@pytest.mark.parametrize("q", [0.0, -0.5, 1.5])
def test_gce_exponent_outside_zero_one_is_refused(q):
    with pytest.raises(ValueError, match=r"GCE q must lie in \(0, 1\]"):
        resolve_hparams(LfF, "toy", overrides={"q": q})


@pytest.mark.parametrize("alpha", [-0.1, 1.0])
def test_ema_decay_outside_zero_one_is_refused(alpha):
    with pytest.raises(ValueError, match=r"ema_alpha must lie in \[0, 1\)"):
        resolve_hparams(LfF, "toy", overrides={"ema_alpha": alpha})


def test_the_interval_ends_that_are_allowed():
    hparams = resolve_hparams(LfF, "toy", overrides={"q": 1.0, "ema_alpha": 0.0})
    assert (hparams.q, hparams.ema_alpha) == (1.0, 0.0)


def test_class_max_of_an_empty_class_is_zero():
    values = torch.tensor([0.4, 0.2])
    torch.testing.assert_close(class_max(values, torch.tensor([0, 0]), 3), torch.tensor([0.4, 0.0, 0.0]))


def test_the_tables_report_the_debiased_network():
    assert LfF.roles == ("debiased", "biased") and LfF.predictor_role == "debiased"
    assert LfFCE.predictor_role == "debiased"
