"""Group reweighting (methods/group_reweight.py): the weights of a known group table, their
normalisation, the weighted step, and that it demands bias labels. Also checks that the shared
poisoned-bias fixture really catches a method that reads bias labels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.group_reweight import GroupReweight, GroupReweightHparams, group_weights

NUM_BIAS = 2


def table(counts: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and biases of a training set with `counts[g]` samples in group g = 2y + b."""
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(counts)])
    return groups // NUM_BIAS, groups % NUM_BIAS


def test_inverse_frequency_weights_of_a_known_table() -> None:
    # n = (6, 2, 1, 3), N = 12, 4 populated groups: w_g = 12 / (4 n_g).
    targets, biases = table((6, 2, 1, 3))
    groups = targets * NUM_BIAS + biases
    weights = group_weights(groups, 4)
    torch.testing.assert_close(weights, torch.tensor([0.5, 1.5, 3.0, 1.0]))
    assert weights[groups].mean().item() == pytest.approx(1.0)  # mean over the training set is 1
    # Every group carries the same total weight, N / G+ = 3.
    torch.testing.assert_close(torch.bincount(groups, weights[groups]), torch.full((4,), 3.0))


def test_empty_groups_get_no_weight_and_do_not_count() -> None:
    targets, biases = table((6, 0, 3, 3))  # 3 populated groups: w_g = 12 / (3 n_g)
    weights = group_weights(targets * NUM_BIAS + biases, 4)
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 0.0, 4 / 3, 4 / 3]))


def test_square_root_variant() -> None:
    targets, biases = table((4, 1, 9, 16))
    groups = targets * NUM_BIAS + biases
    weights = group_weights(groups, 4, exponent=0.5)
    c = 30 / (math.sqrt(4) + math.sqrt(1) + math.sqrt(9) + math.sqrt(16))  # N / sum_g n_g^(1/2)
    torch.testing.assert_close(weights, torch.tensor([c / 2, c / 1, c / 3, c / 4]))
    assert weights[groups].mean().item() == pytest.approx(1.0)


def test_step_is_the_group_weighted_mean_cross_entropy(toy_context) -> None:
    torch.manual_seed(0)
    targets, biases = table((6, 2, 1, 3))
    inputs = torch.randn(len(targets), 3)
    method = GroupReweight(GroupReweightHparams(), toy_context(inputs, targets, biases, NUM_BIAS, lr=1.0))
    replica = type(method.net)(3, 2)
    replica.load_state_dict(method.net.state_dict())
    index = torch.tensor([0, 1, 6, 8, 9])  # groups 0, 0, 1, 2, 3
    per_group = {0: 0.5, 1: 1.5, 2: 3.0, 3: 1.0}
    expected_weight = torch.tensor([per_group[int(g)] for g in targets[index] * NUM_BIAS + biases[index]])
    ce = F.cross_entropy(replica(inputs[index]), targets[index], reduction="none")
    expected = (expected_weight * ce).sum() / len(index)  # divided by B, not by the weights' sum
    expected.backward()
    before = [p.detach().clone() for p in method.net.parameters()]

    output = method.train_step(Batch(index=index, x=inputs[index], y=targets[index], bias=biases[index]))

    torch.testing.assert_close(output.loss, expected.detach())
    torch.testing.assert_close(output.per_sample_loss["main"], ce.detach())  # unweighted, for the logs
    for old, new, ref in zip(before, method.net.parameters(), replica.parameters()):
        torch.testing.assert_close(new.detach(), old - ref.grad)


def test_poisoned_bias_fixture_catches_a_method_that_reads_bias_labels(toy_context, poisoned_bias) -> None:
    """The check used for every method that declares supervision 'none' is not vacuous."""
    targets, biases = table((2, 2, 2, 2))
    inputs = torch.randn(8, 3)
    method = GroupReweight(GroupReweightHparams(), toy_context(inputs, targets, biases, NUM_BIAS))
    with pytest.raises(AssertionError, match="read bias labels"):
        method.train_step(Batch(index=torch.arange(8), x=inputs, y=targets, bias=poisoned_bias))
    with pytest.raises(AssertionError, match="read bias labels"):
        GroupReweight(GroupReweightHparams(), toy_context(inputs, targets, poisoned_bias, NUM_BIAS))


def test_needs_bias_labels(toy_context, registry_without_bias_labels, trial_api) -> None:
    assert GroupReweight.supervision is Supervision.BIAS_LABELS
    targets, _ = table((2, 2, 2, 2))
    with pytest.raises(ValueError, match="bias label"):
        GroupReweight(GroupReweightHparams(), toy_context(torch.randn(8, 3), targets))
    with pytest.raises(trial_api.InvalidTrialError, match="needs bias labels"):
        trial_api.resolve_trial(trial_api.TrialConfig(dataset="no_bias_labels", method="group_reweight"))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("group_reweight") is GroupReweight
    assert resolve_hparams(GroupReweight, "cmnist").exponent == 1.0
    assert resolve_hparams(GroupReweight, "cmnist", hparams_seed=1).exponent in (0.5, 1.0)
    with pytest.raises(ValueError):
        GroupReweightHparams(exponent=-1.0)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    assert train_toy_epoch("group_reweight").trial.supervision == "bias-labels"
