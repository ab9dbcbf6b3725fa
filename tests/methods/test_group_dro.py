"""Group DRO (methods/group_dro.py): the q update, the robust loss, empty groups, the balanced
sampler and the supervision it demands."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from benchmark.trial import TrialConfig
from datasets.base import DATASETS
from methods.base import METHODS, Batch, MethodContext, Supervision, resolve_hparams
from methods.group_dro import GroupDRO, GroupDROHparams, group_mean_losses

NUM_CLASSES = 2
NUM_BIAS = 2
FEATURES = 4


def make_context(targets: torch.Tensor, biases: torch.Tensor, inputs: torch.Tensor) -> MethodContext:
    return MethodContext(
        dataset="cmnist",
        num_classes=NUM_CLASSES,
        num_train=len(targets),
        train_targets=targets,
        device=torch.device("cpu"),
        model_factory=lambda: nn.Linear(FEATURES, NUM_CLASSES),
        # lr 0: the model never moves, so the step's losses can be recomputed afterwards.
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.0),
        train_inputs=lambda index: inputs[index],
        unit_inputs=lambda x: x,
        num_bias_values=NUM_BIAS,
        train_bias=biases,
    )


def toy_data(n_per_group: tuple[int, ...] = (5, 5, 5, 5)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(n_per_group)])
    targets, biases = groups // NUM_BIAS, groups % NUM_BIAS
    inputs = torch.randn(len(groups), FEATURES, generator=torch.Generator().manual_seed(0))
    return targets, biases, inputs


def test_group_mean_losses_average_per_group_and_zero_for_absent_groups() -> None:
    losses = torch.tensor([1.0, 3.0, 5.0])
    groups = torch.tensor([0, 0, 2])
    assert torch.allclose(group_mean_losses(losses, groups, 4), torch.tensor([2.0, 0.0, 5.0, 0.0]))


def test_q_update_matches_formula_and_grows_for_the_worst_group() -> None:
    torch.manual_seed(0)
    targets, biases, inputs = toy_data()
    method = GroupDRO(GroupDROHparams(eta=0.5), make_context(targets, biases, inputs))
    num_groups = NUM_CLASSES * NUM_BIAS
    assert torch.allclose(method.q, torch.full((num_groups,), 1.0 / num_groups))
    inputs[:, 0] = biases.float()
    with torch.no_grad():  # the class-1 logit is -5 b: group 3 (y=1, b=1) is by far the hardest
        method.net.weight.zero_()
        method.net.bias.zero_()
        method.net.weight[1, 0] = -5.0
    index = torch.tensor([0, 1, 5, 10, 15, 16])  # groups 0, 0, 1, 2, 3, 3
    batch = Batch(index=index, x=inputs[index], y=targets[index], bias=biases[index])

    output = method.train_step(batch)

    per_sample = F.cross_entropy(method.net(batch.x), batch.y, reduction="none").detach()
    group_losses = torch.stack([per_sample[(batch.y * NUM_BIAS + batch.bias) == g].mean() for g in range(num_groups)])
    expected_q = torch.full((num_groups,), 1.0 / num_groups) * torch.exp(0.5 * group_losses)
    expected_q /= expected_q.sum()
    assert torch.allclose(method.q, expected_q, atol=1e-6)
    assert int(method.q.argmax()) == 3 and float(method.q[3]) > 1.0 / num_groups
    # The robust loss uses the q updated on this very batch.
    assert torch.allclose(output.loss, (expected_q * group_losses).sum(), atol=1e-6)
    assert torch.equal(output.per_sample_loss["main"], per_sample)


def test_absent_and_empty_groups_contribute_nothing_and_never_divide_by_zero() -> None:
    torch.manual_seed(0)
    targets, biases, inputs = toy_data((6, 0, 6, 6))  # group 1 has no training sample at all
    method = GroupDRO(
        GroupDROHparams(generalization_adjustment=1.0, normalize_loss=True), make_context(targets, biases, inputs)
    )
    assert float(method.q[1]) == 0.0 and torch.isclose(method.q.sum(), torch.tensor(1.0))
    # Uniform over the 3 populated groups: q spreads over exactly 3 (the empty one is not counted).
    assert method.epoch_diagnostics() == pytest.approx({"q_max": 1 / 3, "q_effective_groups": 3.0})
    index = torch.tensor([0, 1, 2])  # only group 0 present
    output = method.train_step(Batch(index=index, x=inputs[index], y=targets[index], bias=biases[index]))
    assert torch.isfinite(method.q).all() and torch.isfinite(output.loss)
    assert float(method.q[1]) == 0.0
    # The adjustment C / sqrt(n_g) moves q even for groups absent from this batch, equally for
    # groups of equal size: groups 2 and 3 both hold 6 samples.
    assert torch.isclose(method.q[2], method.q[3])


def test_gradients_reach_the_model_only_through_present_groups() -> None:
    torch.manual_seed(0)
    targets, biases, inputs = toy_data()
    method = GroupDRO(GroupDROHparams(), make_context(targets, biases, inputs))
    index = torch.tensor([0, 1])  # group 0 only
    method.train_step(Batch(index=index, x=inputs[index], y=targets[index], bias=biases[index]))
    expected = nn.Linear(FEATURES, NUM_CLASSES)
    expected.load_state_dict(method.net.state_dict())
    (method.q[0] * F.cross_entropy(expected(inputs[index]), targets[index])).backward()
    assert torch.allclose(method.net.weight.grad, expected.weight.grad, atol=1e-7)


def test_balanced_sampler_draws_every_group_about_equally() -> None:
    torch.manual_seed(0)
    sizes = (2000, 200, 20, 2)
    targets, biases, inputs = toy_data(sizes)
    method = GroupDRO(GroupDROHparams(), make_context(targets, biases, inputs))
    order = method.epoch_indices(0, torch.Generator().manual_seed(1))
    assert order is not None and len(order) == sum(sizes)
    counts = torch.bincount(targets[order] * NUM_BIAS + biases[order], minlength=4).float()
    assert torch.all((counts / counts.sum() - 0.25).abs() < 0.03), counts
    again = method.epoch_indices(0, torch.Generator().manual_seed(1))
    assert torch.equal(order, again)  # reproducible from the trainer's generator


def test_sampling_off_uses_the_trainers_shuffle() -> None:
    targets, biases, inputs = toy_data()
    method = GroupDRO(GroupDROHparams(group_balanced_sampling=False), make_context(targets, biases, inputs))
    assert method.epoch_indices(0, torch.Generator()) is None


def test_q_is_checkpointed() -> None:
    torch.manual_seed(0)
    targets, biases, inputs = toy_data()
    method = GroupDRO(GroupDROHparams(eta=1.0), make_context(targets, biases, inputs))
    index = torch.arange(len(targets))
    method.train_step(Batch(index=index, x=inputs, y=targets, bias=biases))
    restored = GroupDRO(GroupDROHparams(eta=1.0), make_context(targets, biases, inputs))
    restored.load_checkpoint_state(method.checkpoint_state())
    assert torch.equal(restored.q, method.q)


def test_needs_bias_labels_everywhere() -> None:
    assert METHODS.get("group_dro") is GroupDRO
    for dataset in ("cmnist", "ccifar1", "ccifar2", "celeba", "bar"):
        assert GroupDRO.supervision_on(dataset) is Supervision.BIAS_LABELS
    assert resolve_hparams(GroupDRO, "cmnist").group_balanced_sampling is True


def test_trial_on_a_dataset_without_bias_labels_is_refused(registry_without_bias_labels) -> None:
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig(dataset="no_bias_labels", method="group_dro"))


def test_registered_datasets_resolve_to_the_right_supervision() -> None:
    for dataset in ("ccifar1", "ccifar2"):
        if dataset in DATASETS:
            assert resolve_trial(TrialConfig(dataset, "group_dro", method_hparams={})).supervision == "bias-labels"
    if "bar" not in DATASETS:
        pytest.skip("BAR is not registered")
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig("bar", "group_dro", method_hparams={}))
