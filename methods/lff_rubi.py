"""LfF with RUBi's combination rule (Table 10 ablation; docs/methods.md#lff-with-rubis-rule).

LfF's biased network f_B (trained with GCE, no bias labels) takes the place of RUBi's bias-only
branch. Instead of reweighting f_D's cross-entropy by the relative difficulty score, f_D is trained
through the fused logits z_D * sigmoid(z_B); prediction uses f_D's logits without the mask.
There is no EMA, no class-wise normalisation and no per-sample weight. `mask_source="head"` takes
the mask logits from a linear head on f_B's detached features instead (the ReBias repository's port).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.losses import generalized_ce


@dataclass(frozen=True)
class LfFRUBiHparams:
    q: float = 0.7  # GCE exponent of the biased network, as in LfF
    # True [inferred default]: the mask is sg(sigmoid(z_B)), so f_B is shaped by GCE alone, as in
    # LfF where W is detached; only the combination rule changes. False is the RUBi-faithful
    # variant, in which f_B also receives gradients from the fused loss.
    detach_mask: bool = True
    # Where the mask logits come from. "biased_logits" [recommended reading]: f_B's own logits.
    # "head": as in the ReBias repository's RUBi port, a fresh linear head on f_B's detached
    # penultimate features, trained only through the fused loss (f_B keeps its GCE loss alone).
    mask_source: str = "biased_logits"

    def __post_init__(self) -> None:
        if self.mask_source not in ("biased_logits", "head"):
            raise ValueError(f"mask_source must be 'biased_logits' or 'head', got {self.mask_source!r}")
        if not 0.0 < self.q <= 1.0:
            raise ValueError(f"GCE q must lie in (0, 1], got {self.q}")
        if not isinstance(self.detach_mask, bool):
            raise ValueError(f"detach_mask must be true or false, got {self.detach_mask!r}")


def rubi_fused_logits(
    debiased_logits: torch.Tensor, biased_logits: torch.Tensor, detach_mask: bool = True
) -> torch.Tensor:
    """RUBi's fusion: the debiased logits scaled element-wise by the sigmoid of the bias logits."""
    mask_logits = biased_logits.detach() if detach_mask else biased_logits
    return debiased_logits * torch.sigmoid(mask_logits)


@register_method("lff_rubi")
class LfFRUBi(Method):
    supervision = Supervision.NONE
    Hparams = LfFRUBiHparams
    search_space = {"q": lambda rng: float(rng.choice([0.3, 0.5, 0.7, 0.9]))}
    roles = ("debiased", "biased")
    predictor_role = "debiased"

    def __init__(self, hparams: LfFRUBiHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.biased = self.add_net("biased")
        self.debiased = self.add_net("debiased")
        self.mask_head: nn.Module | None = None
        if hparams.mask_source == "head":
            classifier = self.biased.classifier
            self.mask_head = nn.Linear(classifier.in_features, classifier.out_features).to(ctx.device)
            self.optimizers["mask_head"] = ctx.optimizer_factory(self.mask_head.parameters())
        # Per-epoch diagnostics, accumulated on the device (no host sync per step). RUBi's caveat:
        # a (0, 1) mask moves a negative target logit toward 0, i.e. it helps that logit instead
        # of damping it. A saturated mask (target ~1, others ~0) leaves f_D's non-target logits
        # without any gradient.
        self.register_buffer("negative_target_logits", torch.zeros((), device=ctx.device))
        self.register_buffer("target_logits_seen", torch.zeros((), device=ctx.device))
        self.register_buffer("target_mask_sum", torch.zeros((), device=ctx.device))
        self.register_buffer("other_mask_sum", torch.zeros((), device=ctx.device))

    def negative_target_logit_fraction(self) -> float:
        """Fraction of this epoch's training target logits of f_D that were negative (RUBi caveat)."""
        return float(self.negative_target_logits / self.target_logits_seen.clamp_min(1.0))

    def epoch_diagnostics(self) -> dict[str, float]:
        seen = self.target_logits_seen.clamp_min(1.0)
        diagnostics = {
            "negative_target_logit_fraction": self.negative_target_logit_fraction(),
            "mean_target_mask": float(self.target_mask_sum / seen),
            "mean_other_class_mask": float(self.other_mask_sum / seen),
        }
        for buffer in (self.negative_target_logits, self.target_logits_seen, self.target_mask_sum, self.other_mask_sum):
            buffer.zero_()
        return diagnostics

    def train_step(self, batch: Batch) -> StepOutput:
        x, y = batch.x, batch.y
        logits_d = self.debiased(x)
        if self.mask_head is None:
            logits_b = mask_logits = self.biased(x)
            fused = rubi_fused_logits(logits_d, mask_logits, self.hparams.detach_mask)
        else:
            features_b = self.biased.features(x)
            logits_b = self.biased.classifier(features_b)
            mask_logits = self.mask_head(features_b.detach())
            fused = rubi_fused_logits(logits_d, mask_logits, detach_mask=False)
        loss = generalized_ce(logits_b, y, self.hparams.q).mean() + F.cross_entropy(fused, y)
        self.zero_grad_all()
        loss.backward()  # one backward; with detach_mask, f_B gets gradients from GCE only
        self.step_all()

        with torch.no_grad():
            target_logits = logits_d.gather(1, y[:, None])
            self.negative_target_logits += (target_logits < 0).sum()
            self.target_logits_seen += target_logits.numel()
            mask = torch.sigmoid(mask_logits.float())
            target_mask = mask.gather(1, y[:, None])
            self.target_mask_sum += target_mask.sum()
            self.other_mask_sum += ((mask.sum(1, keepdim=True) - target_mask) / max(mask.shape[1] - 1, 1)).sum()
            ce_b = F.cross_entropy(logits_b, y, reduction="none")
            ce_d = F.cross_entropy(logits_d, y, reduction="none")  # unmasked: the predictor's loss
        return StepOutput(loss=loss.detach(), per_sample_loss={"biased": ce_b, "debiased": ce_d})
