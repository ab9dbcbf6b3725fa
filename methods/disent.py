"""DisEnt: Learning Debiased Representation via Disentangled Feature Augmentation (Lee et al.,
NeurIPS 2021; docs/successors/disent.md).

Read from the official code, kakaoenterprise/Learning-Debiased-Disentangled at 7626f36:
`learner.py::train_ours` (the step), `learner.py::evaluate_ours` (the prediction), `train.py`
(argparse defaults), `scripts/run_cmnist_ours.sh` (the Colored MNIST command), `util.py::EMA` and
`module/loss.py::GeneralizedCELoss`.

Networks. Two encoders of the dataset's registered architecture, each a fresh `ctx.model_factory()`
used only through `features(x)` (its own `classifier` is never used nor trained): E_i (intrinsic)
and E_b (bias), z_i = E_i(x), z_b = E_b(x), each d = classifier.in_features wide. Two heads
C_i, C_b = nn.Linear(2d, C) read the concatenation. Role "intrinsic" is (E_i, C_i), role "bias"
is (E_b, C_b); each has its own optimiser, as the official model_l / model_b.

One step on a batch (x, y, index), t = the 0-based global step index (the `step` buffer):
  z_conf = [z_i, sg(z_b)], z_align = [sg(z_i), z_b]
  CE_i = CE(C_i(z_conf), y), CE_b = CE(C_b(z_align), y)            (per sample)
  EMAs e_i, e_b of sg(CE_i), sg(CE_b) per sample (LfF's rule: first visit stores the loss), each
  divided by its class-wise maximum over the training set; W = e_b / (e_b + e_i + 1e-8), a constant
  (LfF's `relative_difficulty`, reused).
  L_dis  = mean(W * CE_i) + lambda_dis_align * mean(GCE_q(C_b(z_align), y))
  if t > curr_step (the official `step > args.curr_step`): a permutation pi of the batch,
      z_b~ = z_b[pi], y~ = y[pi],
      L_swap = mean(W * CE(C_i([z_i, sg(z_b~)]), y)) + lambda_swap_align * mean(GCE_q(C_b([sg(z_i), z_b~]), y~))
      L = L_dis + lambda_swap * L_swap
  else L = L_dis.
  One backward, both optimisers step. GCE is the LfF form CE * q * sg(p_y)^q (methods/losses.py).
Prediction: C_i([z_i, z_b]) for role "intrinsic" (the predictor; official `evaluate_ours`), and
C_b([z_i, z_b]) for role "bias", logged by the trainer like any role.

Steps, not epochs. The official code counts optimiser steps: 50,000 in all, the swap from
`curr_step` = 10,000, and (with --use_lr_decay) StepLR(10,000, gamma 0.5) stepped after every step
with t >= curr_step. Here the `step` buffer counts this method's optimiser steps across epochs (so a
resumed trial continues it), and the rule above is the official one, step for step. Under this
suite's Colored MNIST protocol (60,000 training images, batch 256, the last batch kept) an epoch is
ceil(60000 / 256) = 235 steps and 100 epochs are 23,500 steps: the swap starts at step index
10,001, in epoch 43 of 100 (at 42.6% of training, where the official run has it at 20%); under the
validation protocol (54,000 images) an epoch is 211 steps and the swap starts in epoch 48. Set
`curr_step` for another warm-up (e.g. 4,700 = 20% of 23,500).

Learning rate: the protocol's optimiser and rate by default. The official Colored MNIST command
(lr 0.01, StepLR every 10,000 steps x0.5 once t >= curr_step) is a named option: `lr=0.01,
lr_decay_step=10000, lr_gamma=0.5`. With `lr_decay_step` set, the rate of the update at step t is
lr0 * lr_gamma ** (max(0, t - curr_step) // lr_decay_step), which is what the official StepLR gives
(its scheduler has been stepped max(0, t - curr_step) times before update t); it is computed from
the `step` buffer, so it needs no scheduler state to resume.

Defaults (Colored MNIST, `scripts/run_cmnist_ours.sh` and `train.py`): lambda_dis_align 10,
lambda_swap_align 10, lambda_swap 1, curr_step 10000, q 0.7 (hard-coded in `train_ours`),
ema_alpha 0.7 (`--ema_alpha`). Corrupted CIFAR-10 in the official scripts uses lambda_dis_align =
lambda_swap_align = 1 (0.5 pct, 5 pct) or 5 (1, 2 pct); pass them with --method-param.

Deviations: the encoders are the suite's registered networks (Colored MNIST: the LfF MLP, d = 100,
not MLP_DISENTANGLE's 100-100-16 with d = 16; Corrupted CIFAR-10: ResNet-20, d = 64, not a
from-scratch ResNet-18); the protocol's optimiser, rate, epochs and batches (the last, smaller
batch of an epoch is kept; the official loader drops it); the permutation is drawn from torch's
global generator on the CPU (the official code uses numpy's), so a resumed trial draws the same
ones; W's class maximum is guarded only against 0/0, as in methods/lff.py. No checkpoint is
selected: the suite reports the last epoch (the official code keeps the best test accuracy).
Supervision: none. Bias labels are never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.lff import LfF
from debiasbench.methods.losses import generalized_ce


@dataclass(frozen=True)
class DisEntHparams:
    lambda_dis_align: float = 10.0  # lambda_dis in Eq. 2 (run_cmnist_ours.sh)
    lambda_swap_align: float = 10.0  # lambda_swap_b in Eq. 3 (run_cmnist_ours.sh)
    lambda_swap: float = 1.0  # lambda_swap in Eq. 4 (run_cmnist_ours.sh)
    curr_step: int = 10_000  # swap when the 0-based step index exceeds this (run_cmnist_ours.sh)
    q: float = 0.7  # GCE exponent of the bias branch (hard-coded in train_ours)
    ema_alpha: float = 0.7  # per-sample loss EMA decay (train.py --ema_alpha)
    lr: float | None = None  # None: the protocol's rate; the official Colored MNIST rate is 0.01
    lr_decay_step: int | None = None  # None: no decay; official (with --use_lr_decay) 10000
    lr_gamma: float = 0.5  # official Colored MNIST --lr_gamma (train.py's default is 0.1)

    def __post_init__(self) -> None:
        for name in ("lambda_dis_align", "lambda_swap_align", "lambda_swap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.curr_step < 0:
            raise ValueError(f"curr_step must be a non-negative step count, got {self.curr_step}")
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"GCE q must lie in (0, 1], got {self.q}")
        if not 0.0 <= self.ema_alpha < 1.0:
            raise ValueError(f"ema_alpha must lie in [0, 1), got {self.ema_alpha}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive or None (the protocol's), got {self.lr}")
        if self.lr_decay_step is not None and self.lr_decay_step < 1:
            raise ValueError(
                f"lr_decay_step must be a positive step count or None (no decay), got {self.lr_decay_step}"
            )
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"lr_gamma must lie in (0, 1], got {self.lr_gamma}")


class DisentangledBranch(nn.Module):
    """One encoder of the registered architecture and a head over the concatenated features."""

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not isinstance(getattr(encoder, "classifier", None), nn.Linear):
            raise TypeError(
                f"{type(encoder).__name__} has no nn.Linear `classifier`; DisEnt needs a registered model "
                "following models.FeatureModel (features(x) and classifier)"
            )
        self.encoder = encoder
        self.width = encoder.classifier.in_features
        self.head = nn.Linear(2 * self.width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the encoder's own classifier, which DisEnt never uses."""
        unused = {id(p) for p in self.encoder.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in unused]


def swapped_rate(base: float, step: int, curr_step: int, decay_step: int | None, gamma: float) -> float:
    """The rate of the update at 0-based step `step` under the official StepLR, which is stepped
    after every update with step >= curr_step: base * gamma ** (max(0, step - curr_step) // decay_step)."""
    if decay_step is None:
        return base
    return base * gamma ** (max(0, step - curr_step) // decay_step)


@register_method("disent")
class DisEnt(Method):
    supervision = Supervision.NONE
    Hparams = DisEntHparams
    # [inferred] around the official values (CMNIST 10/10/1, CIFAR10C 1 or 5, BFFHQ 2 and 0.1).
    search_space = {
        "lambda_dis_align": lambda rng: float(rng.choice([1.0, 2.0, 5.0, 10.0])),
        "lambda_swap_align": lambda rng: float(rng.choice([1.0, 2.0, 5.0, 10.0])),
        "lambda_swap": lambda rng: float(rng.choice([0.1, 0.5, 1.0])),
        "curr_step": lambda rng: int(rng.choice([0, 2_000, 5_000, 10_000])),
        "ema_alpha": lambda rng: float(rng.choice([0.5, 0.7, 0.9])),
    }
    roles = ("intrinsic", "bias")
    predictor_role = "intrinsic"

    # LfF's EMA and relative-difficulty pieces, reused on this method's buffers of the same names.
    _update_ema = LfF._update_ema
    _normalised = LfF._normalised
    relative_difficulty = LfF.relative_difficulty

    def __init__(self, hparams: DisEntHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        for role in self.roles:
            branch = DisentangledBranch(ctx.model_factory(), ctx.num_classes).to(ctx.device)
            self.nets[role] = branch
            params = branch.trainable_parameters()
            # Only pass lr= when asked: the protocol's factory then keeps its own rate.
            self.optimizers[role] = (
                ctx.optimizer_factory(params) if hparams.lr is None else ctx.optimizer_factory(params, lr=hparams.lr)
            )
        self.intrinsic_branch: DisentangledBranch = self.nets["intrinsic"]
        self.bias_branch: DisentangledBranch = self.nets["bias"]
        # The rates the optimisers were built with: the decay rule scales these.
        self._base_rates = {role: [g["lr"] for g in opt.param_groups] for role, opt in self.optimizers.items()}
        n, device = ctx.num_train, ctx.device
        # ema_debiased tracks the intrinsic head (official sample_loss_ema_d), ema_biased the bias head.
        self.register_buffer("ema_biased", torch.zeros(n, device=device))
        self.register_buffer("ema_debiased", torch.zeros(n, device=device))
        self.register_buffer("seen", torch.zeros(n, device=device))
        self.register_buffer("step", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("swap_steps", torch.zeros((), dtype=torch.long, device=device))

    def swap_permutation(self, n: int) -> torch.Tensor:
        """The batch permutation of the swap. Drawn on the CPU from torch's global generator (the
        trainer checkpoints its state; a CUDA draw would not resume exactly). Tests replace it."""
        return torch.randperm(n)

    def _set_rates(self, step: int) -> None:
        h = self.hparams
        for role, optimizer in self.optimizers.items():
            for group, base in zip(optimizer.param_groups, self._base_rates[role]):
                group["lr"] = swapped_rate(base, step, h.curr_step, h.lr_decay_step, h.lr_gamma)

    def train_step(self, batch: Batch) -> StepOutput:
        h, index, x, y = self.hparams, batch.index, batch.x, batch.y
        step = int(self.step)
        z_i = self.intrinsic_branch.features(x)
        z_b = self.bias_branch.features(x)
        # Each head's gradient reaches only its own encoder: the other half is detached.
        logits_conf = self.intrinsic_branch.head(torch.cat([z_i, z_b.detach()], dim=1))
        logits_align = self.bias_branch.head(torch.cat([z_i.detach(), z_b], dim=1))
        ce_i = F.cross_entropy(logits_conf, y, reduction="none")
        ce_b = F.cross_entropy(logits_align, y, reduction="none")

        self._update_ema(self.ema_debiased, index, ce_i.detach())
        self._update_ema(self.ema_biased, index, ce_b.detach())
        self.seen[index] = 1.0
        weight = self.relative_difficulty(index, y)  # from detached tables: a constant

        loss = (weight * ce_i).mean() + h.lambda_dis_align * generalized_ce(logits_align, y, h.q).mean()
        if step > h.curr_step:  # the official `step > args.curr_step`
            perm = self.swap_permutation(len(y)).to(y.device)
            z_b_swap, y_swap = z_b[perm], y[perm]
            logits_swap_conf = self.intrinsic_branch.head(torch.cat([z_i, z_b_swap.detach()], dim=1))
            logits_swap_align = self.bias_branch.head(torch.cat([z_i.detach(), z_b_swap], dim=1))
            loss_swap = (weight * F.cross_entropy(logits_swap_conf, y, reduction="none")).mean()
            loss_swap = loss_swap + h.lambda_swap_align * generalized_ce(logits_swap_align, y_swap, h.q).mean()
            loss = loss + h.lambda_swap * loss_swap
            self.swap_steps += 1

        self._set_rates(step)
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        self.step += 1
        return StepOutput(loss=loss.detach(), per_sample_loss={"intrinsic": ce_i.detach(), "bias": ce_b.detach()})

    def logits(self, x: torch.Tensor, role: str) -> torch.Tensor:
        """C_role([z_i, z_b]): the official `evaluate_ours` (model='label' for intrinsic, 'bias' for bias)."""
        z = torch.cat([self.intrinsic_branch.features(x), self.bias_branch.features(x)], dim=1)
        return self.nets[role].head(z)

    def epoch_diagnostics(self) -> dict[str, float]:
        """Optimiser steps so far and how many of them swapped features (0 until curr_step)."""
        return {"steps": float(self.step), "swap_steps": float(self.swap_steps)}
