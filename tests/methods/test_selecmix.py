"""SelecMix against hand computations: which partner every sample gets in positive and negative
mode (the official masks and the strict rule), the mixing (lambda in [0, 0.5], the partner's label),
the generalised SupCon loss on 3 and 4 embeddings, and one whole step of each base (loss, every
parameter update of the classifiers and of the auxiliary encoder, LfF's EMA and W)."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.selecmix import (
    ProjectionEncoder,
    SelecMix,
    SelecMixHparams,
    SelecMixLfF,
    SelecMixLfFHparams,
    draw_lambda,
    generalized_supcon,
    mix_pairs,
    select_partners,
)

# -- pair selection -------------------------------------------------------------------------

# Five samples, labels 0 0 0 1 1; a symmetric similarity matrix with unit diagonal.
SIM5 = torch.tensor(
    [
        [1.0, 0.9, 0.2, 0.5, -0.3],
        [0.9, 1.0, 0.4, -0.1, 0.8],
        [0.2, 0.4, 1.0, 0.6, 0.1],
        [0.5, -0.1, 0.6, 1.0, 0.7],
        [-0.3, 0.8, 0.1, 0.7, 1.0],
    ]
)
LABELS5 = torch.tensor([0, 0, 0, 1, 1])


@pytest.mark.parametrize("masking", ["official", "strict"])
def test_contradicting_positives_are_the_least_similar_sample_of_the_same_label(masking):
    # 0: same label {1: 0.9, 2: 0.2} -> 2;  1: {0: 0.9, 2: 0.4} -> 2;  2: {0: 0.2, 1: 0.4} -> 0;
    # 3: {4: 0.7} -> 4;  4: {3: 0.7} -> 3 (the official mask also holds i itself, at S_ii = 1).
    partners = select_partners(SIM5, LABELS5, positive=True, masking=masking)
    assert partners.tolist() == [2, 2, 0, 4, 3]


@pytest.mark.parametrize("masking", ["official", "strict"])
def test_contradicting_negatives_are_the_most_similar_sample_of_another_label(masking):
    # 0: other label {3: 0.5, 4: -0.3} -> 3;  1: {3: -0.1, 4: 0.8} -> 4;  2: {3: 0.6, 4: 0.1} -> 3;
    # 3: {0: 0.5, 1: -0.1, 2: 0.6} -> 2;  4: {0: -0.3, 1: 0.8, 2: 0.1} -> 1.
    partners = select_partners(SIM5, LABELS5, positive=False, masking=masking)
    assert partners.tolist() == [3, 4, 3, 2, 1]


def test_official_negatives_fall_back_to_the_first_same_label_sample_when_all_others_are_negative():
    # Labels 0 1 0 1. Rows 2 and 3 have only negative similarities to the other label, so util.py's
    # sim * (1 - M) has its maximum 0 at the first same-label entry: 2 -> 0, 3 -> 1. The strict rule
    # takes the most similar other-label sample: 2 -> 3 (-0.1 > -0.4), 3 -> 2 (-0.1 > -0.2).
    sim = torch.tensor(
        [
            [1.0, 0.3, 0.5, -0.2],
            [0.3, 1.0, -0.4, 0.6],
            [0.5, -0.4, 1.0, -0.1],
            [-0.2, 0.6, -0.1, 1.0],
        ]
    )
    labels = torch.tensor([0, 1, 0, 1])
    assert select_partners(sim, labels, positive=False, masking="official").tolist() == [1, 0, 0, 1]
    assert select_partners(sim, labels, positive=False, masking="strict").tolist() == [1, 0, 3, 2]


def test_a_sample_alone_in_its_class():
    # Sample 2 is the only one of label 1. Official positives: its row of S*M + (1 - M) is all ones
    # (S_22 = 1), so argmin takes the first, sample 0; strict: no candidate, it is its own partner.
    sim = torch.tensor([[1.0, 0.3, 0.2], [0.3, 1.0, 0.9], [0.2, 0.9, 1.0]])
    labels = torch.tensor([0, 0, 1])
    assert select_partners(sim, labels, positive=True, masking="official").tolist() == [1, 0, 0]
    assert select_partners(sim, labels, positive=True, masking="strict").tolist() == [1, 0, 2]
    # A batch of one label has no negatives: strict keeps every sample as its own partner.
    assert select_partners(sim, torch.zeros(3, dtype=torch.long), positive=False, masking="strict").tolist() == [
        0,
        1,
        2,
    ]


# -- mixing ---------------------------------------------------------------------------------


def test_mixing_weights_the_partner_by_one_minus_lambda_and_takes_its_label():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([0, 1, 2])
    mixed, labels = mix_pairs(x, y, torch.tensor([2, 0, 1]), torch.tensor([0.0, 0.25, 0.5]))
    # 0: all partner, (5, 6);  1: 0.25 (3, 4) + 0.75 (1, 2) = (1.5, 2.5);  2: 0.5 (5, 6) + 0.5 (3, 4) = (4, 5).
    torch.testing.assert_close(mixed, torch.tensor([[5.0, 6.0], [1.5, 2.5], [4.0, 5.0]]))
    assert labels.tolist() == [2, 0, 1]


def test_mixing_broadcasts_lambda_over_image_dimensions():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    mixed, _ = mix_pairs(x, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(mixed[0], 0.5 * x[0] + 0.5 * x[1])
    torch.testing.assert_close(mixed[1], x[0])


def test_lambda_is_half_a_beta_draw_so_the_partner_dominates():
    torch.manual_seed(0)
    lam = draw_lambda(200_000, 1.0)
    assert 0.0 <= lam.min() and lam.max() <= 0.5
    # 0.5 * U(0, 1): mean 0.25, half the draws below 0.25.
    assert lam.mean().item() == pytest.approx(0.25, abs=2e-3)
    assert (lam < 0.25).float().mean().item() == pytest.approx(0.5, abs=5e-3)
    concentrated = draw_lambda(200_000, 8.0)  # Beta(8, 8) piles up at 1/2, so lambda at 1/4
    assert concentrated.max() <= 0.5 and concentrated.std() < lam.std() / 2


# -- generalised SupCon ---------------------------------------------------------------------

Q = 0.7


def test_generalised_supcon_on_three_embeddings_by_hand():
    # z = (1, 0), (0, 1), (-1, 0); labels 0 0 1; tau = 0.5, so s_ij / tau = 0 (0-1), -2 (0-2), 0 (1-2).
    # Row 0: p_01 = 1 / (1 + e^-2); row 1: p_10 = e^0 / (e^0 + e^0) = 1/2; row 2 has no positive (0).
    # Each log-prob is weighted by q p^q; the loss is minus the mean over the three rows.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    p01 = 1.0 / (1.0 + math.exp(-2.0))
    hand = -(Q * p01**Q * math.log(p01) + Q * 0.5**Q * math.log(0.5) + 0.0) / 3
    assert hand == pytest.approx(0.126658, abs=1e-6)
    assert generalized_supcon(z, labels, 0.5, Q).item() == pytest.approx(hand, rel=1e-6)
    # Without the weights: plain SupCon, -(log p_01 + log 1/2) / 3.
    plain = -(math.log(p01) + math.log(0.5)) / 3
    assert plain == pytest.approx(0.273358, abs=1e-6)
    assert generalized_supcon(z, labels, 0.5, Q, generalized=False).item() == pytest.approx(plain, rel=1e-6)


def test_generalised_supcon_on_four_embeddings_value_and_gradient():
    # Unit vectors at 0, 53.13, 90 and 126.87 degrees; labels 0 0 1 1; tau = 0.2. Written out term
    # by term: log p_ij = s_ij - log sum_{k != i} exp(s_ik), weight q sg(p_ij)^q, positives j != i.
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]], requires_grad=True)
    labels = [0, 0, 1, 1]
    tau = 0.2
    rows = []
    for i in range(4):
        s = [(z[i] * z[k]).sum() / tau for k in range(4)]
        log_norm = torch.log(sum(torch.exp(s[k]) for k in range(4) if k != i))
        terms = []
        for j in range(4):
            if j != i and labels[j] == labels[i]:
                log_p = s[j] - log_norm
                terms.append(Q * torch.exp(log_p).detach() ** Q * log_p)
        rows.append(-sum(terms) / len(terms))
    hand = sum(rows) / 4
    hand.backward()
    hand_grad = z.grad.clone()
    z.grad = None
    loss = generalized_supcon(z, torch.tensor(labels), tau, Q)
    assert loss.item() == pytest.approx(hand.item(), rel=1e-6)
    loss.backward()
    torch.testing.assert_close(z.grad, hand_grad)
    # And a number for the record: the cosine of 0 and 1 is 0.6, of 2 and 3 0.8.
    assert loss.item() == pytest.approx(hand.item())


# -- the method -----------------------------------------------------------------------------

X6 = torch.tensor(
    [
        [0.5, -1.0, 2.0],
        [1.5, 0.0, -0.5],
        [-1.0, 1.0, 0.5],
        [0.0, 2.0, -1.0],
        [2.0, 0.5, 1.0],
        [-0.5, -1.5, 0.0],
    ]
)
Y6 = torch.tensor([0, 0, 0, 1, 1, 1])
# Labels 0 0 0 1 1 1. Negatives (different label, argmax): 0 -> 4 (0.7), 1 -> 3 (0.6), 2 -> 5 (0.9),
# 3 -> 1 (0.6), 4 -> 0 (0.7), 5 -> 2 (0.9). Positives (same label, argmin): 0 -> 2, 1 -> 2, 2 -> 0,
# 3 -> 5, 4 -> 5, 5 -> 3.
SIM6 = torch.tensor(
    [
        [1.0, 0.8, 0.1, 0.5, 0.7, 0.2],
        [0.8, 1.0, 0.4, 0.6, 0.3, -0.2],
        [0.1, 0.4, 1.0, 0.3, -0.1, 0.9],
        [0.5, 0.6, 0.3, 1.0, 0.4, 0.2],
        [0.7, 0.3, -0.1, 0.4, 1.0, 0.3],
        [0.2, -0.2, 0.9, 0.2, 0.3, 1.0],
    ]
)
PARTNERS = {True: [2, 2, 0, 5, 5, 3], False: [4, 3, 5, 1, 0, 2]}
LAM6 = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
LR, PROJ_LR = 0.5, 0.3


def make_method(toy_context, cls=SelecMix, biases=None, **hparams):
    """A method on the 6-sample toy batch with plain SGD (no momentum), so every step moves each
    parameter by exactly -lr * grad; the factory takes `lr=` as the trainer's does."""
    torch.manual_seed(0)
    ctx = toy_context(X6, Y6, biases=biases, num_bias=2 if biases is not None else None)
    ctx = dataclasses.replace(
        ctx, optimizer_factory=lambda params, lr=None: torch.optim.SGD(params, lr=LR if lr is None else lr)
    )
    defaults = {"proj_lr": PROJ_LR, "proj_weight_decay": 0.0}
    return cls(cls.Hparams(**{**defaults, **hparams}), ctx)


def fix_pairs(method, positive: bool) -> None:
    """Pin the batch's coin, its similarity matrix and its lambdas to the hand values above."""
    method.draw_positive = lambda: positive
    method.similarities = lambda x: SIM6
    method.draw_lambda = lambda n: LAM6


def hand_mixed(positive: bool):
    p = PARTNERS[positive]
    lam = LAM6[:, None]
    return lam * X6 + (1 - lam) * X6[p], Y6[p]


def assert_sgd_step(module_after, module_before, lr):
    for (name, after), (_, before) in zip(module_after.named_parameters(), module_before.named_parameters()):
        grad = before.grad if before.grad is not None else torch.zeros_like(before)
        torch.testing.assert_close(after.detach(), before.detach() - lr * grad, msg=name)


def expected_encoder_step(method):
    """A copy of the encoder after one SGD step on GSC(g(x), y), tau 0.2, q 0.7, lr proj_lr."""
    encoder = copy.deepcopy(method.encoder)
    generalized_supcon(encoder(X6), Y6, 0.2, 0.7).backward()
    return encoder


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("a, b", [(1.0, 0.0), (0.7, 0.3)])
def test_vanilla_base_step(toy_context, positive, a, b):
    method = make_method(toy_context, a=a, b=b)
    fix_pairs(method, positive)
    net = copy.deepcopy(method.net)
    encoder = expected_encoder_step(method)
    x_mix, y_mix = hand_mixed(positive)
    ce_real = F.cross_entropy(net(X6), Y6, reduction="none")
    loss = a * F.cross_entropy(net(x_mix), y_mix) + b * ce_real.mean()
    loss.backward()

    output = method.train_step(Batch(index=torch.arange(6), x=X6, y=Y6))
    assert output.loss.item() == pytest.approx(loss.item(), rel=1e-6)
    torch.testing.assert_close(output.per_sample_loss["main"], ce_real.detach())
    assert_sgd_step(method.net, net, LR)
    assert_sgd_step(method.encoder, encoder, PROJ_LR)


def test_vanilla_default_trains_on_the_mixed_samples_only(toy_context):
    method = make_method(toy_context)
    assert (method.hparams.a, method.hparams.b) == (1.0, 0.0)  # configs/v_ours.cfg
    fix_pairs(method, positive=False)
    net = copy.deepcopy(method.net)
    x_mix, y_mix = hand_mixed(False)
    F.cross_entropy(net(x_mix), y_mix).backward()
    method.train_step(Batch(index=torch.arange(6), x=X6, y=Y6))
    assert_sgd_step(method.net, net, LR)


@pytest.mark.parametrize("cls, role", [(SelecMix, "main"), (SelecMixLfF, "debiased")])
@pytest.mark.parametrize("positive", [True, False])
def test_lff_base_step(toy_context, cls, role, positive):
    method = make_method(toy_context, cls, base="lff")
    assert (method.hparams.a, method.hparams.b) == (0.1, 1.0)  # configs/l_ours.cfg
    fix_pairs(method, positive)
    f_b, f_d = copy.deepcopy(method.lff.biased), copy.deepcopy(method.lff.debiased)
    encoder = expected_encoder_step(method)
    x_mix, y_mix = hand_mixed(positive)
    logits_b = f_b(X6)
    ce_b = F.cross_entropy(logits_b, Y6, reduction="none")
    ce_d = F.cross_entropy(f_d(X6), Y6, reduction="none")
    # First visit: each EMA is the loss itself. Every training sample is in the batch, so the
    # class-wise max is over the batch's own class members.
    max_b = torch.stack([ce_b.detach()[Y6 == c].max() for c in (0, 1)])[Y6]
    max_d = torch.stack([ce_d.detach()[Y6 == c].max() for c in (0, 1)])[Y6]
    weight = (ce_b.detach() / max_b) / (ce_b.detach() / max_b + ce_d.detach() / max_d + 1e-8)
    p_y = torch.softmax(logits_b, 1)[torch.arange(6), Y6].detach()
    gce = ce_b * 0.7 * p_y**0.7
    loss = 1.0 * (weight * ce_d).mean() + gce.mean() + 0.1 * F.cross_entropy(f_d(x_mix), y_mix)
    loss.backward()

    output = method.train_step(Batch(index=torch.arange(6), x=X6, y=Y6))
    assert output.loss.item() == pytest.approx(loss.item(), rel=1e-6)
    torch.testing.assert_close(method.lff.ema_biased, ce_b.detach())
    torch.testing.assert_close(method.lff.ema_debiased, ce_d.detach())
    torch.testing.assert_close(method.lff.relative_difficulty(torch.arange(6), Y6), weight)
    assert_sgd_step(method.lff.biased, f_b, LR)  # GCE on the real batch only
    assert_sgd_step(method.lff.debiased, f_d, LR)
    assert_sgd_step(method.encoder, encoder, PROJ_LR)
    torch.testing.assert_close(output.per_sample_loss[role], ce_d.detach())
    if cls is SelecMixLfF:
        torch.testing.assert_close(output.per_sample_loss["biased"], ce_b.detach())
        torch.testing.assert_close(method.logits(X6, "biased"), method.lff.biased(X6))
    torch.testing.assert_close(method.logits(X6, role), method.lff.debiased(X6))


def test_pairs_come_from_the_encoders_cosine_similarities(toy_context):
    method = make_method(toy_context)
    z = F.normalize(method.encoder.head(method.encoder.backbone.features(X6)), dim=1)
    sim = method.similarities(X6)
    torch.testing.assert_close(sim, z @ z.T)
    torch.testing.assert_close(sim.diagonal(), torch.ones(6))
    method.draw_positive = lambda: False
    method.draw_lambda = lambda n: LAM6
    x_mix, y_mix = method.mixed_batch(Batch(index=torch.arange(6), x=X6, y=Y6))
    partner = select_partners(sim, Y6, positive=False)
    torch.testing.assert_close(x_mix, LAM6[:, None] * X6 + (1 - LAM6[:, None]) * X6[partner])
    assert y_mix.tolist() == Y6[partner].tolist()


@pytest.mark.parametrize("encoder_inputs", ["unit", "model"])
def test_the_encoder_reads_pixel_intensities_by_default(toy_context, encoder_inputs):
    # unit_inputs maps model inputs back to pixels; here an affine stand-in, u = 2x + 1.
    method = make_method(toy_context, encoder_inputs=encoder_inputs)
    method.ctx = dataclasses.replace(method.ctx, unit_inputs=lambda x: 2 * x + 1)
    seen = 2 * X6 + 1 if encoder_inputs == "unit" else X6
    torch.testing.assert_close(method.similarities(X6), method.encoder.similarities(seen))
    encoder = copy.deepcopy(method.encoder)
    generalized_supcon(encoder(seen), Y6, 0.2, 0.7).backward()
    fix_pairs(method, positive=True)
    method.train_step(Batch(index=torch.arange(6), x=X6, y=Y6))
    assert_sgd_step(method.encoder, encoder, PROJ_LR)


def test_the_encoder_is_the_registered_network_with_a_projection_head_and_its_own_optimiser(toy_context):
    method = make_method(toy_context, proj_weight_decay=1e-4, proj_dim=5)
    encoder = method.encoder
    assert isinstance(encoder, ProjectionEncoder)
    assert type(encoder.backbone).__name__ == "TinyNet"  # what ctx.model_factory builds
    assert isinstance(encoder.backbone.classifier, nn.Identity)  # dropped: no dead parameters
    assert [m.out_features for m in encoder.head if hasattr(m, "out_features")] == [6, 5]
    z = encoder(X6)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))
    optimiser = method.optimizers["encoder"]
    assert {id(p) for g in optimiser.param_groups for p in g["params"]} == {id(p) for p in encoder.parameters()}
    assert [(g["lr"], g["weight_decay"]) for g in optimiser.param_groups] == [(PROJ_LR, 1e-4)]
    assert method.optimizers["main"].param_groups[0]["lr"] == LR


@pytest.mark.parametrize("prob, low, high", [(0.5, 0.47, 0.53), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)])
def test_the_coin_follows_positive_prob(toy_context, prob, low, high):
    method = make_method(toy_context, positive_prob=prob)
    torch.manual_seed(0)
    share = sum(method.draw_positive() for _ in range(4000)) / 4000
    assert low <= share <= high


def test_diagnostics_count_positive_steps_and_negative_fallbacks(toy_context):
    method = make_method(toy_context)
    method.draw_lambda = lambda n: LAM6
    batch = Batch(index=torch.arange(6), x=X6, y=Y6)
    for positive in (True, False, False):
        method.draw_positive = lambda positive=positive: positive
        # Rows 0 and 3 see only negative similarities to the other label: the official negatives
        # fall back to the first same-label sample there (0 -> 0, 3 -> 3).
        sim = SIM6.clone()
        sim[0, 3:] = -0.5
        sim[3, :3] = -0.5
        method.similarities = lambda x, sim=sim: sim
        method.train_step(batch)
    diagnostics = method.epoch_diagnostics()
    assert diagnostics["positive_batch_share"] == pytest.approx(1 / 3)
    assert diagnostics["negative_same_label_share"] == pytest.approx(2 / 6)  # rows 0 and 3, twice
    assert diagnostics["encoder_loss"] > 0
    assert method.epoch_diagnostics()["positive_batch_share"] == 0  # reset every epoch


@pytest.mark.parametrize("cls", [SelecMix, SelecMixLfF])
def test_never_reads_bias_labels(toy_context, poisoned_bias, cls):
    method = make_method(toy_context, cls, biases=poisoned_bias)
    method.train_step(Batch(index=torch.arange(6), x=X6, y=Y6, bias=poisoned_bias))
    method.epoch_diagnostics()


def test_registered_with_official_defaults_and_validated():
    assert METHODS.get("selecmix") is SelecMix and METHODS.get("selecmix_lff") is SelecMixLfF
    assert SelecMix.supervision is Supervision.NONE and SelecMixLfF.supervision is Supervision.NONE
    assert (SelecMix.roles, SelecMix.predictor_role) == (("main",), "main")
    assert (SelecMixLfF.roles, SelecMixLfF.predictor_role) == (("debiased", "biased"), "debiased")
    vanilla = resolve_hparams(SelecMix, "cmnist")
    assert (vanilla.base, vanilla.a, vanilla.b) == ("vanilla", 1.0, 0.0)
    on_lff = resolve_hparams(SelecMix, "cmnist", overrides={"base": "lff"})
    assert (on_lff.a, on_lff.b) == (0.1, 1.0)
    lff = resolve_hparams(SelecMixLfF, "cmnist")
    assert (lff.base, lff.a, lff.b) == ("lff", 0.1, 1.0)
    for hp in (vanilla, lff):
        assert (hp.proj_lr, hp.proj_weight_decay, hp.temperature, hp.gsc, hp.gsc_q) == (0.01, 1e-4, 0.2, True, 0.7)
        assert (hp.positive_prob, hp.mix_alpha, hp.proj_dim, hp.q, hp.ema_alpha) == (0.5, 1.0, 128, 0.7, 0.7)
        assert (hp.pair_masking, hp.encoder_inputs) == ("official", "unit")
    assert resolve_hparams(SelecMix, "cmnist", overrides={"a": 0.5}).a == 0.5
    with pytest.raises(ValueError, match="base"):
        SelecMixHparams(base="jtt")
    with pytest.raises(ValueError, match="selecmix"):
        SelecMixLfFHparams(base="vanilla")
    with pytest.raises(ValueError, match="encoder_inputs"):
        SelecMixHparams(encoder_inputs="raw")
    with pytest.raises(ValueError, match="pair_masking"):
        SelecMixHparams(pair_masking="loose")
    with pytest.raises(ValueError, match="untrained"):
        SelecMixHparams(a=0.0)
    with pytest.raises(ValueError, match="ema_alpha"):
        SelecMixHparams(ema_alpha=1.0)
    drawn = resolve_hparams(SelecMixLfF, "cmnist", hparams_seed=1)
    assert drawn.base == "lff" and drawn.a in (0.05, 0.1, 0.5, 1.0)


@pytest.mark.parametrize("name", ["selecmix", "selecmix_lff"])
def test_one_epoch_through_the_real_trainer(train_toy_epoch, name):
    output = train_toy_epoch(name)
    diagnostics = {r[4]: r[5] for r in output.rows if r[3] == "method"}
    assert set(diagnostics) == {"positive_batch_share", "negative_same_label_share", "encoder_loss"}
    assert 0 <= diagnostics["positive_batch_share"] <= 1
    assert math.isfinite(diagnostics["encoder_loss"])
    roles = {r[1] for r in output.rows if r[2] == "test"}
    assert roles == set(output.trial.roles)


@pytest.mark.parametrize("hparams", [{"base": "lff"}, {"pair_masking": "strict"}, {"positive_prob": 1.0, "gsc": False}])
def test_variants_train_and_resume_exactly(toy_env, trial_api, tmp_path, hparams):
    """The contract test's resume check for the variants it does not run (it runs the defaults)."""

    class Preempted(Exception):
        pass

    def rows(output):
        keep = ("epoch", "role", "split", "subset", "metric", "value")
        return [r for r in zip(*(output.metrics[c] for c in keep)) if r[4] != "seconds"]

    def preempt_after_epoch_1(summary):
        if summary["epoch"] == 1:
            raise Preempted

    trial = trial_api.resolve_trial(trial_api.TrialConfig("toy_image", "selecmix", method_hparams=hparams, epochs=2))
    uninterrupted = rows(trial_api.train_trial(trial, toy_env))
    checkpoints = dataclasses.replace(toy_env, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(Preempted):
        trial_api.train_trial(trial, checkpoints, on_epoch=preempt_after_epoch_1)
    resumed = trial_api.train_trial(trial, checkpoints)
    assert resumed.resumed_from_epoch == 1 and rows(resumed) == uninterrupted
