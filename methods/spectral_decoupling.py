"""Spectral Decoupling (Pezeshki et al., NeurIPS 2021; docs/methods-beyond-the-paper.md): cross-entropy plus an L2
penalty on the network's logits, which keeps a feature learnt early (the shortcut) from starving
the gradient of the others.

Per step, with z_i = f(x_i) in R^C the logits of sample i and B the batch size:
    L = (1/B) sum_i CE(z_i, y_i) + (lambda / 2) * (1/B) sum_i ||z_i||_2^2
so dL/dz_i = (softmax(z_i) - onehot(y_i)) / B + lambda * z_i / B.

Normalisation: the squared norm is summed over the C logits of a sample and averaged over the
batch, exactly the paper's (lambda/2) ||y_hat||^2 applied per sample and averaged like the
cross-entropy, so both terms scale the same way with B and the gradient on each logit is simply
lambda * z / B. DomainBed's `SD` instead averages z^2 over all B x C entries
(sd_reg * mean z^2), which equals this penalty with lambda = 2 * sd_reg / C.

Supervision: none.

Defaults: lambda = 0.1, the coefficient of the paper's CelebA experiment and DomainBed's default
sd_reg; neither uses exactly this normalisation, so the value is [inferred] as a starting point.
The plain version is used: no per-class logit targets gamma (the paper's CelebA run shifts the
single logit toward class-specific targets), and no delayed-penalty schedule (its Colored-MNIST
script); weight decay comes from the dataset's protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method


@dataclass(frozen=True)
class SpectralDecouplingHparams:
    sd_lambda: float = 0.1  # [inferred] see the module docstring

    def __post_init__(self) -> None:
        if self.sd_lambda < 0:
            raise ValueError(f"sd_lambda must be non-negative, got {self.sd_lambda}")


def logit_penalty(logits: torch.Tensor, sd_lambda: float) -> torch.Tensor:
    """(lambda / 2) * mean over the batch of the squared L2 norm of each sample's logits."""
    return 0.5 * sd_lambda * logits.float().pow(2).sum(1).mean()


@register_method("spectral_decoupling")
class SpectralDecoupling(Method):
    supervision = Supervision.NONE
    Hparams = SpectralDecouplingHparams
    # docs/methods-beyond-the-paper.md's recommended range for these datasets [inferred].
    search_space = {"sd_lambda": lambda rng: float(10.0 ** rng.uniform(-3, -1))}
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: SpectralDecouplingHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")
        self.register_buffer("penalty_sum", torch.zeros((), device=ctx.device))
        self.register_buffer("steps", torch.zeros((), device=ctx.device))

    def epoch_diagnostics(self) -> dict[str, float]:
        mean = float(self.penalty_sum / self.steps.clamp_min(1.0))
        self.penalty_sum.zero_()
        self.steps.zero_()
        return {"mean_logit_penalty": mean}

    def train_step(self, batch: Batch) -> StepOutput:
        logits = self.net(batch.x)
        per_sample = F.cross_entropy(logits, batch.y, reduction="none")
        penalty = logit_penalty(logits, self.hparams.sd_lambda)
        loss = per_sample.mean() + penalty
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        self.penalty_sum += penalty.detach()
        self.steps += 1
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
