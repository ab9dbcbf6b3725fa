"""AND-mask (Parascandolo et al., ICLR 2021, "Learning explanations that are hard to vary";
docs/methods-beyond-the-paper.md): step only along the gradient components on which the environments agree in sign.

Environments: two, the bias-aligned and the bias-conflicting samples of the batch
(`environments="alignment"`, default; a class's aligned bias value is its most frequent one in the
training set), the bias values b present (`environments="bias"`), or the (target, bias) groups present
(`environments="group"`). Why not bias values or groups by default: the method assumes every
environment is a whole classification task. Under a strong bias each bias value, and each group,
holds (almost) one class, so the environments' gradients disagree in sign on nearly every component
and tau = 1 keeps almost nothing (measured on Colored MNIST at 95%: a kept fraction of 3e-7 with
bias values, 0 with groups, and chance accuracy; docs/methods-beyond-the-paper.md). The aligned and
conflicting sets each hold every class and differ only in how the colour relates to the digit: the
two-environment setting of the AND-mask and IRM papers. Per step, from one forward
pass over the batch:
    L_e  = mean CE over the batch samples of environment e,  for the E environments present
    g_e  = dL_e / dtheta                   (E backward passes, autograd.grad)
    m    = 1[ |(1/E) sum_e sign(g_e)| >= tau ]          element-wise
    g    = m * (1/E) sum_e g_e
    g   <- g / (mean(m) + 1e-10)   per parameter tensor, if `rescale` (the reference's
                                   scale_grad_inverse_sparsity: the kept fraction of that tensor)
g is written into .grad and the trial's optimiser steps. With tau = 1 a component survives only if
every environment pushes it the same way (a component that is exactly 0 in one environment, e.g.
behind a dead ReLU, is masked). A batch with a single environment keeps every non-zero component:
a plain gradient step, up to the rescaling when some components are exactly 0.

Supervision: bias labels (they define the environments).

Defaults: tau = 1 and rescaling on (DomainBed's ANDMask defaults; its search draws tau from
U(0.5, 1)). Deviations: the reference and DomainBed draw one equally sized minibatch per
environment; here the environments are whatever the trainer's uniformly shuffled batch contains
[inferred], and each present environment counts equally in the average whatever its number of
samples (as the reference's plain mean over environments). All three environment definitions are
[inferred]: the paper's benchmarks come with their environments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method

ENVIRONMENTS = ("bias", "group", "alignment")


@dataclass(frozen=True)
class ANDMaskHparams:
    tau: float = 1.0  # agreement threshold (DomainBed default)
    rescale: bool = True  # divide by the kept fraction of each tensor (DomainBed default)
    environments: str = "alignment"  # aligned/conflicting, "bias" values or (target, bias) "group"s [inferred]

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"tau must lie in [0, 1], got {self.tau}")
        if self.environments not in ENVIRONMENTS:
            raise ValueError(f"environments must be one of {', '.join(ENVIRONMENTS)}, got {self.environments!r}")


def and_mask(env_grads: torch.Tensor, tau: float, rescale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked mean gradient, mask) of one parameter tensor from its per-environment gradients,
    stacked along dimension 0 (shape (E, *param.shape))."""
    agreement = env_grads.sign().mean(0).abs()
    mask = (agreement >= tau).to(env_grads.dtype)
    grad = mask * env_grads.mean(0)
    if rescale:
        grad = grad / (mask.mean() + 1e-10)
    return grad, mask


@register_method("and_mask")
class ANDMask(Method):
    supervision = Supervision.BIAS_LABELS
    Hparams = ANDMaskHparams
    search_space = {"tau": lambda rng: float(rng.uniform(0.5, 1.0))}  # DomainBed's range
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: ANDMaskHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        if ctx.num_bias_values is None:
            raise ValueError("and_mask needs bias labels; the dataset has none")
        self.net = self.add_net("main")
        self.num_bias = ctx.num_bias_values
        self.num_environments = {
            "bias": ctx.num_bias_values,
            "group": ctx.num_bias_values * ctx.num_classes,
            "alignment": 2,
        }[hparams.environments]
        if hparams.environments == "alignment":
            if ctx.train_bias is None:
                raise ValueError("and_mask with environments='alignment' needs the training set's bias labels")
            # Each class's aligned bias value: its most frequent one among the training samples.
            cooccurrence = torch.zeros(ctx.num_classes, ctx.num_bias_values, device=ctx.device)
            cooccurrence.index_put_(
                (ctx.train_targets, ctx.train_bias),
                torch.ones(len(ctx.train_targets), device=ctx.device),
                accumulate=True,
            )
            self.register_buffer("aligned_bias", cooccurrence.argmax(1))
        self.register_buffer("kept_sum", torch.zeros((), device=ctx.device))
        self.register_buffer("kept_steps", torch.zeros((), device=ctx.device))

    def environment_of(self, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.hparams.environments == "group":
            return y * self.num_bias + b
        if self.hparams.environments == "alignment":
            return (b != self.aligned_bias[y]).long()  # 0 aligned, 1 conflicting
        return b

    def epoch_diagnostics(self) -> dict[str, float]:
        # Fraction of parameter components the mask let through, averaged over the epoch's steps.
        kept = float(self.kept_sum / self.kept_steps.clamp_min(1.0))
        self.kept_sum.zero_()
        self.kept_steps.zero_()
        return {"mask_kept_fraction": kept}

    def train_step(self, batch: Batch) -> StepOutput:
        if batch.bias is None:
            raise ValueError("and_mask received a batch without bias labels")
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        env = self.environment_of(batch.y, batch.bias)
        counts = torch.bincount(env, minlength=self.num_environments)
        present = torch.nonzero(counts).squeeze(1).tolist()  # one host sync: E varies per batch
        env_losses = [per_sample[env == e].mean() for e in present]
        params = [p for p in self.net.parameters() if p.requires_grad]
        per_env = [
            torch.autograd.grad(loss, params, retain_graph=i + 1 < len(env_losses), allow_unused=True)
            for i, loss in enumerate(env_losses)
        ]
        self.zero_grad_all()
        kept = torch.zeros((), device=per_sample.device)
        total = 0
        for index, param in enumerate(params):
            grads = [g[index] if g[index] is not None else torch.zeros_like(param) for g in per_env]
            grad, mask = and_mask(torch.stack(grads), self.hparams.tau, self.hparams.rescale)
            param.grad = grad
            kept += mask.sum()
            total += mask.numel()
        self.step_all()
        self.kept_sum += kept / max(total, 1)
        self.kept_steps += 1
        loss = torch.stack(env_losses).mean().detach()
        return StepOutput(loss=loss, per_sample_loss={"main": per_sample.detach()})
