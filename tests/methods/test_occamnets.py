"""OccamNets: each sample leaves at its earliest confident exit, the CAM suppression, gate and
weighted-CE losses follow the official rules on hand-computed toy inputs, and the exits wrap both
an MLP and a convolutional registered network."""

import math

import pytest
import torch

from debiasbench.methods.base import METHODS, Batch, Supervision
from debiasbench.methods.occamnets import (
    OccamNets,
    OccamNetsHparams,
    balanced_gate_loss,
    cam_suppression,
    early_exit,
)
from debiasbench.models import build_model


def test_each_sample_leaves_at_the_first_confident_exit_from_the_earliest_one():
    gates = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.6],  # exit 0 (not used at inference by default)
            [0.4, 0.7, 0.3, 0.5],  # exit 1
            [0.2, 0.1, 0.1, 0.9],  # exit 2 (the last takes the rest)
        ]
    )
    assert early_exit(gates, earliest=1).tolist() == [2, 1, 2, 1]  # 0.5 counts as confident
    assert early_exit(gates, earliest=0).tolist() == [0, 1, 2, 0]
    assert early_exit(gates, earliest=2).tolist() == [2, 2, 2, 2]


def test_cam_suppression_by_hand():
    # One sample, true class 0, two locations. Class-0 CAM = (1, 3), mean 2: location 0 is
    # suppressed, location 1 is not. At location 0 the logits are (1, 0):
    # KL(U || p) = 0.5 (log 0.5 - log p0) + 0.5 (log 0.5 - log p1), log p0 = 1 - log(1 + e),
    # log p1 = -log(1 + e); the loss is its mean over the 2 locations.
    cam = torch.tensor([[[[1.0, 3.0]], [[0.0, 5.0]]]])  # (B=1, C=2, H=1, W=2)
    lse = math.log(1 + math.e)
    kl = 0.5 * (math.log(0.5) - (1 - lse)) + 0.5 * (math.log(0.5) + lse)
    assert cam_suppression(cam, torch.tensor([0])).item() == pytest.approx(kl / 2, rel=1e-5)


def test_the_gate_loss_balances_exit_and_continue_samples():
    # Targets: 1 exit, 3 continue. Normalised counts 1/3 and 1: weights sqrt(3) and 1.
    logit = torch.zeros(4)  # BCE of sigmoid(0) = 0.5 against either target is log 2
    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    expected = (math.sqrt(3) * math.log(2) + 3 * math.log(2)) / 4
    assert balanced_gate_loss(logit, target, 0.5).item() == pytest.approx(expected, rel=1e-4)


def _toy(toy_context, hparams=None, model=None, inputs=None):
    torch.manual_seed(0)
    x = inputs if inputs is not None else torch.randn(8, 12)
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    factory = model or (lambda: build_model("mlp", 2, in_features=12, hidden=8))
    return OccamNets(OccamNetsHparams(**(hparams or {})), toy_context(x, y, model=factory)), x, y


def test_exits_wrap_every_hidden_layer_of_the_mlp_and_exit_0_is_detached(toy_context):
    method, x, y = _toy(toy_context)
    assert len(method.net.exits) == 3  # the MLP's three hidden layers
    outputs = method.net(x)
    # Exit 0's loss reaches only exit 0: the trunk's first layer gets no gradient from it.
    outputs[0][0].sum().backward()
    assert method.net.trunk.feature_extractor[1].weight.grad is None
    assert all(p.grad is None for p in method.net.trunk.classifier.parameters())
    assert not {id(p) for p in method.net.trunk.classifier.parameters()} & {
        id(p) for g in method.optimizers["main"].param_groups for p in g["params"]
    }


def test_exit_0_weights_its_ce_by_p_true_cubed_over_the_running_max(toy_context):
    method, x, y = _toy(toy_context)
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    ce = torch.tensor([1.0, 1.0])
    weighted = method._weighted_ce(0, ce, logits, torch.tensor([0, 0]), None)
    p = torch.softmax(logits, 1)[:, 0] ** 3
    torch.testing.assert_close(weighted, p / (p.max() + 1e-5) + 0.1)
    # Exit 1 on the previous gate: (1 - g)^1 over the running max (which starts at 0 each epoch).
    weighted = method._weighted_ce(1, ce, logits, torch.tensor([0, 0]), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(weighted, torch.tensor([0.75, 0.25]) / (0.75 + 1e-5) + 0.1)


def test_gate_targets_follow_correctness_until_the_exit_is_accurate_then_stay(toy_context):
    method, x, y = _toy(toy_context, {"min_epochs": 0})
    index = torch.tensor([0, 1])
    right = torch.tensor([[5.0, 0.0], [0.0, 5.0]])  # both predicted right
    wrong = torch.tensor([[0.0, 5.0], [5.0, 0.0]])
    y2 = torch.tensor([0, 1])
    # Exit 0, threshold 0.5. The class-mean accuracy includes the current batch:
    # wrong: 0 <= 0.5, record (0, 0); right: 1/2 <= 0.5, record (1, 1); right: 2/3 > 0.5, keep
    # (1, 1) although recomputing would also give 1 -- so then wrong: 2/4 <= 0.5, record (0, 0).
    assert method._gate_targets(0, index, wrong, y2).tolist() == [0.0, 0.0]
    assert method._gate_targets(0, index, right, y2).tolist() == [1.0, 1.0]
    assert method._gate_targets(0, index, right, y2).tolist() == [1.0, 1.0]
    assert method._gate_targets(0, index, wrong, y2).tolist() == [0.0, 0.0]
    # A new epoch resets the accuracy: right first (1 > 0.5), so the stored (0, 0) is kept even
    # though the exit is right now.
    method.end_epoch(0)
    assert method._gate_targets(0, index, right, y2).tolist() == [0.0, 0.0]
    # Exit 1's threshold is 0.6: a 1/2 accuracy still records.
    assert method._gate_targets(1, index, wrong, y2).tolist() == [0.0, 0.0]
    assert method._gate_targets(1, index, right, y2).tolist() == [1.0, 1.0]


def test_predictions_come_from_each_samples_early_exit(toy_context):
    method, x, y = _toy(toy_context)
    method.eval()
    with torch.no_grad():
        outputs = method.net(x)
        gates = torch.stack([torch.sigmoid(g) for _, _, g in outputs])
        chosen = early_exit(gates, 1)
        got = method.logits(x, "main")
    for i, k in enumerate(chosen.tolist()):
        torch.testing.assert_close(got[i], outputs[k][0][i])


def test_a_convolutional_network_gets_cam_exits_and_trains(toy_context):
    inputs = torch.rand(8, 3, 8, 8)
    factory = lambda: build_model("simple_convnet", 2, widths=(4, 8), kernel_sizes=(3, 3))  # noqa: E731
    method, x, y = _toy(toy_context, model=factory, inputs=inputs)
    assert len(method.net.exits) == 2
    logits, cam, gate = method.net(x)[1]
    assert cam.shape == (8, 2, 8, 8) and logits.shape == (8, 2) and gate.shape == (8,)
    before = [p.detach().clone() for p in method.net.trunk.parameters()]
    output = method.train_step(Batch(index=torch.arange(8), x=x, y=y))
    assert torch.isfinite(output.loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, method.net.trunk.parameters()))


def test_registered_without_bias_labels():
    assert METHODS.get("occamnets") is OccamNets
    assert OccamNets.supervision is Supervision.NONE
    with pytest.raises(ValueError, match="non-negative"):
        OccamNetsHparams(gamma0=-1)


def test_one_epoch_through_the_real_trainer(train_toy_epoch):
    output = train_toy_epoch("occamnets")
    shares = [r[5] for r in output.rows if r[4].startswith("exit_") and r[4].endswith("_share")]
    assert len(shares) == 3 and sum(shares) == pytest.approx(1.0) and shares[0] == 0.0
