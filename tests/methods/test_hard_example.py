"""Online hard-example mining (methods/hard_example.py): k = ceil(keep_fraction * B), which samples
are selected by either rule, and that the step's gradient comes from the selected samples only."""

from __future__ import annotations

import collections

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.hard_example import HardExample, HardExampleHparams, kept_count, select_hard


@pytest.mark.parametrize(
    "batch,fraction,k",
    [(6, 0.5, 3), (5, 0.5, 3), (10, 0.3, 3), (7, 0.01, 1), (8, 1.0, 8), (256, 0.125, 32), (3, 0.34, 2)],
)
def test_kept_count_is_the_ceiling(batch, fraction, k) -> None:
    assert kept_count(batch, fraction) == k


def test_topk_selects_the_largest_losses() -> None:
    losses = torch.tensor([0.1, 2.0, 0.5, 3.0, 0.0, 1.0])
    assert sorted(select_hard(losses, 3, "topk").tolist()) == [1, 3, 5]


def test_proportional_draws_follow_the_losses_without_replacement() -> None:
    losses = torch.tensor([1.0, 3.0, 0.0, 6.0])
    generator = torch.Generator().manual_seed(0)
    draws = collections.Counter(int(select_hard(losses, 1, "proportional", generator)) for _ in range(20000))
    assert draws[2] == 0  # zero loss: never chosen while a positive-loss sample is left
    for index, expected in ((0, 0.1), (1, 0.3), (3, 0.6)):
        assert abs(draws[index] / 20000 - expected) < 0.015, draws
    # k above the number of positive losses: all of them, then zero-loss samples; no repeats.
    picked = select_hard(losses, 4, "proportional", generator).tolist()
    assert sorted(picked) == [0, 1, 2, 3] and picked[-1] == 2
    # All losses 0 (a perfectly fitted batch): uniform, still valid.
    assert sorted(select_hard(torch.zeros(5), 5, "proportional", generator).tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("selection", ["topk", "proportional"])
def test_gradient_comes_only_from_the_selected_samples(toy_context, selection) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    method = HardExample(HardExampleHparams(keep_fraction=0.3, selection=selection), toy_context(x, y, lr=1.0))
    replica = type(method.net)(4, 3)
    replica.load_state_dict(method.net.state_dict())
    before = [p.detach().clone() for p in method.net.parameters()]
    with torch.no_grad():
        losses = F.cross_entropy(replica(x), y, reduction="none")
    # The selection the method will make: the same rule from the same global RNG state.
    torch.manual_seed(1)
    expected = select_hard(losses, 3, selection)
    if selection == "topk":
        assert sorted(expected.tolist()) == sorted(torch.argsort(losses, descending=True)[:3].tolist())

    torch.manual_seed(1)
    output = method.train_step(Batch(index=torch.arange(8), x=x, y=y))

    # The replica sees only the selected samples: equal updates mean the others gave no gradient.
    F.cross_entropy(replica(x[expected]), y[expected]).backward()
    for old, new, ref in zip(before, method.net.parameters(), replica.parameters()):
        torch.testing.assert_close(new.detach(), old - ref.grad)
    torch.testing.assert_close(output.loss, losses[expected].mean())
    torch.testing.assert_close(output.per_sample_loss["main"], losses)  # the whole batch is logged


def test_unselected_samples_cannot_change_the_step(toy_context) -> None:
    """Perturbing an easy sample that stays unselected leaves the update bit-for-bit unchanged."""
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    ctx = toy_context(x, y, lr=1.0)
    method = HardExample(HardExampleHparams(keep_fraction=0.5), ctx)
    initial = {k: v.clone() for k, v in method.net.state_dict().items()}
    with torch.no_grad():
        losses = F.cross_entropy(method.net(x), y, reduction="none")
    easiest = int(losses.argmin())
    method.train_step(Batch(index=torch.arange(6), x=x, y=y))
    first = [p.detach().clone() for p in method.net.parameters()]
    method.net.load_state_dict(initial)
    moved = x.clone()
    moved[easiest] += 1e-3  # still the easiest sample
    method.train_step(Batch(index=torch.arange(6), x=moved, y=y))
    for a, b in zip(first, method.net.parameters()):
        assert torch.equal(a, b.detach())


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert HardExample.supervision is Supervision.NONE
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    for selection in ("topk", "proportional"):
        method = HardExample(
            HardExampleHparams(selection=selection), toy_context(x, y, biases=poisoned_bias, num_bias=3)
        )
        method.prepare()
        assert method.epoch_indices(0, torch.Generator()) is None
        method.train_step(Batch(index=torch.arange(6), x=x, y=y, bias=poisoned_bias))
        method.epoch_diagnostics()


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("hard_example") is HardExample
    assert resolve_hparams(HardExample, "cmnist") == HardExampleHparams(keep_fraction=0.5, selection="topk")
    drawn = resolve_hparams(HardExample, "cmnist", hparams_seed=4)
    assert drawn.keep_fraction in (0.125, 0.25, 0.5, 0.75) and drawn.selection in ("topk", "proportional")
    for bad in ({"keep_fraction": 0.0}, {"keep_fraction": 1.5}, {"selection": "bottomk"}):
        with pytest.raises(ValueError):
            HardExampleHparams(**bad)


@pytest.mark.parametrize("selection", ["topk", "proportional"])
def test_trains_one_epoch_through_the_trainer(train_toy_epoch, selection) -> None:
    assert train_toy_epoch("hard_example", {"selection": selection}).trial.supervision == "none"
