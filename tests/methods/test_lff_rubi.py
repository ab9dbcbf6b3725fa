"""LfF with RUBi's combination rule (methods/lff_rubi.py): the fused training path, the unmasked
prediction path, and where the gradients go with and without the detached mask."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision
from debiasbench.methods.lff_rubi import LfFRUBi, LfFRUBiHparams, rubi_fused_logits
from debiasbench.methods.losses import generalized_ce

NUM_CLASSES = 3
FEATURES = 5


def make_context(inputs: torch.Tensor, targets: torch.Tensor) -> MethodContext:
    return MethodContext(
        dataset="cmnist",
        num_classes=NUM_CLASSES,
        num_train=len(targets),
        train_targets=targets,
        device=torch.device("cpu"),
        model_factory=lambda: nn.Linear(FEATURES, NUM_CLASSES),
        # lr 0: parameters stay put, so .grad after the step is the step's gradient at known weights.
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.0),
        train_inputs=lambda index: inputs[index],
        unit_inputs=lambda x: x,
    )


@pytest.fixture
def toy() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, FEATURES, generator=generator), torch.randint(0, NUM_CLASSES, (8,), generator=generator)


def build(toy, detach_mask: bool = True) -> tuple[LfFRUBi, Batch]:
    inputs, targets = toy
    torch.manual_seed(0)
    method = LfFRUBi(LfFRUBiHparams(detach_mask=detach_mask), make_context(inputs, targets))
    return method, Batch(index=torch.arange(len(targets)), x=inputs, y=targets)


def grads(module: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()]


def test_fused_logits_are_debiased_logits_times_sigmoid_of_bias_logits() -> None:
    z_d, z_b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(rubi_fused_logits(z_d, z_b), z_d * torch.sigmoid(z_b))
    # A (0, 1) mask cannot flip a sign: it only shrinks magnitudes toward 0.
    fused = rubi_fused_logits(z_d, z_b)
    assert torch.all(fused.abs() <= z_d.abs()) and torch.all(fused * z_d >= 0)


def test_prediction_path_is_the_unmasked_debiased_network(toy) -> None:
    method, batch = build(toy)
    assert LfFRUBi.predictor_role == "debiased" and LfFRUBi.roles == ("debiased", "biased")
    method.eval()
    with torch.no_grad():
        predicted = method.logits(batch.x, "debiased")
        assert torch.equal(predicted, method.debiased(batch.x))
        assert not torch.allclose(predicted, rubi_fused_logits(predicted, method.biased(batch.x)))


def test_detached_mask_gives_the_biased_network_only_its_gce_gradient(toy) -> None:
    method, batch = build(toy, detach_mask=True)
    biased, debiased = copy.deepcopy(method.biased), copy.deepcopy(method.debiased)

    output = method.train_step(batch)

    generalized_ce(biased(batch.x), batch.y, 0.7).mean().backward()
    for got, expected in zip(grads(method.biased), grads(biased)):
        assert torch.allclose(got, expected, atol=1e-7)
    # f_D learns through the fused logits, with f_B's output a constant.
    F.cross_entropy(rubi_fused_logits(debiased(batch.x), biased(batch.x).detach()), batch.y).backward()
    for got, expected in zip(grads(method.debiased), grads(debiased)):
        assert torch.allclose(got, expected, atol=1e-7)
    assert torch.allclose(
        output.per_sample_loss["debiased"], F.cross_entropy(debiased(batch.x), batch.y, reduction="none")
    )


def test_rubi_faithful_variant_lets_the_fused_loss_reach_the_biased_network(toy) -> None:
    method, batch = build(toy, detach_mask=False)
    biased = copy.deepcopy(method.biased)
    method.train_step(batch)
    generalized_ce(biased(batch.x), batch.y, 0.7).mean().backward()
    differences = [(got - gce_only).abs().max() for got, gce_only in zip(grads(method.biased), grads(biased))]
    assert max(differences) > 1e-4


def test_negative_target_logits_are_counted_on_the_device(toy) -> None:
    method, batch = build(toy)
    with torch.no_grad():
        expected = float((method.debiased(batch.x).gather(1, batch.y[:, None]) < 0).float().mean())
    method.train_step(batch)
    assert method.negative_target_logit_fraction() == pytest.approx(expected)


def test_registration_and_hparams() -> None:
    assert METHODS.get("lff_rubi") is LfFRUBi
    assert LfFRUBi.supervision is Supervision.NONE
    assert LfFRUBiHparams().detach_mask is True
    with pytest.raises(ValueError):
        LfFRUBiHparams(q=0.0)


class TwoLayer(nn.Module):
    """The `.features` / `.classifier` interface of the suite's models, tiny."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(nn.Linear(FEATURES, 4), nn.ReLU())
        self.classifier = nn.Linear(4, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_mask_head_variant_trains_a_head_on_detached_biased_features(toy) -> None:
    inputs, targets = toy
    ctx = dataclasses.replace(make_context(inputs, targets), model_factory=TwoLayer)
    torch.manual_seed(0)
    method = LfFRUBi(LfFRUBiHparams(mask_source="head"), ctx)
    batch = Batch(index=torch.arange(len(targets)), x=inputs, y=targets)
    biased, debiased, head = (copy.deepcopy(m) for m in (method.biased, method.debiased, method.mask_head))
    assert set(method.optimizers) == {"biased", "debiased", "mask_head"}

    method.train_step(batch)

    # f_B: its GCE loss only (the head sits on detached features).
    generalized_ce(biased(batch.x), batch.y, 0.7).mean().backward()
    for got, expected in zip(grads(method.biased), grads(biased)):
        assert torch.allclose(got, expected, atol=1e-7)
    # f_D and the head: the fused loss, with the mask logits from the head.
    fused = rubi_fused_logits(debiased(batch.x), head(biased.features(batch.x).detach()), detach_mask=False)
    F.cross_entropy(fused, batch.y).backward()
    for got, expected in zip(grads(method.debiased) + grads(method.mask_head), grads(debiased) + grads(head)):
        assert torch.allclose(got, expected, atol=1e-7)
    with pytest.raises(ValueError, match="mask_source"):
        LfFRUBiHparams(mask_source="softmax")


def test_epoch_diagnostics_measure_the_mask_and_reset(toy) -> None:
    method, batch = build(toy)
    with torch.no_grad():
        mask = torch.sigmoid(method.biased(batch.x))
    target_mask = mask.gather(1, batch.y[:, None]).squeeze(1)
    method.train_step(batch)
    diagnostics = method.epoch_diagnostics()
    assert diagnostics["mean_target_mask"] == pytest.approx(float(target_mask.mean()), rel=1e-5)
    other = (mask.sum(1) - target_mask) / (NUM_CLASSES - 1)
    assert diagnostics["mean_other_class_mask"] == pytest.approx(float(other.mean()), rel=1e-5)
    assert method.epoch_diagnostics()["mean_target_mask"] == 0.0  # accumulators start afresh each epoch
