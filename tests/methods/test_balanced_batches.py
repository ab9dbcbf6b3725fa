"""Batch-level group balancing: every batch holds floor(B/G) samples of each populated group, plus
one more for B mod G groups; small groups repeat (with replacement), large ones cycle through their
members; the epoch has ceil(N/B) full batches; bias labels are required."""

import pytest
import torch

from debiasbench.methods.balanced_batches import BalancedBatches, balanced_batch_indices
from debiasbench.methods.base import METHODS, Supervision
from debiasbench.methods.group_resample import group_members

# Groups by construction: 0 -> indices 0..9 (10 members), 1 -> 10..12 (3), 2 -> 13 (1).
GROUP_OF = torch.tensor([0] * 10 + [1] * 3 + [2])


def _batches(batch_size: int, num_batches: int, seed: int = 0) -> list[torch.Tensor]:
    order = balanced_batch_indices(
        group_members(GROUP_OF), num_batches, batch_size, torch.Generator().manual_seed(seed)
    )
    assert len(order) == num_batches * batch_size
    return list(order.split(batch_size))


def test_each_batch_holds_the_same_number_of_every_group_when_the_batch_divides():
    for batch in _batches(batch_size=6, num_batches=5):
        assert torch.bincount(GROUP_OF[batch], minlength=3).tolist() == [2, 2, 2]


def test_the_remainder_goes_to_distinct_groups_so_counts_differ_by_at_most_one():
    # B = 7, G = 3: 2 each, and one group gets a third sample.
    seen_bonus = set()
    for batch in _batches(batch_size=7, num_batches=30):
        counts = torch.bincount(GROUP_OF[batch], minlength=3).tolist()
        assert sorted(counts) == [2, 2, 3]
        seen_bonus.add(counts.index(3))
    assert seen_bonus == {0, 1, 2}, "the bonus slot is drawn afresh per batch, not fixed to one group"


def test_a_group_smaller_than_its_share_repeats_and_a_large_one_cycles_its_members():
    batches = _batches(batch_size=6, num_batches=5)
    singleton = [int(i) for b in batches for i in b if GROUP_OF[i] == 2]
    assert singleton == [13] * 10  # 2 per batch from a 1-member group: with replacement
    large = [int(i) for b in batches for i in b if GROUP_OF[i] == 0]
    # 10 draws from 10 members: one full round, so every member exactly once (order within a
    # batch is shuffled, so compare as a set).
    assert sorted(large) == list(range(10))


def test_the_order_is_a_function_of_the_generator():
    assert torch.equal(torch.cat(_batches(7, 4, seed=3)), torch.cat(_batches(7, 4, seed=3)))
    assert not torch.equal(torch.cat(_batches(7, 4, seed=3)), torch.cat(_batches(7, 4, seed=4)))


def test_registered_with_bias_label_supervision_and_refuses_data_without_bias_labels(toy_context):
    assert METHODS.get("balanced_batches") is BalancedBatches
    assert BalancedBatches.supervision is Supervision.BIAS_LABELS
    ctx = toy_context(torch.zeros(8, 3), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="bias label"):
        BalancedBatches(BalancedBatches.Hparams(), ctx)


def test_an_epoch_through_the_trainer_has_ceil_n_over_b_balanced_batches(toy_context):
    targets = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    biases = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # groups (0,0)x4 (0,1)x1 (1,1)x4 (1,0)x1
    ctx = toy_context(torch.randn(10, 3), targets, biases=biases, num_bias=2)
    ctx = type(ctx)(**{**ctx.__dict__, "batch_size": 4})
    method = BalancedBatches(BalancedBatches.Hparams(), ctx)
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    assert len(order) == 12  # ceil(10 / 4) = 3 full batches
    for batch in order.split(4):
        assert torch.bincount(targets[batch] * 2 + biases[batch], minlength=4).tolist() == [1, 1, 1, 1]


def test_one_epoch_through_the_real_trainer(train_toy_epoch):
    train_toy_epoch("balanced_batches")
