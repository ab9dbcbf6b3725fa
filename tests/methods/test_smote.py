"""SMOTE in feature space: rare groups are the small (target, bias) groups of a class, every
synthetic point lies on the segment from a rare member's embedding to one of its k nearest
neighbours of the same group and carries that group's class, the synthetic points train the head
only through their own loss term, and the "frozen" mode trains only the head after its first stage."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, Supervision
from debiasbench.methods.smote import SMOTE, SMOTEHparams, interpolate, nearest_neighbours, rare_groups


class IdentityFeatures(nn.Module):
    """features(x) = x, so embeddings are the inputs themselves and can be written by hand."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Identity()
        self.classifier = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


# Class 0: group (0, bias 0) has 8 members (the majority), (0, 1) has 3; class 1: (1, 1) has 6,
# (1, 0) has 1 member (too small to interpolate).
TARGETS = torch.tensor([0] * 11 + [1] * 7)
BIASES = torch.tensor([0] * 8 + [1] * 3 + [1] * 6 + [0])
N = len(TARGETS)
INPUTS = torch.tensor(
    [[float(i), 0.0] for i in range(8)]  # majority of class 0
    + [[10.0, 0.0], [11.0, 0.0], [13.0, 2.0]]  # rare group (0, 1): indices 8, 9, 10
    + [[0.0, float(i)] for i in range(6)]
    + [[5.0, 5.0]]
)


def _method(toy_context, **hparams) -> SMOTE:
    ctx = toy_context(INPUTS, TARGETS, biases=BIASES, num_bias=2, model=lambda: IdentityFeatures(2, 2))
    method = SMOTE(SMOTEHparams(**hparams), ctx)
    method.refresh_embeddings()
    return method


def test_rare_groups_are_small_against_their_class_and_have_a_neighbour():
    members = [torch.arange(8), torch.arange(8, 11), torch.arange(11, 17), torch.tensor([17])]
    # 3 < 0.5 * 8: rare; the 1-member group is smaller still but has no neighbour.
    assert rare_groups(members, [0, 0, 1, 1], rare_below=0.5) == [1]
    assert rare_groups(members, [0, 0, 1, 1], rare_below=0.35) == []  # 3 is not < 2.8


def test_nearest_neighbours_by_hand():
    points = torch.tensor([[10.0, 0.0], [11.0, 0.0], [13.0, 2.0]])
    # distances: 0-1: 1, 0-2: sqrt(13), 1-2: sqrt(8)
    assert nearest_neighbours(points, 1).tolist() == [[1], [0], [1]]
    assert nearest_neighbours(points, 5).tolist() == [[1, 2], [0, 2], [1, 0]]  # capped at n - 1


def test_interpolate_is_chawlas_segment_point():
    a, n = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]])
    assert interpolate(a, n, torch.tensor([0.25])).tolist() == [[1.5, 1.0]]


def test_every_synthetic_point_lies_on_a_segment_to_a_same_group_neighbour(toy_context):
    torch.manual_seed(0)
    method = _method(toy_context, k_neighbours=1)
    points, labels = method.synthetic_points(200)
    assert (labels == 0).all()  # the only rare group is (0, 1)
    rare = INPUTS[8:11]
    # With k = 1 the neighbour pairs are 8->9, 9->8, 10->9 (by hand above).
    segments = [(rare[0], rare[1]), (rare[1], rare[0]), (rare[2], rare[1])]
    for p in points:
        on_one = False
        for a, n in segments:
            t = torch.dot(p - a, n - a) / torch.dot(n - a, n - a)
            if 0 <= t <= 1 and torch.allclose(a + t * (n - a), p, atol=1e-5):
                on_one = True
        assert on_one, f"{p.tolist()} lies on no rare-member-to-neighbour segment"
    # Points fall on more than one segment and strictly inside them (lambda ~ U(0, 1)).
    assert len({round(float(p[1]), 4) for p in points}) > 10


def test_the_synthetic_loss_adds_to_the_batch_loss_and_reaches_the_head_only(toy_context):
    method = _method(toy_context, synthetic_fraction=1.0, synthetic_weight=2.0)
    index = torch.arange(N)
    batch = Batch(index=index, x=INPUTS, y=TARGETS)
    head = method.net.classifier
    w0, b0 = head.weight.detach().clone(), head.bias.detach().clone()
    torch.manual_seed(7)
    output = method.train_step(batch)
    # The same draws, recomputed by hand: N synthetic points (fraction 1.0 of B = N).
    torch.manual_seed(7)
    points, labels = method.synthetic_points(N)
    real = F.cross_entropy(F.linear(INPUTS, w0, b0), TARGETS)
    synthetic = F.cross_entropy(F.linear(points, w0, b0), labels)
    assert output.loss.item() == pytest.approx((real + 2.0 * synthetic).item(), rel=1e-5)
    # SGD with lr 1: the head moved by exactly minus the gradient of that total.
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    total = F.cross_entropy(F.linear(INPUTS, w, b), TARGETS) + 2.0 * F.cross_entropy(F.linear(points, w, b), labels)
    total.backward()
    torch.testing.assert_close(head.weight.detach(), w0 - w.grad)
    torch.testing.assert_close(head.bias.detach(), b0 - b.grad)


def test_own_embeddings_follow_the_network_after_each_epoch(toy_context):
    ctx = toy_context(INPUTS, TARGETS, biases=BIASES, num_bias=2)  # TinyNet: features change with training
    method = SMOTE(SMOTEHparams(), ctx)
    method.prepare()
    before = method.embedding.clone()
    method.train_step(Batch(index=torch.arange(N), x=INPUTS, y=TARGETS))
    method.end_epoch(0)
    expected = method.net.features(INPUTS[8:11]).detach()
    torch.testing.assert_close(method.embedding, expected)
    assert not torch.equal(before, method.embedding)


def test_frozen_mode_trains_only_the_head_after_its_first_stage(toy_context, saved_and_loaded):
    ctx = toy_context(INPUTS, TARGETS, biases=BIASES, num_bias=2, lr=0.1)
    method = SMOTE(SMOTEHparams(embeddings="frozen", stage1_epochs=2), ctx)
    initial = {n: p.detach().clone() for n, p in method.net.named_parameters()}
    method.prepare()
    after_stage1 = {n: p.detach().clone() for n, p in method.net.named_parameters()}
    assert any(not torch.equal(initial[n], after_stage1[n]) for n in initial if not n.startswith("classifier"))
    frozen_embedding = method.embedding.clone()
    method.train_step(Batch(index=torch.arange(N), x=INPUTS, y=TARGETS))
    method.end_epoch(0)
    for name, parameter in method.net.named_parameters():
        moved = not torch.equal(parameter.detach(), after_stage1[name])
        assert moved == name.startswith("classifier."), name
    torch.testing.assert_close(method.embedding, frozen_embedding)  # computed once
    # A resumed run (no `prepare`) keeps the features frozen.
    resumed = SMOTE(SMOTEHparams(embeddings="frozen", stage1_epochs=2), ctx)
    resumed.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert [n for n, p in resumed.net.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]


def test_registered_with_bias_labels_and_validated():
    assert METHODS.get("smote") is SMOTE
    assert SMOTE.supervision is Supervision.BIAS_LABELS
    assert set(SMOTE.search_space) <= set(SMOTEHparams.__dataclass_fields__)
    with pytest.raises(ValueError, match="embeddings"):
        SMOTEHparams(embeddings="pretrained")
    with pytest.raises(ValueError, match="k_neighbours"):
        SMOTEHparams(k_neighbours=0)


@pytest.mark.parametrize("hparams", [{}, {"embeddings": "frozen", "stage1_epochs": 1}])
def test_one_epoch_through_the_real_trainer(train_toy_epoch, hparams):
    output = train_toy_epoch("smote", hparams)
    rare = [r[5] for r in output.rows if r[4] == "rare_groups"]
    assert rare and rare[0] > 0  # the toy data's conflicting groups are rare
