"""Group resampling (methods/group_resample.py): exact per-group counts of an epoch in both modes,
how evenly oversampled members repeat, seeding by the trainer's generator, and the contract."""

from __future__ import annotations

import collections

import pytest
import torch

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.group_resample import GroupResample, GroupResampleHparams, balanced_indices, group_members

NUM_BIAS = 2
# Groups g = 2y + b with 5, 2, 0 and 3 training samples: indices 0-4, 5-6, (none), 7-9.
COUNTS = (5, 2, 0, 3)


def table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(COUNTS)])
    return groups // NUM_BIAS, groups % NUM_BIAS, torch.randn(len(groups), 3)


def build(toy_context, mode: str) -> tuple[GroupResample, torch.Tensor]:
    targets, biases, inputs = table()
    method = GroupResample(GroupResampleHparams(mode=mode), toy_context(inputs, targets, biases, NUM_BIAS))
    return method, targets * NUM_BIAS + biases


def test_oversample_draws_every_populated_group_up_to_the_largest(toy_context) -> None:
    method, groups = build(toy_context, "oversample")
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    assert len(order) == 3 * 5
    assert torch.bincount(groups[order], minlength=4).tolist() == [5, 5, 0, 5]
    visits = collections.Counter(order.tolist())
    assert [visits[i] for i in range(5)] == [1] * 5  # the largest group: every sample once
    # Group 1 (2 samples, 5 draws): 2 whole passes plus one extra, so counts {3, 2}.
    assert sorted(visits[i] for i in (5, 6)) == [2, 3]
    # Group 3 (3 samples, 5 draws): 1 whole pass plus 2 distinct extras, so counts {2, 2, 1}.
    assert sorted(visits[i] for i in (7, 8, 9)) == [1, 2, 2]


def test_undersample_draws_every_populated_group_down_to_the_smallest(toy_context) -> None:
    method, groups = build(toy_context, "undersample")
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    assert len(order) == 3 * 2
    assert torch.bincount(groups[order], minlength=4).tolist() == [2, 2, 0, 2]
    assert len(set(order.tolist())) == 6  # without replacement: no sample twice
    assert {5, 6} <= set(order.tolist())  # the smallest group is kept whole


def test_draws_follow_the_hooks_generator(toy_context) -> None:
    method, _ = build(toy_context, "undersample")
    first = method.epoch_indices(0, torch.Generator().manual_seed(7))
    assert torch.equal(first, method.epoch_indices(0, torch.Generator().manual_seed(7)))
    generator = torch.Generator().manual_seed(7)
    epochs = [method.epoch_indices(e, generator) for e in range(6)]
    # A fresh subset (and order) per epoch as the trainer's generator advances.
    assert len({tuple(sorted(e.tolist())) for e in epochs}) > 1
    assert len({tuple(e.tolist()) for e in epochs}) == 6


def test_order_is_shuffled_across_groups() -> None:
    members = group_members(torch.tensor([0] * 50 + [1] * 50))
    order = balanced_indices(members, "oversample", torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(100))
    assert order[:50].tolist() != list(range(50))  # not group by group


def test_train_step_is_plain_cross_entropy(toy_context) -> None:
    torch.manual_seed(0)
    method, _ = build(toy_context, "oversample")
    targets, biases, inputs = table()
    replica = type(method.net)(3, 2)
    replica.load_state_dict(method.net.state_dict())
    torch.nn.functional.cross_entropy(replica(inputs), targets).backward()
    before = [p.detach().clone() for p in method.net.parameters()]
    method.train_step(Batch(index=torch.arange(10), x=inputs, y=targets, bias=biases))
    for old, new, ref in zip(before, method.net.parameters(), replica.parameters()):
        torch.testing.assert_close(new.detach(), old - ref.grad)


def test_needs_bias_labels(toy_context, registry_without_bias_labels, trial_api) -> None:
    assert GroupResample.supervision is Supervision.BIAS_LABELS
    targets, _, inputs = table()
    with pytest.raises(ValueError, match="bias label"):
        GroupResample(GroupResampleHparams(), toy_context(inputs, targets))
    with pytest.raises(trial_api.InvalidTrialError, match="needs bias labels"):
        trial_api.resolve_trial(trial_api.TrialConfig(dataset="no_bias_labels", method="group_resample"))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("group_resample") is GroupResample
    assert resolve_hparams(GroupResample, "cmnist").mode == "oversample"
    assert {resolve_hparams(GroupResample, "cmnist", hparams_seed=k).mode for k in range(1, 12)} == {
        "oversample",
        "undersample",
    }
    with pytest.raises(ValueError, match="mode"):
        GroupResampleHparams(mode="balanced")


@pytest.mark.parametrize("mode", ["oversample", "undersample"])
def test_trains_one_epoch_through_the_trainer(train_toy_epoch, mode) -> None:
    assert train_toy_epoch("group_resample", {"mode": mode}).trial.supervision == "bias-labels"
