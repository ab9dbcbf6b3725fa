"""Learning from Failure (Nam et al., 2020) and its LfF-CE ablation (docs/methods.md#lff-and-lff-ce).

Two networks of the same architecture: a biased f_B trained with GCE (or CE for the ablation) and
a debiased f_D trained with CE weighted by the relative difficulty score
W = e_B / (e_B + e_D), where e_* are per-sample CE EMAs normalised by their class-wise maximum.
All per-sample state lives on the training device; the class-wise max is one scatter_reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.losses import generalized_ce


@dataclass(frozen=True)
class LfFHparams:
    q: float = 0.7  # GCE exponent
    ema_alpha: float = 0.7  # decay of the per-sample loss EMA
    biased_loss: str = "gce"  # "gce" (LfF) or "ce" (the LfF-CE ablation, Table 4)

    def __post_init__(self) -> None:
        if self.biased_loss not in ("gce", "ce"):
            raise ValueError(f"biased_loss must be 'gce' or 'ce', got {self.biased_loss!r}")
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"GCE q must lie in (0, 1], got {self.q}")
        if not 0.0 <= self.ema_alpha < 1.0:
            raise ValueError(f"ema_alpha must lie in [0, 1), got {self.ema_alpha}")


def class_max(values: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """max over {j : classes_j = c} of values_j, for every class c (0 for an empty class)."""
    out = torch.zeros(num_classes, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, classes, values, reduce="amax", include_self=True)


@register_method("lff")
class LfF(Method):
    supervision = Supervision.NONE
    Hparams = LfFHparams
    search_space = {
        "q": lambda rng: float(rng.choice([0.3, 0.5, 0.7, 0.9])),
        "ema_alpha": lambda rng: float(rng.choice([0.5, 0.7, 0.9, 0.99])),
    }
    roles = ("debiased", "biased")
    predictor_role = "debiased"

    def __init__(self, hparams: LfFHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.biased = self.add_net("biased")
        self.debiased = self.add_net("debiased")
        n, device = ctx.num_train, ctx.device
        self.register_buffer("ema_biased", torch.zeros(n, device=device))
        self.register_buffer("ema_debiased", torch.zeros(n, device=device))
        # The reference keeps one `updated` vector per EMA; both are always updated at the same
        # indices, so one shared vector is the same state.
        self.register_buffer("seen", torch.zeros(n, device=device))

    def _update_ema(self, table: torch.Tensor, index: torch.Tensor, loss: torch.Tensor) -> None:
        alpha = self.hparams.ema_alpha
        # First visit stores the loss itself; later visits blend: alpha*e + (1-alpha)*loss.
        table[index] = alpha * table[index] + (1.0 - alpha * self.seen[index]) * loss

    def _normalised(self, table: torch.Tensor, index: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        maxima = class_max(table, self.ctx.train_targets, self.ctx.num_classes)
        # Guard only the degenerate 0/0 case (every loss of a class exactly 0), where the
        # reference would produce NaN.
        return table[index] / maxima[y].clamp_min(torch.finfo(table.dtype).tiny)

    def relative_difficulty(self, index: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """W_i = ê_B / (ê_B + ê_D + 1e-8) from the current EMA tables."""
        e_b = self._normalised(self.ema_biased, index, y)
        e_d = self._normalised(self.ema_debiased, index, y)
        return e_b / (e_b + e_d + 1e-8)

    def track_difficulty(
        self, index: torch.Tensor, y: torch.Tensor, ce_b: torch.Tensor, ce_d: torch.Tensor
    ) -> torch.Tensor:
        """Fold this batch's plain CE of both networks into the EMAs, then W for the batch (built
        from detached tables: a constant). The methods built on LfF share this step."""
        self._update_ema(self.ema_biased, index, ce_b.detach())
        self._update_ema(self.ema_debiased, index, ce_d.detach())
        self.seen[index] = 1.0
        return self.relative_difficulty(index, y)

    def train_step(self, batch: Batch) -> StepOutput:
        index, x, y = batch.index, batch.x, batch.y
        logits_b = self.biased(x)
        logits_d = self.debiased(x)
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        ce_d = F.cross_entropy(logits_d, y, reduction="none")
        # The EMAs track plain CE of both networks, even though f_B is trained with GCE.
        weight = self.track_difficulty(index, y, ce_b, ce_d)

        if self.hparams.biased_loss == "gce":
            loss_b = generalized_ce(logits_b, y, self.hparams.q)
        else:
            loss_b = ce_b
        # Divided by B, not by sum(W), as in the reference: f_D's step shrinks as W falls.
        loss = loss_b.mean() + (weight * ce_d).mean()
        self.zero_grad_all()
        loss.backward()  # one backward; the networks share no parameters
        self.step_all()
        return StepOutput(
            loss=loss.detach(),
            per_sample_loss={"biased": ce_b.detach(), "debiased": ce_d.detach()},
        )


@dataclass(frozen=True)
class LfFCEHparams(LfFHparams):
    biased_loss: str = "ce"


@register_method("lff_ce")
class LfFCE(LfF):
    """Table 4's ablation (Ours†): LfF with the biased model trained by plain CE.
    Only the default of `biased_loss` differs; the code path is LfF's."""

    Hparams = LfFCEHparams
    search_space = {"ema_alpha": LfF.search_space["ema_alpha"]}  # q is unused without GCE
