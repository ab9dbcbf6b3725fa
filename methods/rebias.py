"""ReBias (Bahng et al., ICML 2020; docs/methods.md#rebias): train the target network f to be statistically
independent, in the HSIC sense, of a biased network g drawn from a family G that can represent
the bias but not the signal (small receptive fields), while g is trained to catch up with f.

Per batch, in order:
  1. g step: L_g = CE(g(x), y) - lambda_g * HSIC_1(feat_g(x), sg(feat_f(x))); step g only.
  2. f step, with the freshly updated g: L_f = CE(f(x), y) + lambda_f * HSIC_1(feat_f(x), sg(feat_g(x)));
     step f only.
f's forward pass is computed once and reused by both steps: f's parameters do not change in
between, so its features are those the reference's second forward pass would give.

Kernel widths: fixed, or the median heuristic (sigma = sqrt(median squared pairwise feature
distance)) computed before the first epoch and, by default, again before every epoch over a
fraction of the training set, under no_grad. The biased family is chosen from the input size
unless `biased_net` names one: pixel-wise 1x1 convolutions for 28x28 (Colored MNIST), one 3x3 then
1x1 convolutions for 32x32 (Corrupted CIFAR-10), BagNet-18 for larger natural images (BAR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.hsic import hsic_rbf, median_sigma, squared_distances
from debiasbench.models import MODELS, build_model

# Presets of the biased family G: (registered model, keyword arguments).
BIASED_NETS: dict[str, tuple[str, dict[str, Any]]] = {
    "conv1x1": ("simple_convnet", {"kernel_sizes": (1, 1, 1, 1), "widths": (16, 32, 64, 128)}),
    "conv3x3_1x1": ("simple_convnet", {"kernel_sizes": (3, 1, 1, 1), "widths": (16, 32, 64, 64)}),
    "bagnet18": ("bagnet18", {}),
}
SIGMA_CHUNK = 256  # samples per block of pairwise distances in the median heuristic
SIGMA_MODES = ("median",)
SIGMA_PAIRINGS = ("reference", "own")
MEDIAN_BN_MODES = ("batch", "eval")


@dataclass(frozen=True)
class ReBiasHparams:
    lambda_f: float = 1.0  # weight of HSIC in f's loss (minimised)
    lambda_g: float = 1.0  # weight of HSIC in g's loss (maximised)
    sigma: float | str = "median"  # RBF width: "median" heuristic, or a fixed positive number
    sigma_update_fraction: float = 0.25  # fraction of the training set the median is taken over
    sigma_update_per_epoch: bool = True  # recompute the median widths before every epoch
    # "reference": like clovaai/rebias, the g step kernelises g's features with f's width and f's
    # with g's (both criteria share one (sigma_x, sigma_y) pair); "own": each with its own width.
    sigma_pairing: str = "reference"
    # Features for the median: "batch" = train-mode BatchNorm (the statistics training uses), with
    # running statistics restored afterwards; "eval" = running statistics.
    median_bn_mode: str = "batch"
    biased_net: str = "auto"  # "auto", a preset (conv1x1, conv3x3_1x1, bagnet18) or a registered model
    update_g_cls: bool = True  # g also minimises its cross-entropy (the reference default)

    def __post_init__(self) -> None:
        if isinstance(self.sigma, str):
            if self.sigma not in SIGMA_MODES:
                raise ValueError(f"sigma must be 'median' or a positive number, got {self.sigma!r}")
        elif not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma must be 'median' or a positive number, got {self.sigma!r}")
        if not 0.0 < self.sigma_update_fraction <= 1.0:
            raise ValueError(f"sigma_update_fraction must lie in (0, 1], got {self.sigma_update_fraction}")
        if self.sigma_pairing not in SIGMA_PAIRINGS:
            raise ValueError(f"sigma_pairing must be one of {', '.join(SIGMA_PAIRINGS)}, got {self.sigma_pairing!r}")
        if self.median_bn_mode not in MEDIAN_BN_MODES:
            raise ValueError(f"median_bn_mode must be one of {', '.join(MEDIAN_BN_MODES)}, got {self.median_bn_mode!r}")
        if self.biased_net != "auto" and self.biased_net not in BIASED_NETS and self.biased_net not in MODELS:
            raise ValueError(
                f"unknown biased_net {self.biased_net!r}; use auto, one of "
                f"{', '.join(BIASED_NETS)}, or a registered model ({', '.join(MODELS.names())})"
            )


def auto_biased_net(input_shape: tuple[int, ...]) -> str:
    """The biased family for inputs of shape (C, H, W)."""
    side = min(input_shape[-2:])
    if side <= 28:
        return "conv1x1"
    if side <= 32:
        return "conv3x3_1x1"
    return "bagnet18"


def build_biased_net(name: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    if name == "auto":
        name = auto_biased_net(input_shape)
    if name in BIASED_NETS:
        model, kwargs = BIASED_NETS[name]
        return build_model(model, num_classes, in_channels=input_shape[0], **kwargs)
    return build_model(name, num_classes)


def _forward(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = net.features(x)
    return net.classifier(features), features


@register_method("rebias")
class ReBias(Method):
    supervision = Supervision.BIAS_TAILORED
    Hparams = ReBiasHparams
    search_space = {
        "lambda_f": lambda rng: float(10 ** rng.uniform(-1, 1)),
        "lambda_g": lambda rng: float(10 ** rng.uniform(-1, 1)),
    }
    roles = ("main", "biased")
    predictor_role = "main"
    drop_last = True  # HSIC_1 needs full batches (more than 3 samples)

    def __init__(self, hparams: ReBiasHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.f = self.add_net("main")
        self.g = build_biased_net(hparams.biased_net, ctx.num_classes, ctx.input_shape).to(ctx.device)
        self.nets["biased"] = self.g
        self.optimizers["biased"] = ctx.optimizer_factory(self.g.parameters())
        fixed = float(hparams.sigma) if not isinstance(hparams.sigma, str) else 1.0
        self.register_buffer("sigma_f", torch.tensor(fixed, device=ctx.device))
        self.register_buffer("sigma_g", torch.tensor(fixed, device=ctx.device))
        # Drawn from the trial-seeded global generator: the median's sample is reproducible and,
        # being a function of (this seed, epoch), the same after a resume.
        self.register_buffer("sigma_seed", torch.randint(0, 2**62, ()))

    # -- kernel widths --------------------------------------------------------------------
    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        if self.hparams.sigma == "median" and (epoch == 0 or self.hparams.sigma_update_per_epoch):
            self.update_sigma(epoch)
        return None  # the trainer's uniform permutation

    @torch.no_grad()
    def update_sigma(self, epoch: int) -> None:
        """Median-heuristic widths for f and g over a seeded sample of training inputs."""
        n = self.ctx.num_train
        chunk = min(SIGMA_CHUNK, n)
        chunks = max(1, math.ceil(self.hparams.sigma_update_fraction * n / chunk))
        sampler = torch.Generator().manual_seed(int(self.sigma_seed) + epoch)
        order = torch.randperm(n, generator=sampler)[: chunks * chunk].to(self.ctx.device)
        distances: dict[str, list[torch.Tensor]] = {"f": [], "g": []}
        saved = {name: [b.detach().clone() for b in net.buffers()] for name, net in (("f", self.f), ("g", self.g))}
        was_training = self.training
        self.train(self.hparams.median_bn_mode == "batch")
        try:
            for start in range(0, len(order), chunk):
                index = order[start : start + chunk]
                if len(index) < 2:
                    continue
                x = self.ctx.train_inputs(index)
                distances["f"].append(squared_distances(self.f.features(x).float()))
                distances["g"].append(squared_distances(self.g.features(x).float()))
        finally:
            # Train-mode passes would move BatchNorm running statistics: put them back.
            for name, net in (("f", self.f), ("g", self.g)):
                for buffer, value in zip(net.buffers(), saved[name]):
                    buffer.copy_(value)
            self.train(was_training)
        self.sigma_f.copy_(median_sigma(distances["f"]))
        self.sigma_g.copy_(median_sigma(distances["g"]))

    def _widths(self, step: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(width for the first argument, width for the second) of HSIC in the g or f step."""
        if self.hparams.sigma_pairing == "reference":
            return self.sigma_f, self.sigma_g  # the reference passes (sigma_x, sigma_y) as is in both steps
        return (self.sigma_g, self.sigma_f) if step == "g" else (self.sigma_f, self.sigma_g)

    # -- training -------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> StepOutput:
        x, y = batch.x, batch.y
        if x.shape[0] <= 3:
            raise ValueError(f"ReBias's HSIC estimator needs batches of more than 3 samples, got {x.shape[0]}")
        logits_f, feat_f = _forward(self.f, x)

        # g step: fit y while making g's features as dependent on f's as G allows.
        logits_g, feat_g = _forward(self.g, x)
        ce_g = F.cross_entropy(logits_g, y, reduction="none")
        width_g, width_f = self._widths("g")
        hsic_g = hsic_rbf(feat_g, feat_f.detach(), width_g, width_f)
        loss_g = -self.hparams.lambda_g * hsic_g
        if self.hparams.update_g_cls:
            loss_g = loss_g + ce_g.mean()
        self.optimizers["biased"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizers["biased"].step()

        # f step against the updated g (train mode, as the reference, so g's BatchNorm sees it).
        with torch.no_grad():
            feat_g_new = self.g.features(x)
        ce_f = F.cross_entropy(logits_f, y, reduction="none")
        width_f, width_g = self._widths("f")
        hsic_f = hsic_rbf(feat_f, feat_g_new, width_f, width_g)
        loss_f = ce_f.mean() + self.hparams.lambda_f * hsic_f
        self.optimizers["main"].zero_grad(set_to_none=True)
        loss_f.backward()
        self.optimizers["main"].step()
        return StepOutput(loss=loss_f.detach(), per_sample_loss={"main": ce_f.detach(), "biased": ce_g.detach()})
