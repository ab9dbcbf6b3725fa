"""Group DRO (methods/group_dro.py): the q update, the robust loss, empty groups, the balanced
sampler and the supervision it demands."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS
from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision, resolve_hparams
from debiasbench.methods.group_dro import GroupDRO, GroupDROHparams, group_mean_losses

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
    state = method.checkpoint_state()
    restored.load_checkpoint_state(state)
    assert torch.equal(restored.q, method.q)
    # Only state is saved: the group sizes come from the training set again on resume.
    assert "q" in state["module"] and not {"group_counts", "populated"} & set(state["module"])


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


# -- one step with a learning rate, by hand ---------------------------------------------------------
#
# Two features x = (b, 1), a bias-free linear model whose class-1 logit is ln(3) * b and class-0
# logit is 0, so p(y=1 | x) = 1/2 for b = 0 and 3/4 for b = 1. Per-sample cross-entropy:
#   group 0 (y=0, b=0): ln 2     group 1 (y=0, b=1): ln 4
#   group 2 (y=1, b=0): ln 2     group 3 (y=1, b=1): ln(4/3)
# With eta = 1 and q uniform (1/4), q_g ∝ exp(L_g) = 2, 4, 2, 4/3, i.e. q = (3, 6, 3, 2) / 14.
# d CE / d logits = p - onehot(y); d / dW = (p - onehot(y)) x^T, the same for every sample of a group:
#   g0: [[0, -1/2], [0, 1/2]]     g1: [[-3/4, -3/4], [3/4, 3/4]]
#   g2: [[0, 1/2], [0, -1/2]]     g3: [[1/4, 1/4], [-1/4, -1/4]]
# The robust loss sum_g q_g L_g has the gradient sum_g q_g dW_g = [[-2/7, -2/7], [2/7, 2/7]], so SGD
# with lr 0.7 moves W = [[0, 0], [ln 3, 0]] to [[0.2, 0.2], [ln 3 - 0.2, -0.2]].

LN3 = math.log(3.0)


def two_feature_context(group_sizes: tuple[int, ...], lr: float) -> tuple[MethodContext, torch.Tensor]:
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(group_sizes)])
    targets, biases = groups // NUM_BIAS, groups % NUM_BIAS
    inputs = torch.stack([biases.float(), torch.ones(len(groups))], dim=1)
    ctx = MethodContext(
        dataset="cmnist",
        num_classes=NUM_CLASSES,
        num_train=len(groups),
        train_targets=targets,
        device=torch.device("cpu"),
        model_factory=lambda: nn.Linear(2, NUM_CLASSES, bias=False),
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr),
        train_inputs=lambda index: inputs[index],
        unit_inputs=lambda x: x,
        num_bias_values=NUM_BIAS,
        train_bias=biases,
    )
    return ctx, inputs


def test_one_step_with_a_learning_rate_moves_q_and_the_weights_as_computed_by_hand() -> None:
    sizes = (3, 1, 2, 1)  # unequal groups; the whole training set is the batch
    ctx, inputs = two_feature_context(sizes, lr=0.7)
    method = GroupDRO(GroupDROHparams(eta=1.0, group_balanced_sampling=False), ctx)
    with torch.no_grad():
        method.net.weight.copy_(torch.tensor([[0.0, 0.0], [LN3, 0.0]]))
    index = torch.arange(sum(sizes))
    batch = Batch(index=index, x=inputs, y=ctx.train_targets, bias=ctx.train_bias)

    output = method.train_step(batch)

    assert method.q.tolist() == pytest.approx([3 / 14, 6 / 14, 3 / 14, 2 / 14], abs=1e-6)
    expected_loss = (3 * math.log(2) + 6 * math.log(4) + 3 * math.log(2) + 2 * math.log(4 / 3)) / 14
    assert float(output.loss) == pytest.approx(expected_loss, abs=1e-6)
    expected_weight = [[0.2, 0.2], [LN3 - 0.2, -0.2]]
    assert method.net.weight.detach().tolist() == [pytest.approx(row, abs=1e-6) for row in expected_weight]
    # Every sample's own loss is reported for the "main" role, before the step.
    per_group = [math.log(2), math.log(4), math.log(2), math.log(4 / 3)]
    expected_per_sample = [per_group[g] for g, n in enumerate(sizes) for _ in range(n)]
    assert output.per_sample_loss["main"].tolist() == pytest.approx(expected_per_sample, abs=1e-6)


def test_generalization_adjustment_adds_c_over_sqrt_group_size_to_every_populated_group() -> None:
    # n_g = 4, 1, 9, 1 and C = 0.6 (below 1, as in Sagawa et al.'s grid): adjustments 0.3, 0.6,
    # 0.2, 0.6; with zero losses and eta = 5, q_g ∝ exp(1.5), exp(3), exp(1), exp(3).
    ctx, _ = two_feature_context((4, 1, 9, 1), lr=0.0)
    method = GroupDRO(GroupDROHparams(eta=5.0, generalization_adjustment=0.6), ctx)
    method.update_q(torch.zeros(4))
    raw = [math.exp(1.5), math.exp(3), math.exp(1), math.exp(3)]
    assert method.q.tolist() == pytest.approx([v / sum(raw) for v in raw], rel=1e-5)


def test_zero_adjustment_leaves_q_to_the_losses_alone() -> None:
    ctx, _ = two_feature_context((4, 1, 9, 1), lr=0.0)
    method = GroupDRO(GroupDROHparams(eta=1.0), ctx)
    method.update_q(torch.zeros(4))
    assert method.q.tolist() == pytest.approx([0.25] * 4)


def test_normalize_loss_divides_the_group_losses_by_their_sum_before_the_step() -> None:
    # Losses 1, 3, 0, 4 sum to 8; eta = 8 ln 2 turns exp(eta * L / 8) into 2^L: q ∝ 2, 8, 1, 16.
    ctx, _ = two_feature_context((4, 1, 9, 1), lr=0.0)
    method = GroupDRO(GroupDROHparams(eta=8 * math.log(2), normalize_loss=True), ctx)
    method.update_q(torch.tensor([1.0, 3.0, 0.0, 4.0]))
    q = [2 / 27, 8 / 27, 1 / 27, 16 / 27]
    assert method.q.tolist() == pytest.approx(q, rel=1e-5)
    # The diagnostics at this non-uniform q: its largest entry and exp(entropy).
    entropy = -sum(v * math.log(v) for v in q)
    assert method.epoch_diagnostics() == pytest.approx({"q_max": 16 / 27, "q_effective_groups": math.exp(entropy)})


def test_the_robust_step_size_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="eta must be non-negative"):
        GroupDROHparams(eta=-0.1)
    with pytest.raises(ValueError, match="generalization_adjustment must be non-negative"):
        GroupDROHparams(generalization_adjustment=-1.0)
    assert GroupDROHparams(eta=0.0, generalization_adjustment=0.0).eta == 0.0


def test_one_epoch_through_the_real_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("group_dro", {"eta": 0.1})
    assert output.trial.supervision == "bias-labels"
    # The toy dataset has 4 classes x 4 bias values: q spreads over at most 16 groups.
    diagnostics = [r for r in output.rows if r[4] == "q_max"]
    assert diagnostics and all(1 / 16 <= r[5] <= 1.0 for r in diagnostics)


def test_search_draws_eta_log_uniformly_between_a_thousandth_and_a_tenth() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    draws = np.array([GroupDRO.search_space["eta"](rng) for _ in range(2000)])
    assert draws.min() >= 1e-3 and draws.max() <= 1e-1
    # log10(eta) uniform on [-3, -1]: mean -2, and a quarter of the draws below 10^-2.5.
    assert abs(np.log10(draws).mean() + 2) < 0.05 and abs((draws < 10**-2.5).mean() - 0.25) < 0.03


def test_without_bias_labels_the_method_refuses_to_start_or_step() -> None:
    targets, biases, inputs = toy_data()
    ctx = make_context(targets, biases, inputs)
    for missing in ({"train_bias": None}, {"num_bias_values": None}):
        with pytest.raises(ValueError, match="group_dro needs the bias label of every training sample"):
            GroupDRO(GroupDROHparams(), dataclasses.replace(ctx, **missing))
    method = GroupDRO(GroupDROHparams(), ctx)
    with pytest.raises(ValueError, match="batch without bias labels"):
        method.train_step(Batch(index=torch.arange(2), x=inputs[:2], y=targets[:2], bias=None))


def test_the_defaults_are_the_reference_commands() -> None:
    """Sagawa et al.'s defaults (robust step 0.01, no adjustment, no normalisation) with their
    `--reweight_groups` sampling; the resolved values are part of every trial key."""
    assert dataclasses.asdict(resolve_hparams(GroupDRO, "cmnist")) == {
        "eta": 0.01,
        "group_balanced_sampling": True,
        "generalization_adjustment": 0.0,
        "normalize_loss": False,
    }
