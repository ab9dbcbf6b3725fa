"""REPAIR (methods/repair.py): the stage-1 gradients, the learned weights, the four resampling
variants, stage-3 sampling, checkpointing and the supervision each dataset demands."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS
from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision
from debiasbench.methods.repair import (
    REPAIR,
    ClassMajorLayout,
    REPAIRHparams,
    bias_representation,
    minmax_gradients,
    select_subset,
)

NUM_CLASSES = 3


def colour_dataset(n_per_class: int = 100, conflicting_per_class: int = 10, seed: int = 0):
    """Colour-biased toy images (N, 3, 2, 2): class c is drawn in colour channel c, except for the
    first `conflicting_per_class` samples of each class, drawn in channel (c + 1) mod 3."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    rank = torch.arange(len(targets)) % n_per_class
    conflicting = rank < conflicting_per_class
    colour = torch.where(conflicting, (targets + 1) % NUM_CLASSES, targets)
    images = 0.1 * torch.rand(len(targets), 3, 2, 2, generator=generator)
    images[torch.arange(len(targets)), colour] += 0.8
    return images, targets, conflicting


def make_context(
    images: torch.Tensor,
    targets: torch.Tensor,
    dataset: str = "cmnist",
    biases: torch.Tensor | None = None,
    num_bias: int | None = None,
) -> MethodContext:
    return MethodContext(
        dataset=dataset,
        num_classes=NUM_CLASSES,
        num_train=len(targets),
        train_targets=targets,
        device=torch.device("cpu"),
        model_factory=lambda: nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), NUM_CLASSES)),
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.1),
        # Model inputs are the pixels scaled by 2; unit_inputs must undo it.
        train_inputs=lambda index: 2.0 * images[index],
        unit_inputs=lambda x: x / 2.0,
        num_bias_values=num_bias,
        train_bias=biases,
    )


def test_closed_form_gradients_match_autograd_on_the_reference_objective() -> None:
    generator = torch.Generator().manual_seed(0)
    n, k, classes = 40, 3, 4
    tau = torch.randn(n, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (n,), generator=generator)
    phi = torch.randn(n, k, generator=generator, dtype=torch.float64)
    probe = torch.randn(classes, k + 1, generator=generator, dtype=torch.float64)
    index = torch.randperm(n, generator=generator)[:16]
    layout = ClassMajorLayout(targets, classes)
    phi_with_one = torch.cat([phi, torch.ones(n, 1, dtype=phi.dtype)], 1)

    grad_probe, grad_tau, loss = minmax_gradients(
        layout.matrix(tau, -math.inf), n, targets[index], layout.position[index], phi_with_one[index], probe
    )

    # The reference's objective, differentiated by autograd: L for the probe, 1 - L/H for tau.
    tau_ = tau.clone().requires_grad_()
    weight_, bias_ = probe[:, :k].clone().requires_grad_(), probe[:, k].clone().requires_grad_()
    w = torch.sigmoid(tau_)
    z = w[index] / w.mean()
    class_w = torch.zeros(classes, dtype=w.dtype).index_add(0, targets, w)
    prior = class_w / class_w.sum()
    ce = F.cross_entropy(phi[index] @ weight_.T + bias_, targets[index], reduction="none")
    expected_loss = (ce * z).mean()
    entropy = -(prior[targets[index]].log() * z).mean()
    grad_w, grad_b = torch.autograd.grad(expected_loss, [weight_, bias_], retain_graph=True)
    (expected_grad_tau,) = torch.autograd.grad(1 - expected_loss / entropy, [tau_])

    assert torch.allclose(loss, expected_loss)
    assert torch.allclose(grad_probe[:, :k], grad_w) and torch.allclose(grad_probe[:, k], grad_b)
    assert torch.allclose(layout.per_example(grad_tau), expected_grad_tau)
    assert not torch.any(grad_tau[torch.isinf(layout.matrix(tau, -math.inf))])  # padding never moves


def test_colour_representation_is_the_per_channel_max_of_the_unit_image() -> None:
    images, targets, _ = colour_dataset(4, 1)
    phi = bias_representation(make_context(images, targets))
    assert torch.allclose(phi, images.flatten(2).amax(2))


def test_one_hot_bias_label_representation_off_colored_mnist() -> None:
    images, targets, _ = colour_dataset(4, 1)
    biases = (targets + 1) % NUM_CLASSES
    phi = bias_representation(make_context(images, targets, "ccifar1", biases, NUM_CLASSES))
    assert torch.equal(phi, F.one_hot(biases, NUM_CLASSES).float())


def test_weights_fall_on_samples_whose_bias_representation_predicts_their_label() -> None:
    images, targets, conflicting = colour_dataset()
    torch.manual_seed(0)
    # 300 samples give 3 steps per epoch (the reference runs ~10^5 steps on 60k): a faster probe
    # lets the min-max settle within 600 steps.
    method = REPAIR(REPAIRHparams(variant="R", probe_lr=0.1), make_context(images, targets))
    method.prepare()
    w = method.example_weights
    assert float(w[~conflicting].mean()) < 0.25 and float(w[conflicting].mean()) > 0.75
    assert float(w[conflicting].min()) > float(w[~conflicting].max())
    # Rank keeps half the set and, with it, every conflicting sample.
    assert int(method.kept.sum()) == len(targets) // 2 and bool(method.kept[conflicting].all())
    # Resampling removes the colour shortcut: the remaining colour bias estimate is small.
    assert float(method.bias_estimate) < 0.5


def test_variants_keep_the_documented_subsets() -> None:
    w = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.7, 0.1])
    targets = torch.tensor([0, 0, 0, 1, 1, 1])
    generator = torch.Generator().manual_seed(0)

    def kept(variant: str, **options) -> list[int]:
        mask = select_subset(w, targets, 2, REPAIRHparams(variant=variant, **options), generator)
        return torch.nonzero(mask).squeeze(1).tolist()

    assert kept("T") == [0, 2, 4]
    assert kept("T", threshold=0.35) == [0, 2, 3, 4]
    assert kept("R") == [0, 2, 4]  # top round(0.5 * 6) overall
    assert kept("R", keep_ratio=1 / 3) == [0, 4]
    assert kept("C", keep_ratio=0.6) == [0, 2, 3, 4]  # top round(0.6 * 3) = 2 of each class
    assert len(kept("U")) == 3
    draws = torch.stack([select_subset(w, targets, 2, REPAIRHparams(variant="S"), generator) for _ in range(4000)])
    assert torch.allclose(draws.float().mean(0), w, atol=0.03)  # kept with probability w_i


def test_sample_variant_is_drawn_once_and_reproducibly() -> None:
    w = torch.rand(50, generator=torch.Generator().manual_seed(1))
    targets = torch.zeros(50, dtype=torch.long)
    first = select_subset(w, targets, 1, REPAIRHparams(variant="S"), torch.Generator().manual_seed(7))
    again = select_subset(w, targets, 1, REPAIRHparams(variant="S"), torch.Generator().manual_seed(7))
    assert torch.equal(first, again)


def test_stage_three_visits_only_the_kept_subset() -> None:
    images, targets, _ = colour_dataset(20, 2)
    torch.manual_seed(0)
    method = REPAIR(REPAIRHparams(variant="T", weight_epochs=20, epoch_length="subset"), make_context(images, targets))
    method.prepare()
    subset = set(torch.nonzero(method.kept).squeeze(1).tolist())
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == sorted(subset)
    full = REPAIR(REPAIRHparams(variant="T", weight_epochs=20), make_context(images, targets))  # "full"
    full.load_checkpoint_state(method.checkpoint_state())
    order = full.epoch_indices(0, torch.Generator().manual_seed(0))
    assert len(order) == len(targets) and set(order.tolist()) <= subset
    index = order[:8]
    output = full.train_step(Batch(index=index, x=2.0 * images[index], y=targets[index]))
    assert output.per_sample_loss["main"].shape == (8,)


def test_weights_and_subset_resume_from_a_checkpoint_without_rerunning_stage_one() -> None:
    images, targets, _ = colour_dataset(10, 2)
    torch.manual_seed(0)
    method = REPAIR(REPAIRHparams(variant="S", weight_epochs=5), make_context(images, targets))
    method.prepare()
    restored = REPAIR(REPAIRHparams(variant="S", weight_epochs=5), make_context(images, targets))
    restored.load_checkpoint_state(method.checkpoint_state())
    assert torch.equal(restored.example_weights, method.example_weights)
    assert torch.equal(restored.kept, method.kept)


def test_an_empty_subset_is_an_error_not_a_silent_untrained_model() -> None:
    images, targets, _ = colour_dataset(5, 1)
    method = REPAIR(REPAIRHparams(variant="T", threshold=0.99, weight_epochs=0), make_context(images, targets))
    with pytest.raises(RuntimeError, match="kept no training example"):
        method.prepare()


def test_supervision_depends_on_the_bias_representation() -> None:
    assert METHODS.get("repair") is REPAIR
    assert REPAIR.supervision is Supervision.BIAS_LABELS  # the conservative declaration
    assert REPAIR.supervision_on("cmnist") is Supervision.BIAS_TAILORED  # colour from the image
    assert REPAIR.supervision_on("ccifar1") is Supervision.BIAS_LABELS  # one-hot corruption label
    assert REPAIR.supervision_on("ccifar2") is Supervision.BIAS_LABELS
    assert (
        resolve_trial(TrialConfig("cmnist", "repair", {"ratio": 99.5, "difficulty": 4}, {"variant": "C"})).supervision
        == "bias-tailored"
    )
    with pytest.raises(ValueError):
        REPAIRHparams(variant="X")


def test_trial_on_a_dataset_without_bias_labels_is_refused(registry_without_bias_labels) -> None:
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig(dataset="no_bias_labels", method="repair", method_hparams={"variant": "T"}))


def test_registered_datasets_resolve_to_the_right_supervision() -> None:
    for dataset in ("ccifar1", "ccifar2"):
        if dataset in DATASETS:
            assert (
                resolve_trial(TrialConfig(dataset, "repair", method_hparams={"variant": "T"})).supervision
                == "bias-labels"
            )
    if "bar" not in DATASETS:
        pytest.skip("BAR is not registered")
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig("bar", "repair", method_hparams={"variant": "T"}))
