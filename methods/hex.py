"""HEX (Wang et al., ICLR 2019; docs/methods.md#hex): project the superficial-statistics component out of
the logits.

A neural grey-level co-occurrence matrix (NGLCM) branch reads the image's pixels and gives h_G; the
backbone's penultimate representation is h_A. One shared final linear layer (W, b) yields
  F_A = [h_A, h_G] W + b,  F_G = [0, h_G] W + b,  F_P = [h_A, 0] W + b,
training minimises CE(F_L, y) with F_L = F_A - F_G X, (F_G^T F_G + eps I) X = F_G^T F_A (a ridge-
regularised C x C solve in float64), and prediction uses F_P only. Works with any backbone that
exposes `.features(x)` and `.classifier` (the MLP, ResNet-20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method

NGLCM_INPUTS = ("gray_permax", "gray_global", "per_channel")
FEATURE_NORMS = ("sample", "batch", "none")
# ITU-R BT.601 luma, the usual "convert to grey" for RGB images.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class HEXHparams:
    # How the NGLCM sees the image. gray_permax (the reference): grey image quantised by its own
    # maximum, which removes a uniform digit colour entirely. gray_global [inferred]: grey image
    # quantised with a fixed [0, 1] scale. per_channel [inferred]: one NGLCM per colour channel with
    # the fixed scale, recommended for colour bias.
    nglcm_input: str = "gray_permax"
    n_gray: int = 16
    shift_row: int = 0  # co-occurrence offset delta = (row, col); (0, 1) in the MNIST experiments
    shift_col: int = 1
    nglcm_features: int = 32
    # L2 normalisation of h_A and h_G. batch: each feature column over the batch, as the reference
    # (predictions then depend on the evaluation batch). sample [inferred default]: each sample's
    # feature vector, identical in training and evaluation. none: no normalisation.
    feature_norm: str = "sample"
    dropout: float = 0.5  # on h_A before the concatenation (reference keep_prob 0.5)
    # Ridge eps = ridge * trace(F_G^T F_G) / C (+ a tiny floor): keeps the solve well posed when F_G
    # is rank-deficient (dead ReLUs early on); the reference inverts without regularisation.
    ridge: float = 1e-4
    freeze_nglcm: bool = False  # README FAQ: a fixed GLCM if the learnable thresholds diverge

    def __post_init__(self) -> None:
        if self.nglcm_input not in NGLCM_INPUTS:
            raise ValueError(f"nglcm_input must be one of {', '.join(NGLCM_INPUTS)}, got {self.nglcm_input!r}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {', '.join(FEATURE_NORMS)}, got {self.feature_norm!r}")
        if self.n_gray < 2:
            raise ValueError(f"n_gray must be at least 2, got {self.n_gray}")
        if self.shift_row < 0 or self.shift_col < 0 or (self.shift_row, self.shift_col) == (0, 0):
            raise ValueError("the NGLCM shift (shift_row, shift_col) must be non-negative and not (0, 0)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.ridge < 0:
            raise ValueError(f"ridge must be non-negative, got {self.ridge}")


def quantise(pixels: torch.Tensor, n_gray: int, per_image_max: bool) -> torch.Tensor:
    """Integer grey levels in [0, n_gray - 1] (as floats) of (B, K, P) pixel intensities in [0, 1]."""
    if per_image_max:
        # Reference: floor((n_gray - 1) * a / max(a)) per image; a black image stays 0.
        scale = pixels.amax(dim=(1, 2), keepdim=True)
        pixels = pixels / torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.floor((n_gray - 1) * pixels.clamp(0.0, 1.0))


def shifted_difference(levels: torch.Tensor, height: int, width: int, shift_row: int, shift_col: int) -> torch.Tensor:
    """d_p = a_{p - delta} - a_p where p - delta lies in the image, else -a_p (D = -I + S_delta)."""
    images = levels.reshape(*levels.shape[:-1], height, width)
    source = torch.zeros_like(images)
    source[..., shift_row:, shift_col:] = images[..., : height - shift_row, : width - shift_col]
    return (source - images).reshape(levels.shape)


def soft_step(values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """s(u; t) = min(max(u - t, 0), 1) for every value and threshold: (V,) x (K, L) -> (K, V, L)."""
    return (values[None, :, None] - thresholds[:, None, :]).clamp(0.0, 1.0)


def joint_histogram(differences: torch.Tensor, levels: torch.Tensor, n_gray: int) -> torch.Tensor:
    """Counts of (difference, level) pairs over the pixels: (B, K, P) -> (B, K, 2 n_gray - 1, n_gray).

    Both inputs are integer-valued, so the NGLCM sum over pixels of s(d_p; lambda_k) s(a_p; theta_l)
    equals sum over value pairs of count(d, a) s(d; lambda_k) s(a; theta_l): the same number,
    computed from a (2n-1) x n table instead of n_gray x P ramp matrices per image."""
    b, k, _ = levels.shape
    cell = ((differences + (n_gray - 1)) * n_gray + levels).long().flatten(0, 1)
    counts = torch.zeros(b * k, (2 * n_gray - 1) * n_gray, dtype=levels.dtype, device=levels.device)
    counts.scatter_add_(1, cell, torch.ones_like(cell, dtype=levels.dtype))
    return counts.view(b, k, 2 * n_gray - 1, n_gray)


class NGLCM(nn.Module):
    """Learnable co-occurrence counts G = A Bm^T between difference levels and grey levels, one
    matrix per input plane (1 for the grey modes, 3 for per_channel), flattened into a ReLU head."""

    def __init__(self, hparams: HEXHparams, channels: int) -> None:
        super().__init__()
        self.hparams = hparams
        self.planes = channels if hparams.nglcm_input == "per_channel" else 1
        n = hparams.n_gray
        # Thresholds initialised U(0, n_gray) as in the reference.
        self.difference_thresholds = nn.Parameter(
            torch.rand(self.planes, n) * n, requires_grad=not hparams.freeze_nglcm
        )
        self.level_thresholds = nn.Parameter(torch.rand(self.planes, n) * n, requires_grad=not hparams.freeze_nglcm)
        self.head = nn.Linear(self.planes * n * n, hparams.nglcm_features)
        nn.init.trunc_normal_(self.head.weight, std=0.1, a=-0.2, b=0.2)
        nn.init.zeros_(self.head.bias)

    def planes_of(self, unit_images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pixels in [0, 1] -> (B, planes, H*W) integer grey levels."""
        b, c = unit_images.shape[:2]
        mode = self.hparams.nglcm_input
        if mode == "per_channel":
            pixels = unit_images.reshape(b, c, -1)
        elif c == 3:
            luma = unit_images.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
            pixels = (unit_images * luma).sum(1).reshape(b, 1, -1)
        else:
            pixels = unit_images.mean(1).reshape(b, 1, -1)
        return quantise(pixels, self.hparams.n_gray, per_image_max=mode == "gray_permax")

    def cooccurrence(self, unit_images: torch.Tensor) -> torch.Tensor:
        """(B, planes, n_gray, n_gray) soft co-occurrence matrices G = A Bm^T, with
        A_kp = s(d_p; lambda_k) and Bm_lp = s(a_p; theta_l) summed over the pixels p."""
        n = self.hparams.n_gray
        height, width = unit_images.shape[-2:]
        with torch.no_grad():  # integer preprocessing of the image: nothing to learn here
            levels = self.planes_of(unit_images.float())
            differences = shifted_difference(levels, height, width, self.hparams.shift_row, self.hparams.shift_col)
            counts = joint_histogram(differences, levels, n)
        difference_values = torch.arange(-(n - 1), n, dtype=counts.dtype, device=counts.device)
        level_values = torch.arange(n, dtype=counts.dtype, device=counts.device)
        ramp_d = soft_step(difference_values, self.difference_thresholds)  # (planes, 2n-1, n)
        ramp_a = soft_step(level_values, self.level_thresholds)  # (planes, n, n)
        return torch.einsum("pdk,bpda,pal->bpkl", ramp_d, counts, ramp_a)

    def forward(self, unit_images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.head(self.cooccurrence(unit_images).flatten(1)))


def project_out(joint_logits: torch.Tensor, superficial_logits: torch.Tensor, ridge: float) -> torch.Tensor:
    """F_L = F_A - F_G X with (F_G^T F_G + eps I) X = F_G^T F_A, in float64.

    Removes from every column of F_A its (ridge-regularised) least-squares fit by F_G's columns, i.e.
    (I - F_G (F_G^T F_G)^-1 F_G^T) F_A without forming the B x B projector."""
    with torch.autocast(device_type=joint_logits.device.type, enabled=False):
        f_a = joint_logits.double()
        f_g = superficial_logits.double()
        gram = f_g.T @ f_g
        c = gram.shape[0]
        eps = ridge * torch.diagonal(gram).sum() / c + torch.finfo(torch.float64).tiny ** 0.5
        solution = torch.linalg.solve(gram + eps * torch.eye(c, dtype=gram.dtype, device=gram.device), f_g.T @ f_a)
        return (f_a - f_g @ solution).to(joint_logits.dtype)


class HEXNetwork(nn.Module):
    """Backbone + NGLCM branch + the shared final layer on [h_A; h_G]."""

    def __init__(
        self,
        backbone: nn.Module,
        hparams: HEXHparams,
        channels: int,
        num_classes: int,
        unit_inputs: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.nglcm = NGLCM(hparams, channels)
        self.hparams = hparams
        self.unit_inputs = unit_inputs  # model inputs -> pixels in [0, 1], for the NGLCM
        self.main_features = backbone.classifier.in_features
        self.final = nn.Linear(self.main_features + hparams.nglcm_features, num_classes)
        self.dropout = nn.Dropout(hparams.dropout)

    def trainable_parameters(self) -> list[nn.Parameter]:
        # The backbone's own classifier is replaced by `final` and never used.
        unused = {id(p) for p in self.backbone.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in unused and p.requires_grad]

    def _normalise(self, features: torch.Tensor) -> torch.Tensor:
        mode = self.hparams.feature_norm
        if mode == "sample":
            return F.normalize(features, dim=1)
        if mode == "batch":
            return F.normalize(features, dim=0)
        return features

    def main_features_of(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self._normalise(self.backbone.features(x)))

    def logit_triplet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(F_A, F_G, F_P) from one shared final layer."""
        h_a = self.main_features_of(x)
        h_g = self._normalise(self.nglcm(self.unit_inputs(x)))
        weight_a = self.final.weight[:, : self.main_features]
        weight_g = self.final.weight[:, self.main_features :]
        main_part = h_a @ weight_a.T
        superficial_part = h_g @ weight_g.T
        bias = self.final.bias
        return main_part + superficial_part + bias, superficial_part + bias, main_part + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prediction logits F_P: main branch only, no NGLCM, no projection."""
        return F.linear(self.main_features_of(x), self.final.weight[:, : self.main_features], self.final.bias)


@register_method("hex")
class HEX(Method):
    supervision = Supervision.BIAS_TAILORED
    Hparams = HEXHparams
    search_space = {
        "ridge": lambda rng: float(10.0 ** rng.uniform(-6, -2)),
        "dropout": lambda rng: float(rng.choice([0.0, 0.25, 0.5])),
    }
    roles = ("main",)
    predictor_role = "main"
    drop_last = True  # the C x C solve needs B >> C; never a tiny final batch

    def __init__(self, hparams: HEXHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        backbone = ctx.model_factory()
        self.net = HEXNetwork(backbone, hparams, ctx.input_shape[0], ctx.num_classes, ctx.unit_inputs).to(ctx.device)
        self.nets["main"] = self.net
        self.optimizers["main"] = ctx.optimizer_factory(self.net.trainable_parameters())

    def train_step(self, batch: Batch) -> StepOutput:
        joint, superficial, main_only = self.net.logit_triplet(batch.x)
        projected = project_out(joint, superficial, self.hparams.ridge)
        loss = F.cross_entropy(projected, batch.y)
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        # Logged loss is the predictor's (F_P), matching what evaluation scores.
        per_sample = F.cross_entropy(main_only.detach(), batch.y, reduction="none")
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample})
