"""DANN with the bias attribute as the domain (Ganin et al., JMLR 2016; docs/methods-beyond-the-paper.md): an
adversarial head tries to predict the bias b from the main model's penultimate features h(x), and
a gradient-reversal layer (GRL) makes the feature extractor work against it.

GRL_lambda is the identity in the forward pass and multiplies the incoming gradient by -lambda in
the backward pass. With the main network split as f = classifier . features and an adversary
head D (an MLP on h), one step minimises
    L = (1/B) sum_i CE(classifier(h_i), y_i) + (1/B) sum_i CE(D(GRL_lambda(h_i)), b_i),  h_i = features(x_i)
in one backward pass. D's parameters get the ordinary gradient of the adversary loss (it learns to
predict b); the features get dCE_y/dh - lambda * dCE_b/dh (they learn y while removing what D
reads). Prediction: classifier(features(x)); D is never used at test time.

Supervision: bias labels (b is the adversary's target).

Defaults: lambda = 1 (DomainBed's DANN default); D is DomainBed's discriminator MLP, width 256,
depth 3 (Linear-ReLU-Linear-ReLU-Linear), no dropout.
Deviations from DomainBed (which alternates discriminator and generator steps): a GRL and one joint
step, which docs/methods-beyond-the-paper.md lists as the acceptable single-step form; D uses the trial's optimiser
factory (DomainBed: Adam with betas (0.5, 0.9)); lambda is constant (no Ganin schedule
2 / (1 + exp(-10 p)) - 1: the method does not know the training length); no gradient penalty.
The conditional variant (CDANN) is not implemented. Caveat: when b and y are nearly collinear
(the LfF datasets), removing b from h also removes much of y.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method


@dataclass(frozen=True)
class DANNHparams:
    grl_lambda: float = 1.0  # DomainBed's default `lambda`
    head_width: int = 256  # DomainBed's mlp_width
    head_depth: int = 3  # number of linear layers in D (DomainBed's mlp_depth); 1 = a linear head

    def __post_init__(self) -> None:
        if self.grl_lambda < 0:
            raise ValueError(f"grl_lambda must be non-negative, got {self.grl_lambda}")
        if self.head_width < 1 or self.head_depth < 1:
            raise ValueError("head_width and head_depth must be at least 1")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by -scale."""
    return _ReverseGradient.apply(x, scale)


def adversary_head(in_features: int, out_features: int, width: int, depth: int) -> nn.Sequential:
    """An MLP with `depth` linear layers and ReLUs between them."""
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth - 1):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


@register_method("dann")
class DANN(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = DANNHparams
    # DomainBed draws lambda from 10^U(-2, 2).
    search_space = {"grl_lambda": lambda rng: float(10.0 ** rng.uniform(-2, 2))}
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: DANNHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        if ctx.num_bias_values is None:
            raise ValueError("dann needs bias labels; the dataset has none")
        self.net = self.add_net("main")
        self.adversary = adversary_head(
            self.net.classifier.in_features, ctx.num_bias_values, hparams.head_width, hparams.head_depth
        ).to(ctx.device)
        self.optimizers["adversary"] = ctx.optimizer_factory(self.adversary.parameters())
        self.register_buffer("adversary_correct", torch.zeros((), device=ctx.device))
        self.register_buffer("adversary_seen", torch.zeros((), device=ctx.device))

    def epoch_diagnostics(self) -> dict[str, float]:
        # How well D reads b from h during training: near chance means the features hide b.
        accuracy = float(self.adversary_correct / self.adversary_seen.clamp_min(1.0))
        self.adversary_correct.zero_()
        self.adversary_seen.zero_()
        return {"adversary_bias_accuracy": accuracy}

    def train_step(self, batch: Batch) -> StepOutput:
        if batch.bias is None:
            raise ValueError("dann received a batch without bias labels")
        features = self.net.features(batch.x)
        per_sample = F.cross_entropy(self.net.classifier(features), batch.y, reduction="none")
        bias_logits = self.adversary(reverse_gradient(features, self.hparams.grl_lambda))
        adversary_loss = F.cross_entropy(bias_logits, batch.bias)
        loss = per_sample.mean() + adversary_loss
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        with torch.no_grad():
            self.adversary_correct += (bias_logits.argmax(1) == batch.bias).sum()
            self.adversary_seen += batch.bias.numel()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
