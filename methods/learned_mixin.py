"""Learned-Mixin +H (Clark et al., EMNLP 2019; docs/methods-beyond-the-paper.md) with an LfF-style biased model as the
bias-only branch.

Two networks of the dataset's architecture: the main model f_D (the predictor) and a biased model
f_B trained with LfF's generalised cross-entropy (GCE), which makes it lean on whatever is easiest
to learn. A gate g(x) = softplus(w . h(x) + c), a linear layer on f_D's penultimate features h(x),
decides per sample how much to trust the bias branch. With log p_B = sg(log_softmax(f_B(x))):
    mixed(x)   = log_softmax(f_D(x)) + g(x) * log p_B(x)
    L_mix      = CE(mixed(x), y)                       (CE renormalises the mixed scores)
    L_H        = w_H * H(softmax(g(x) * log p_B(x)))   (entropy; stops g from collapsing to 0)
    L          = mean_B [GCE_q(f_B(x), y)] + mean_B [L_mix] + mean_B [L_H]
One backward; f_B gets gradients from GCE alone (log p_B is detached), f_D and the gate from the
mixed loss and the entropy term (the gate's gradient also flows into h(x), as in the reference,
where the gate reads the model's own hidden state). Prediction: f_D(x) alone, no gate, no bias term.

Supervision: none. The original method needs a bias-only model given from outside (a model of the
known bias, or bias labels); here the bias branch is learned from (x, y) alone by GCE, so nothing
about the bias is supplied: the method is as unsupervised as LfF, whose biased model it borrows.

Deviations from the reference (chrisc36/debias):
- The bias-only model is trained online with GCE alongside f_D, not pre-trained and frozen; early
  on log p_B is nearly uniform across classes, which softmax ignores, so the mixture starts as ERM.
- The gate is optimised by its own optimiser from the trial's factory (same type and settings as
  f_D's; per-parameter optimisers, so the update equals one optimiser over both).
- Clark et al.'s log-probability form is used, not the ReBias port's (gated bias logits added to
  f_D's raw logits).

`bias_smoothing` (alpha, default 0: the method as above) mixes the bias branch with the uniform
distribution, p_B' = (1 - alpha) p_B + alpha / K, before the mixture. It exists for one measured
failure (docs/methods-beyond-the-paper.md#learned_mixin): a GCE-trained f_B is not calibrated (on
Colored MNIST it gives the true class of a bias-conflicting sample log-probability near -77), and a
product of experts with such a branch teaches f_D to predict against the bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.losses import generalized_ce


@dataclass(frozen=True)
class LearnedMixinHparams:
    # Entropy weight. Default: the ReBias repository's LearnedMixin+H port, the nearest published
    # image setting (Clark et al. use 0.03 on MNLI, 2.0 on SQuAD) [inferred choice].
    entropy_weight: float = 0.36
    q: float = 0.7  # GCE exponent of the biased model (LfF's default)
    # Mix the bias branch with the uniform distribution (0: off, the method as published).
    bias_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.bias_smoothing < 1.0:
            raise ValueError(f"bias_smoothing must lie in [0, 1), got {self.bias_smoothing}")
        if self.entropy_weight < 0:
            raise ValueError(f"entropy_weight must be non-negative, got {self.entropy_weight}")
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"GCE q must lie in (0, 1], got {self.q}")


def mixed_log_scores(main_logits: torch.Tensor, bias_log_probs: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """log_softmax(f_D) + g * log p_B, with `gate` of shape (B,) (unnormalised: CE renormalises)."""
    return F.log_softmax(main_logits, dim=1) + gate[:, None] * bias_log_probs


def smoothed_log_probs(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """log((1 - alpha) softmax(logits) + alpha / K), computed in log space (alpha = 0: log_softmax)."""
    log_p = F.log_softmax(logits, dim=1)
    if alpha == 0.0:
        return log_p
    uniform = torch.full_like(log_p, math.log(alpha / logits.shape[1]))
    return torch.logaddexp(log_p + math.log1p(-alpha), uniform)


def scaled_bias_entropy(bias_log_probs: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Per-sample H(softmax(g * log p_B))."""
    log_q = F.log_softmax(gate[:, None] * bias_log_probs, dim=1)
    return -(log_q.exp() * log_q).sum(1)


@register_method("learned_mixin")
class LearnedMixin(Method):
    supervision = Supervision.NONE
    Hparams = LearnedMixinHparams
    search_space = {
        "entropy_weight": lambda rng: float(10.0 ** rng.uniform(-2, 0)),
        "q": lambda rng: float(rng.choice([0.3, 0.5, 0.7, 0.9])),
    }
    roles = ("main", "biased")
    predictor_role = "main"

    def __init__(self, hparams: LearnedMixinHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.main = self.add_net("main")
        self.biased = self.add_net("biased")
        self.gate = nn.Linear(self.main.classifier.in_features, 1).to(ctx.device)
        self.optimizers["gate"] = ctx.optimizer_factory(self.gate.parameters())
        self.register_buffer("gate_sum", torch.zeros((), device=ctx.device))
        self.register_buffer("gate_count", torch.zeros((), device=ctx.device))

    def gate_of(self, features: torch.Tensor) -> torch.Tensor:
        """g(x) = softplus(w . h(x) + c), shape (B,)."""
        return F.softplus(self.gate(features)).squeeze(1)

    def epoch_diagnostics(self) -> dict[str, float]:
        # The mean gate over the epoch: how much weight the bias branch got.
        mean = float(self.gate_sum / self.gate_count.clamp_min(1.0))
        self.gate_sum.zero_()
        self.gate_count.zero_()
        return {"mean_gate": mean}

    def train_step(self, batch: Batch) -> StepOutput:
        x, y = batch.x, batch.y
        features = self.main.features(x)
        logits_d = self.main.classifier(features)
        logits_b = self.biased(x)
        gate = self.gate_of(features)
        # f_B is shaped by GCE only: the mixture reads a detached copy.
        bias_log_probs = smoothed_log_probs(logits_b.detach(), self.hparams.bias_smoothing)
        mixed_ce = F.cross_entropy(mixed_log_scores(logits_d, bias_log_probs, gate), y, reduction="none")
        entropy = scaled_bias_entropy(bias_log_probs, gate)
        loss = (
            generalized_ce(logits_b, y, self.hparams.q).mean()
            + mixed_ce.mean()
            + self.hparams.entropy_weight * entropy.mean()
        )
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        with torch.no_grad():
            self.gate_sum += gate.sum()
            self.gate_count += gate.numel()
            ce_d = F.cross_entropy(logits_d, y, reduction="none")
            ce_b = F.cross_entropy(logits_b, y, reduction="none")
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": ce_d, "biased": ce_b})
