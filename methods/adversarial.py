"""Adversarial training (Goodfellow, Shlens and Szegedy, ICLR 2015; Madry et al., ICLR 2018 for the
iterated attack; docs/methods-beyond-the-paper.md#adversarial): a fraction of every batch is
replaced by perturbed copies that raise the loss, as the background notes describe.

Perturbations live in pixel units: u = unit(x) in [0, 1]; the perturbed input is
x' = inputs(clip(u + delta, 0, 1)) with ||delta||_inf <= epsilon, whatever the dataset's input
scaling and normalisation (Colored MNIST's reference scaling maps pixels to [0, 1/255]).
- "fgsm" (`steps` = 1): delta = epsilon * sign(grad_u CE(f(x), y)), from the clean input.
- "pgd" (`steps` > 1): a uniform random start in the epsilon-ball, then `steps` ascent steps of
  size `step_size` * epsilon along the gradient's sign, each projected back onto the ball and
  [0, 1].
One step on a batch of size B: the first round(mix_fraction * B) samples of the (shuffled) batch
are perturbed against the current network, in eval mode and without a parameter gradient; the
network then takes one CE step on the mixed batch (Goodfellow's objective
alpha * J(x) + (1 - alpha) * J(x') with alpha = 1 - mix_fraction, as a mixture of samples).

Supervision: none. Defaults: epsilon = 0.25 and mix_fraction = 0.5 are Goodfellow et al.'s MNIST
values (alpha = 0.5); the PGD step size epsilon / 4 is inferred (Madry et al. use 0.01 for
epsilon 0.3 over 40 steps). Adversarial training is built for robustness to small worst-case
perturbations, not to remove a shortcut feature: docs say what it does to bias, measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class AdversarialHparams:
    attack: str = "fgsm"
    epsilon: float = 0.25  # pixel units in [0, 1] (Goodfellow et al., MNIST)
    steps: int = 1  # ascent steps; "pgd" needs more than 1
    step_size: float = 0.25  # PGD step, as a fraction of epsilon [inferred]
    mix_fraction: float = 0.5  # share of each batch replaced by adversarial copies (alpha = 0.5)

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {self.attack!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon is in pixel units and must lie in [0, 1], got {self.epsilon}")
        if self.attack == "fgsm" and self.steps != 1:
            raise ValueError(f"fgsm takes exactly 1 step, got steps={self.steps}; use attack=pgd for more")
        if self.attack == "pgd" and self.steps < 2:
            raise ValueError(f"pgd needs steps >= 2, got {self.steps}; use attack=fgsm for one step")
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"step_size is a fraction of epsilon in (0, 1], got {self.step_size}")
        if not 0.0 <= self.mix_fraction <= 1.0:
            raise ValueError(f"mix_fraction must lie in [0, 1], got {self.mix_fraction}")


def _input_gradient(net, unit, to_inputs, y) -> torch.Tensor:
    unit = unit.detach().requires_grad_(True)
    loss = F.cross_entropy(net(to_inputs(unit)), y)
    (grad,) = torch.autograd.grad(loss, unit)
    return grad


def perturb(net, x, y, hparams: AdversarialHparams, to_unit, to_inputs) -> torch.Tensor:
    """Adversarial copies of the model inputs `x` (see the module docstring); no parameter grads."""
    clean = to_unit(x).detach()
    eps = hparams.epsilon
    if hparams.attack == "fgsm":
        unit = clean + eps * _input_gradient(net, clean, to_inputs, y).sign()
    else:
        unit = (clean + torch.empty_like(clean).uniform_(-eps, eps)).clamp(0.0, 1.0)
        for _ in range(hparams.steps):
            unit = unit + hparams.step_size * eps * _input_gradient(net, unit, to_inputs, y).sign()
            unit = torch.min(torch.max(unit, clean - eps), clean + eps).clamp(0.0, 1.0)
    return to_inputs(unit.clamp(0.0, 1.0)).detach()


@register_method("adversarial")
class Adversarial(Method):
    supervision = Supervision.NONE
    Hparams = AdversarialHparams
    search_space = {
        "epsilon": lambda rng: float(rng.choice([0.05, 0.1, 0.25, 0.3])),
        "mix_fraction": lambda rng: float(rng.choice([0.25, 0.5, 1.0])),
    }
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: AdversarialHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        if ctx.model_inputs is None:
            raise ValueError("adversarial needs the pixel-to-input map in its context (ctx.model_inputs)")
        self.net = self.add_net("main")
        self.register_buffer("perturbation_sum", torch.zeros((), device=ctx.device))
        self.register_buffer("perturbed", torch.zeros((), device=ctx.device))

    def train_step(self, batch: Batch) -> StepOutput:
        x = batch.x
        count = round(self.hparams.mix_fraction * len(batch.y))
        if count and self.hparams.epsilon > 0:
            was_training = self.net.training
            self.net.eval()  # the attack must not move BatchNorm statistics
            adversarial = perturb(
                self.net, x[:count], batch.y[:count], self.hparams, self.ctx.unit_inputs, self.ctx.model_inputs
            )
            self.net.train(was_training)
            self.perturbation_sum += (self.ctx.unit_inputs(adversarial) - self.ctx.unit_inputs(x[:count])).abs().mean()
            self.perturbed += 1
            x = torch.cat([adversarial, x[count:]])
        per_sample = F.cross_entropy(self.net(x), batch.y, reduction="none")
        loss = per_sample.mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})

    def epoch_diagnostics(self) -> dict[str, float]:
        """The mean absolute pixel change of the perturbed samples this epoch (at most epsilon)."""
        mean = float(self.perturbation_sum / self.perturbed.clamp_min(1))
        self.perturbation_sum.zero_()
        self.perturbed.zero_()
        return {"mean_abs_perturbation": mean}
