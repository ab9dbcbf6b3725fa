"""methods/base.py's shuffled_rounds: the sampler that stretches a small pool to a full-length
epoch (JTT, REPAIR). The shared cross-entropy step is specified through its callers' tests
(test_vanilla checks one step against a hand-computed SGD update)."""

import torch

from debiasbench.methods.base import shuffled_rounds


def test_shuffled_rounds_visit_every_member_once_per_round_then_cut_at_n():
    pool = torch.tensor([10, 20, 30])
    order = shuffled_rounds(pool, 7, torch.Generator().manual_seed(0))

    assert order.shape == (7,)
    assert sorted(order[:3].tolist()) == [10, 20, 30]  # round 1: a permutation of the pool
    assert sorted(order[3:6].tolist()) == [10, 20, 30]  # round 2
    assert order[6].item() in {10, 20, 30}  # the cut third round


def test_shuffled_rounds_are_reproducible_from_the_generator():
    pool = torch.arange(5) * 2
    first = shuffled_rounds(pool, 12, torch.Generator().manual_seed(3))
    again = shuffled_rounds(pool, 12, torch.Generator().manual_seed(3))
    other = shuffled_rounds(pool, 12, torch.Generator().manual_seed(4))

    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_pool_as_long_as_the_epoch_is_one_shuffle():
    pool = torch.arange(6)
    order = shuffled_rounds(pool, 6, torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(6))
