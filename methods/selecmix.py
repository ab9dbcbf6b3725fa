"""SelecMix: Debiased Learning by Contradicting-pair Sampling (Hwang et al., NeurIPS 2022).
Full notes: docs/successors/selecmix.md.

Source: iwhwang/SelecMix at 4247e2f: `learner.py` (`train_vanilla`, `train_lff`,
`setup_auxiliary_contrastive_model`), `util.py` (`intra_/inter_mask_with_sim_matrix`,
`get_mixup_index_with_similarity_matrix`, `mixup_with_index`), `module/loss.py` (`SupConLoss`, GSC),
`module/resnet_big.py` (`SupConResNet`), `module/mlp.py`, `train.py`, `configs/*.cfg`.

Networks: the classifier f (base "vanilla") or f_D and f_B (base "lff": a `methods.lff.LfF` holds
them, their EMA tables and W), and an auxiliary encoder g = the dataset's registered network
(`ctx.model_factory()`, its `features`, classifier dropped) + the official head Linear(d, d)-ReLU-
Linear(d, `proj_dim`) + L2 normalisation, with its own optimiser (the protocol's class, `proj_lr`,
weight decay `proj_weight_decay`). g reads pixels in [0, 1] (`ctx.unit_inputs`), as the official g
does on CMNIST: there ToTensor's [0, 1] tensor feeds the ResNet g directly, while the official MLP
classifier divides it by 255 inside `forward` (the suite's "reference" scaling is that same 1/255^2).

One step on a batch (x, y) of size B, in the official order:
1. S_ij = <g(x_i), g(x_j)>, no gradient.
2. One coin per batch: with probability `positive_prob` contradicting positives,
   p(i) = argmin_{j: y_j = y_i} S_ij; otherwise contradicting negatives, p(i) = argmax_{j: y_j != y_i} S_ij.
3. λ_i = 0.5 · Beta(`mix_alpha`, `mix_alpha`) ∈ [0, 0.5]; x̃_i = λ_i x_i + (1 − λ_i) x_p(i), labelled
   y_p(i) with weight 1 (the `ours` branch of `mixup_with_index`: lam_a = 0, lam_b = 1).
4. One backward and one step of the classifier(s) on
   - vanilla: L = b · mean CE(f(x), y) + a · mean CE(f(x̃), y_p)
   - lff:     L = b · mean W ⊙ CE(f_D(x), y) + mean GCE(f_B(x), y) + a · mean CE(f_D(x̃), y_p)
     (W and GCE exactly as `lff`, EMAs updated on the real batch first; GCE is not scaled by b).
5. One step of g on the generalised SupCon loss of the same real batch (one view, no second
   augmented view, as `z = self.model_c(data)`): for j != i, log p_ij = s_ij − log Σ_{k≠i} exp(s_ik)
   with s = <z_i, z_j>/τ; each term times q·sg(p_ij)^q; ℓ_i = −mean over positives j ≠ i of the same
   label (0 if none); loss = mean of ℓ_i over all B rows (`gsc=False`: plain SupCon).

Defaults: vanilla a = 1, b = 0 (`configs/v_ours.cfg`, mixed samples only); lff a = 0.1, b = 1
(`configs/l_ours.cfg`); τ = 0.2, GSC q = 0.7, `rand` (coin 0.5), Beta(1, 1) (both cfgs, `util.py`);
CMNIST `proj_lr` 0.01 with Adam (`configs/cmnist_{0.5,1,2}pct.cfg`; `cmnist_5pct.cfg`: 0.02);
projector weight decay 1e-4 (`learner.py`); head to 128 (`SupConResNet`); LfF base q = 0.7, EMA 0.7.
Registered as `selecmix` (base "vanilla"; role "main" = f or f_D; a, b = None take the base's values)
and `selecmix_lff` (base "lff"; roles "debiased" and "biased", as `lff`). Supervision ○ none (the
official `--gt` oracle is not implemented).

Deviations: partners are chosen within the trainer's batch (256 on CMNIST), not among the official
1024-sample draw that is then cut into four 256 mini-batches (a 4x smaller candidate pool; S is
fresh at every step); g has the dataset's registered architecture (the CMNIST MLP, 100-d features)
instead of SupCon ResNet-18 on every dataset, as every network in the suite is the registered one;
the protocol's lr, optimiser, epochs and classifier (official CMNIST: Adam 5e-3, 200 epochs, MLP
100-100-16); the last partial batch is trained on. `pair_masking="official"` (default) codes the
masks as util.py does: positives argmin of S·M + (1 − M) (M = same label, i included), negatives
argmax of S·(1 − M), which picks the first zero (the batch's first same-label sample) when every
other-label S_ij is negative; `"strict"` is the paper's rule (i excluded; no candidate: i itself).
Diagnostics per epoch: `positive_batch_share`, `negative_same_label_share` (how often the official
negatives fall back to a same-label partner), `encoder_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.lff import LfF, LfFHparams
from debiasbench.methods.losses import generalized_ce

BASES = ("vanilla", "lff")
PAIR_MASKINGS = ("official", "strict")
ENCODER_INPUTS = ("unit", "model")
# (a, b): the weight of the mixed-sample loss and of the real-sample loss per base.
BASE_WEIGHTS = {"vanilla": (1.0, 0.0), "lff": (0.1, 1.0)}  # configs/v_ours.cfg, configs/l_ours.cfg


@dataclass(frozen=True)
class SelecMixHparams:
    base: str = "vanilla"  # "vanilla" (train_vanilla) or "lff" (train_lff)
    a: float | None = None  # mixed-sample loss weight; None: 1 (vanilla) / 0.1 (lff)
    b: float | None = None  # real-sample loss weight; None: 0 (vanilla) / 1 (lff)
    proj_lr: float = 0.01  # configs/cmnist_{0.5,1,2}pct.cfg (5pct: 0.02)
    proj_weight_decay: float = 1e-4  # learner.py, setup_auxiliary_contrastive_model
    proj_dim: int = 128  # SupConResNet feat_dim
    temperature: float = 0.2  # --tau
    gsc: bool = True  # the generalised SupCon (--gsc)
    gsc_q: float = 0.7  # --gsc_q
    positive_prob: float = 0.5  # --rand: one fair coin per batch (1: --intra only, 0: --inter only)
    mix_alpha: float = 1.0  # lambda = 0.5 * Beta(mix_alpha, mix_alpha)
    pair_masking: str = "official"  # "official" (util.py) or "strict" (the paper's rule)
    encoder_inputs: str = "unit"  # g reads pixels in [0, 1] ("unit") or the classifier's inputs ("model")
    q: float = 0.7  # LfF base: GCE exponent of f_B
    ema_alpha: float = 0.7  # LfF base: per-sample loss EMA

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        a, b = BASE_WEIGHTS[self.base]
        if self.a is None:
            object.__setattr__(self, "a", a)
        if self.b is None:
            object.__setattr__(self, "b", b)
        if self.a < 0 or self.b < 0:
            raise ValueError(f"loss weights a and b must be non-negative, got a={self.a}, b={self.b}")
        if self.a == 0 and self.b == 0 and self.base == "vanilla":
            raise ValueError("a = b = 0 leaves the vanilla base's classifier untrained")
        if self.proj_lr <= 0:
            raise ValueError(f"proj_lr must be positive, got {self.proj_lr}")
        if self.proj_weight_decay < 0:
            raise ValueError(f"proj_weight_decay must be non-negative, got {self.proj_weight_decay}")
        if self.proj_dim < 1:
            raise ValueError(f"proj_dim must be at least 1, got {self.proj_dim}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 < self.gsc_q <= 1.0:
            raise ValueError(f"gsc_q must lie in (0, 1], got {self.gsc_q}")
        if not 0.0 <= self.positive_prob <= 1.0:
            raise ValueError(f"positive_prob must lie in [0, 1], got {self.positive_prob}")
        if self.mix_alpha <= 0:
            raise ValueError(f"mix_alpha must be positive, got {self.mix_alpha}")
        if self.pair_masking not in PAIR_MASKINGS:
            raise ValueError(f"pair_masking must be one of {', '.join(PAIR_MASKINGS)}, got {self.pair_masking!r}")
        if self.encoder_inputs not in ENCODER_INPUTS:
            raise ValueError(f"encoder_inputs must be one of {', '.join(ENCODER_INPUTS)}, got {self.encoder_inputs!r}")
        LfFHparams(q=self.q, ema_alpha=self.ema_alpha)  # LfF's own checks


# -- the pieces, each tested against a hand computation -------------------------------------


def select_partners(sim: torch.Tensor, labels: torch.Tensor, positive: bool, masking: str = "official") -> torch.Tensor:
    """The partner index of every row of the (B, B) similarity matrix `sim`.

    positive: the least similar sample of the same label (contradicting positives); otherwise the
    most similar sample of another label (contradicting negatives). `masking` as in the module
    docstring: "official" reproduces util.py's multiplicative masks, "strict" the paper's rule."""
    same = labels[:, None] == labels[None, :]
    if masking == "official":
        if positive:  # intra_mask_with_sim_matrix: sim * M + 1 * (1 - M), argmin
            return torch.where(same, sim, torch.ones_like(sim)).argmin(dim=1)
        # inter_mask_with_sim_matrix: sim * (1 - M), argmax
        return torch.where(same, torch.zeros_like(sim), sim).argmax(dim=1)
    if masking != "strict":
        raise ValueError(f"masking must be one of {', '.join(PAIR_MASKINGS)}, got {masking!r}")
    own = torch.arange(len(labels), device=labels.device)
    if positive:
        candidates = same & (own[:, None] != own[None, :])
        chosen = torch.where(candidates, sim, torch.full_like(sim, float("inf"))).argmin(dim=1)
    else:
        candidates = ~same
        chosen = torch.where(candidates, sim, torch.full_like(sim, float("-inf"))).argmax(dim=1)
    return torch.where(candidates.any(dim=1), chosen, own)


def mix_pairs(
    x: torch.Tensor, y: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x̃_i = λ_i x_i + (1 − λ_i) x_p(i), labelled y_p(i) (the partner's label, weight 1)."""
    weight = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return weight * x + (1.0 - weight) * x[partner], y[partner]


def draw_lambda(count: int, alpha: float) -> torch.Tensor:
    """λ = 0.5 · Beta(α, α) for `count` samples, on the CPU (the checkpointed generator)."""
    concentration = torch.tensor(float(alpha))
    return 0.5 * torch.distributions.Beta(concentration, concentration).sample((count,))


def generalized_supcon(
    z: torch.Tensor, labels: torch.Tensor, temperature: float, q: float = 0.7, generalized: bool = True
) -> torch.Tensor:
    """module/loss.py's SupConLoss (GSC=True when `generalized`) of L2-normalised embeddings `z`,
    one view per sample: the mean over rows of −(1/|P(i)|) Σ_{j∈P(i)} q·sg(p_ij)^q · log p_ij."""
    z = z.float()
    with torch.autocast(z.device.type, enabled=False):  # a B x B product: keep it in float32
        sim = z @ z.T / temperature
    logits = sim - sim.max(dim=1, keepdim=True).values.detach()  # for numerical stability
    not_self = 1.0 - torch.eye(len(z), device=z.device, dtype=z.dtype)
    positives = (labels[:, None] == labels[None, :]).to(z.dtype) * not_self
    log_prob = logits - torch.log((logits.exp() * not_self).sum(dim=1, keepdim=True) + 1e-9)
    if generalized:
        log_prob = q * log_prob.detach().exp() ** q * log_prob
    count = positives.sum(dim=1)
    mean_log_prob_pos = (positives * log_prob).sum(dim=1) / torch.where(count == 0, torch.ones_like(count), count)
    return -mean_log_prob_pos.mean()


class ProjectionEncoder(nn.Module):
    """The auxiliary encoder: a registered network's `features` (its classifier dropped), the
    official MLP projection head d -> d -> proj_dim, and an L2 normalisation."""

    def __init__(self, backbone: nn.Module, proj_dim: int) -> None:
        super().__init__()
        width = backbone.classifier.in_features
        backbone.classifier = nn.Identity()  # unused: no dead parameters in the optimiser
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone.features(x)).float(), dim=1)

    def similarities(self, x: torch.Tensor) -> torch.Tensor:
        """SupConResNet.sim_matrix: the cosine similarity of every pair."""
        z = self(x)
        with torch.autocast(z.device.type, enabled=False):  # no bf16 ties in the arg-min/max
            return z @ z.T


# -- the method ----------------------------------------------------------------------------


@register_method("selecmix")
class SelecMix(Method):
    supervision = Supervision.NONE
    Hparams = SelecMixHparams
    # Ranges [inferred]: around the official values (proj_lr 0.001 on CIFAR, 0.01-0.02 on CMNIST).
    # With Adam, a alone only rescales the vanilla base's loss, so b is searched there.
    search_space = {
        "proj_lr": lambda rng: float(rng.choice([0.001, 0.005, 0.01, 0.02])),
        "temperature": lambda rng: float(rng.choice([0.1, 0.2, 0.5])),
        "gsc_q": lambda rng: float(rng.choice([0.5, 0.7, 0.9])),
        "b": lambda rng: float(rng.choice([0.0, 0.1, 0.5, 1.0])),
    }
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: SelecMixHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        if hparams.base == "lff":
            # LfF's networks, EMA tables and relative difficulty, reused as they are.
            self.lff = LfF(LfFHparams(q=hparams.q, ema_alpha=hparams.ema_alpha), ctx)
            self.classifier_optimizers = [self.lff.optimizers["debiased"], self.lff.optimizers["biased"]]
            self._role_nets = self._lff_roles()
            for role, optimizer in zip(("debiased", "biased"), self.classifier_optimizers):
                self.optimizers[self._optimizer_key(role)] = optimizer
        else:
            self.net = self.add_net("main")
            self.classifier_optimizers = [self.optimizers["main"]]
            self._role_nets = {"main": self.net}
        self.encoder = ProjectionEncoder(ctx.model_factory(), hparams.proj_dim).to(ctx.device)
        optimizer = ctx.optimizer_factory(self.encoder.parameters(), lr=hparams.proj_lr)
        for group in optimizer.param_groups:
            group["weight_decay"] = hparams.proj_weight_decay
        self.optimizers["encoder"] = optimizer
        self._reset_diagnostics()

    def _lff_roles(self) -> dict[str, nn.Module]:
        return {"main": self.lff.debiased}

    def _optimizer_key(self, role: str) -> str:
        return "main" if role == "debiased" else role

    def logits(self, x: torch.Tensor, role: str) -> torch.Tensor:
        return self._role_nets[role](x)

    # -- one step ---------------------------------------------------------------------------
    def draw_positive(self) -> bool:
        """The batch's coin: contradicting positives with probability `positive_prob` (CPU)."""
        return bool(torch.rand(()) < self.hparams.positive_prob)

    def draw_lambda(self, count: int) -> torch.Tensor:
        return draw_lambda(count, self.hparams.mix_alpha)

    def encoder_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What g reads: pixel intensities in [0, 1] (`ctx.unit_inputs`) or the model inputs."""
        return self.ctx.unit_inputs(x) if self.hparams.encoder_inputs == "unit" else x

    @torch.no_grad()
    def similarities(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.similarities(self.encoder_inputs(x))

    def mixed_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1-3: the mixed inputs and their (partner) labels."""
        positive = self.draw_positive()
        partner = select_partners(self.similarities(batch.x), batch.y, positive, self.hparams.pair_masking)
        lam = self.draw_lambda(len(batch.y)).to(batch.x.device)
        x_mix, y_mix = mix_pairs(batch.x, batch.y, partner, lam)
        self._steps += 1
        if positive:
            self._positive_steps += 1
        else:
            self._negative_samples += len(batch.y)
            self._negative_same_label += (y_mix == batch.y).sum()
        return x_mix, y_mix

    def train_step(self, batch: Batch) -> StepOutput:
        x_mix, y_mix = self.mixed_batch(batch)
        if self.hparams.base == "lff":
            loss, per_sample = self._lff_loss(batch, x_mix, y_mix)
        else:
            loss, per_sample = self._vanilla_loss(batch, x_mix, y_mix)
        for optimizer in self.classifier_optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in self.classifier_optimizers:
            optimizer.step()
        self._encoder_step(batch)
        return StepOutput(loss=loss.detach(), per_sample_loss=per_sample)

    def _vanilla_loss(self, batch: Batch, x_mix: torch.Tensor, y_mix: torch.Tensor):
        a, b = self.hparams.a, self.hparams.b
        # The real batch is always forwarded (its CE is logged, and BN sees it as officially);
        # with b = 0 it carries no gradient, so it needs no graph.
        with torch.set_grad_enabled(b > 0):
            ce = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        loss = a * F.cross_entropy(self.net(x_mix), y_mix)
        if b > 0:
            loss = loss + b * ce.mean()
        return loss, {"main": ce.detach()}

    def _lff_loss(self, batch: Batch, x_mix: torch.Tensor, y_mix: torch.Tensor):
        lff, index, x, y = self.lff, batch.index, batch.x, batch.y
        logits_b = lff.biased(x)
        logits_d = lff.debiased(x)
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        ce_d = F.cross_entropy(logits_d, y, reduction="none")
        weight = lff.track_difficulty(index, y, ce_b, ce_d)
        loss = (
            self.hparams.b * (weight * ce_d).mean()
            + generalized_ce(logits_b, y, self.hparams.q).mean()
            + self.hparams.a * F.cross_entropy(lff.debiased(x_mix), y_mix)
        )
        return loss, self._lff_per_sample(ce_b.detach(), ce_d.detach())

    def _lff_per_sample(self, ce_b: torch.Tensor, ce_d: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"main": ce_d}

    def _encoder_step(self, batch: Batch) -> None:
        """Step 5: one GSC step of the auxiliary encoder on the real batch."""
        hp = self.hparams
        z = self.encoder(self.encoder_inputs(batch.x))
        loss = generalized_supcon(z, batch.y, hp.temperature, hp.gsc_q, hp.gsc)
        optimizer = self.optimizers["encoder"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self._encoder_loss_sum += loss.detach()

    # -- diagnostics ------------------------------------------------------------------------
    def _reset_diagnostics(self) -> None:
        device = self.ctx.device
        self._steps = 0
        self._positive_steps = 0
        self._negative_samples = 0
        self._negative_same_label = torch.zeros((), device=device)
        self._encoder_loss_sum = torch.zeros((), device=device)

    def epoch_diagnostics(self) -> dict[str, float]:
        steps = max(self._steps, 1)
        out = {
            "positive_batch_share": self._positive_steps / steps,
            "negative_same_label_share": float(self._negative_same_label) / max(self._negative_samples, 1),
            "encoder_loss": float(self._encoder_loss_sum) / steps,
        }
        self._reset_diagnostics()
        return out


@dataclass(frozen=True)
class SelecMixLfFHparams(SelecMixHparams):
    base: str = "lff"
    a: float | None = 0.1  # configs/l_ours.cfg
    b: float | None = 1.0

    def __post_init__(self) -> None:
        if self.base != "lff":
            raise ValueError(f"selecmix_lff is the LfF base; for base={self.base!r} use the method 'selecmix'")
        super().__post_init__()


@register_method("selecmix_lff")
class SelecMixLfF(SelecMix):
    """SelecMix on the LfF base, with LfF's roles: f_D ("debiased", the predictor) and f_B
    ("biased") are both evaluated, as for `lff`. The code path is `selecmix`'s with base "lff"."""

    Hparams = SelecMixLfFHparams
    search_space = {
        **{k: v for k, v in SelecMix.search_space.items() if k != "b"},
        "a": lambda rng: float(rng.choice([0.05, 0.1, 0.5, 1.0])),
    }
    roles = ("debiased", "biased")
    predictor_role = "debiased"

    def _lff_roles(self) -> dict[str, nn.Module]:
        return {"debiased": self.lff.debiased, "biased": self.lff.biased}

    def _optimizer_key(self, role: str) -> str:
        return role

    def _lff_per_sample(self, ce_b: torch.Tensor, ce_d: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"debiased": ce_d, "biased": ce_b}
