"""HEX (methods/hex.py): the projection, the NGLCM preprocessing, the shared final layer and the
prediction path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision
from debiasbench.methods.hex import HEX, NGLCM, HEXHparams, project_out, quantise, shifted_difference

NUM_CLASSES = 3


class TinyNet(nn.Module):
    """The model contract HEX relies on: `.features(x)` and a final linear `.classifier`."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def make_context(images: torch.Tensor, targets: torch.Tensor) -> MethodContext:
    return MethodContext(
        dataset="cmnist",
        num_classes=NUM_CLASSES,
        num_train=len(targets),
        train_targets=targets,
        device=torch.device("cpu"),
        model_factory=lambda: TinyNet(images[0].numel(), NUM_CLASSES),
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.1),
        train_inputs=lambda index: 2.0 * images[index] - 1.0,
        unit_inputs=lambda x: (x + 1.0) / 2.0,  # model inputs are pixels mapped to [-1, 1]
        input_shape=tuple(images.shape[1:]),
    )


def toy_images(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 5, 5, generator=generator), torch.randint(0, NUM_CLASSES, (n,), generator=generator)


def test_projection_output_is_orthogonal_to_the_superficial_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    joint = torch.randn(64, 10, generator=generator)
    superficial = torch.randn(64, 10, generator=generator)
    projected = project_out(joint, superficial, ridge=0.0)
    gram = superficial.double().T @ projected.double()
    assert gram.abs().max() < 1e-4 * joint.abs().max() * superficial.abs().max() * 64
    # Same as the explicit projector (I - F_G (F_G^T F_G)^-1 F_G^T) F_A of the paper.
    f_g = superficial.double()
    projector = torch.eye(64, dtype=torch.float64) - f_g @ torch.linalg.inv(f_g.T @ f_g) @ f_g.T
    assert torch.allclose(projected.double(), projector @ joint.double(), atol=1e-5)
    # With F_A already in F_G's column space nothing is left.
    mixing = torch.randn(10, 10, generator=generator)
    assert project_out(superficial @ mixing, superficial, ridge=0.0).abs().max() < 1e-3


def test_projection_survives_rank_deficient_superficial_logits() -> None:
    generator = torch.Generator().manual_seed(1)
    joint = torch.randn(32, 4, generator=generator, requires_grad=True)
    column = torch.randn(32, 1, generator=generator)
    superficial = torch.cat([column, 2 * column, torch.zeros(32, 2)], dim=1).requires_grad_()  # rank 1
    projected = project_out(joint, superficial, ridge=1e-4)
    projected.sum().backward()
    assert (
        torch.isfinite(projected).all() and torch.isfinite(joint.grad).all() and torch.isfinite(superficial.grad).all()
    )
    # The one direction F_G spans is still removed.
    assert (column.double().T @ projected.double()).abs().max() < 1e-2
    all_zero = project_out(joint.detach(), torch.zeros(32, 4), ridge=1e-4)
    assert torch.allclose(all_zero, joint.detach())  # nothing to remove, no NaN


def test_shifted_difference_is_the_reference_direction_matrix() -> None:
    height, width, row, col = 4, 5, 1, 2
    levels = torch.randint(0, 16, (2, 1, height * width)).float()
    # The reference builds D = -I + S with S[i, i + row * W + col] = 1 when that pixel exists,
    # and computes d = a D.
    direction = -torch.eye(height * width)
    for i in range(height * width):
        r, c = divmod(i, width)
        if r + row < height and c + col < width:
            direction[i, i + row * width + col] = 1.0
    assert torch.equal(shifted_difference(levels, height, width, row, col), levels @ direction)


@pytest.mark.parametrize("mode", ["gray_permax", "per_channel"])
def test_cooccurrence_is_the_reference_ramp_product_summed_over_pixels(mode: str) -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 3, 4, 5)
    nglcm = NGLCM(HEXHparams(nglcm_input=mode, shift_row=0, shift_col=1), channels=3)
    levels = nglcm.planes_of(images)
    differences = shifted_difference(levels, 4, 5, 0, 1)
    # The reference: A = clamp(d - lambda, 0, 1), Bm = clamp(a - theta, 0, 1), G = A Bm^T.
    ramps_d = (differences[:, :, None, :] - nglcm.difference_thresholds[None, :, :, None]).clamp(0, 1)
    ramps_a = (levels[:, :, None, :] - nglcm.level_thresholds[None, :, :, None]).clamp(0, 1)
    expected = ramps_d @ ramps_a.transpose(-1, -2)
    got = nglcm.cooccurrence(images)
    assert torch.allclose(got, expected, atol=1e-4)
    # Gradients reach the learnable thresholds, as through the reference's product.
    got.sum().backward()
    assert nglcm.difference_thresholds.grad.abs().sum() > 0 and nglcm.level_thresholds.grad.abs().sum() > 0


def test_quantisation_modes() -> None:
    pixels = torch.tensor([[[0.0, 0.25, 0.5]]])
    assert torch.equal(quantise(pixels, 16, per_image_max=False), torch.tensor([[[0.0, 3.0, 7.0]]]))
    assert torch.equal(quantise(pixels, 16, per_image_max=True), torch.tensor([[[0.0, 7.0, 15.0]]]))
    assert torch.equal(quantise(torch.zeros(1, 1, 3), 16, per_image_max=True), torch.zeros(1, 1, 3))


def test_gray_permax_cannot_see_a_uniform_colour_but_per_channel_can() -> None:
    torch.manual_seed(0)
    digit = torch.rand(1, 1, 6, 6)
    red, green = (
        digit * torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1),
        digit * torch.tensor([0.1, 0.9, 0.1]).view(1, 3, 1, 1),
    )
    permax = NGLCM(HEXHparams(nglcm_input="gray_permax"), channels=3)
    # Luma scales the digit differently per colour, the per-image max undoes it.
    assert torch.allclose(permax.cooccurrence(red), permax.cooccurrence(green), atol=1e-5)
    per_channel = NGLCM(HEXHparams(nglcm_input="per_channel"), channels=3)
    assert not torch.allclose(per_channel.cooccurrence(red), per_channel.cooccurrence(green))
    assert per_channel.cooccurrence(red).shape == (1, 3, 16, 16)


def test_train_step_uses_the_projection_and_predicts_with_the_main_branch_only() -> None:
    images, targets = toy_images()
    torch.manual_seed(0)
    method = HEX(HEXHparams(dropout=0.0), make_context(images, targets))
    x = 2.0 * images - 1.0
    batch = Batch(index=torch.arange(len(targets)), x=x, y=targets)
    net = method.net
    assert net.final.in_features == 6 + 32  # backbone width read from .classifier, + NGLCM head
    before = {name: p.detach().clone() for name, p in net.named_parameters()}

    with torch.no_grad():
        joint, superficial, main_only = net.logit_triplet(x)
        expected_loss = F.cross_entropy(project_out(joint, superficial, 1e-4), targets)
    output = method.train_step(batch)
    assert torch.allclose(output.loss, expected_loss, atol=1e-6)
    assert torch.allclose(output.per_sample_loss["main"], F.cross_entropy(main_only, targets, reduction="none"))

    moved = {name for name, p in net.named_parameters() if not torch.equal(p.detach(), before[name])}
    for part in ("backbone.body.1.weight", "nglcm.head.weight", "final.weight", "final.bias"):
        assert part in moved, part
    # The backbone's own classifier is replaced by the shared final layer and never trained.
    assert not moved & {"backbone.classifier.weight", "backbone.classifier.bias"}

    method.eval()
    with torch.no_grad():
        predicted = method.logits(x, "main")
        _, _, main_only = net.logit_triplet(x)
        assert torch.allclose(predicted, main_only)
        # F_P does not depend on the NGLCM branch at all.
        net.nglcm.head.weight.add_(1.0)
        assert torch.allclose(method.logits(x, "main"), predicted)


def test_f_g_and_f_p_share_the_final_layer() -> None:
    images, targets = toy_images(8)
    torch.manual_seed(0)
    method = HEX(HEXHparams(dropout=0.0, feature_norm="none"), make_context(images, targets))
    net = method.net
    x = 2.0 * images - 1.0
    with torch.no_grad():
        h_a = net.backbone.features(x)
        h_g = net.nglcm(images)
        joint, superficial, main_only = net.logit_triplet(x)
        assert torch.allclose(joint, net.final(torch.cat([h_a, h_g], 1)), atol=1e-5)
        assert torch.allclose(superficial, net.final(torch.cat([torch.zeros_like(h_a), h_g], 1)), atol=1e-5)
        assert torch.allclose(main_only, net.final(torch.cat([h_a, torch.zeros_like(h_g)], 1)), atol=1e-5)


@pytest.mark.parametrize("mode", ["gray_permax", "gray_global", "per_channel"])
def test_every_nglcm_input_mode_trains(mode: str) -> None:
    images, targets = toy_images(16)
    torch.manual_seed(0)
    method = HEX(HEXHparams(nglcm_input=mode), make_context(images, targets))
    output = method.train_step(Batch(index=torch.arange(16), x=2.0 * images - 1.0, y=targets))
    assert torch.isfinite(output.loss)


def test_registration_and_contract() -> None:
    assert METHODS.get("hex") is HEX
    assert HEX.supervision is Supervision.BIAS_TAILORED
    assert HEX.drop_last is True and HEX.roles == ("main",)
    assert HEXHparams().nglcm_input == "gray_permax"  # faithful to the reference by default
    with pytest.raises(ValueError):
        HEXHparams(nglcm_input="rgb")
