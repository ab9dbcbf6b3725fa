"""REPAIR (Li & Vasconcelos, CVPR 2019; docs/methods.md#repair): resample the training set so that a bias
representation stops predicting the label, then train plainly on the kept subset.

Stage 1 (`prepare`, training set only) is a min-max between a linear probe h(phi) = W phi + c and
per-example logits tau (w = sigmoid(tau)): the probe minimises the w-weighted cross-entropy L, the
weights minimise 1 - L/H (H the weighted label entropy), both from the same forward on each batch.
Stage 2 keeps a fixed subset according to `variant` (T threshold, R rank, C class-wise rank,
S sample; U is a uniform-random control). Stage 3 is ERM on that subset via `epoch_indices`.

The bias representation phi is precomputed once for all N samples (k = 3 or 10 dims), and the
stage-1 gradients are written in closed form (derived below from the reference's objective and
checked against autograd in tests/methods/test_repair.py): no autograd graph, about 30 small ops
per step, so the ~94k steps of 200 epochs on Colored MNIST take well under a minute on one CPU core
(41 s measured on a busy 2-core machine). With S = sum_j w_j, z_i = N w_i / S, Q_c = sum_{j: y_j = c} w_j / S,
cw_c = S Q_c, over a batch I of size B:
    L = mean_I z_i ce_i,   H = -mean_I z_i log Q_{y_i},
    dL/dlogits_i          = z_i (softmax_i - onehot(y_i)) / B
    d(1 - L/H)/dw_j       = a_{y_j} - [j in I] N / (B S H) (ce_j + (L/H) log Q_{y_j}),
    a_c                   = L / (B H^2) (sum_I z_i / S - sum_{I: y_i = c} z_i / cw_c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from debiasbench.methods.base import (
    Batch,
    Method,
    MethodContext,
    StepOutput,
    Supervision,
    register_method,
    shuffled_rounds,
)

VARIANTS = ("T", "R", "C", "S", "U")
EPOCH_LENGTHS = ("subset", "full")
# Datasets whose bias representation is computed from the image: Colored MNIST's colour, the
# per-channel maximum pixel intensity (LfF Appendix D; bias-tailored). Every other dataset uses the
# one-hot bias label (Corrupted CIFAR-10 in the paper), so it needs bias labels, and a dataset
# without them (BAR) is refused when the trial is resolved, not at training time.
COLOUR_REPRESENTATION_DATASETS = ("cmnist",)
_PHI_CHUNK = 4096  # images per chunk when computing the colour representation


@dataclass(frozen=True)
class REPAIRHparams:
    variant: str = "T"  # T threshold, R rank, C class-wise rank, S sample; U uniform control
    threshold: float = 0.5  # T: keep w > threshold
    keep_ratio: float = 0.5  # R, C, U: fraction kept
    weight_epochs: int = 200
    weight_batch_size: int = 128
    probe_lr: float = 1e-3
    probe_momentum: float = 0.9
    weight_lr: float = 10.0
    # Stage-3 epoch length [inferred]. "full": N indices per epoch, cycling through fresh
    # permutations of the subset, so stage 3 takes as many steps as every other method (LfF's loop
    # is step-based and reshuffles an exhausted loader). "subset": one pass over the subset per
    # epoch, as REPAIR's own script; with REPAIR-T's small subsets that is ~10x fewer steps.
    epoch_length: str = "full"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.epoch_length not in EPOCH_LENGTHS:
            raise ValueError(f"epoch_length must be one of {', '.join(EPOCH_LENGTHS)}, got {self.epoch_length!r}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must lie in (0, 1], got {self.keep_ratio}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must lie in [0, 1), got {self.threshold}")
        if self.weight_epochs < 0 or self.weight_batch_size < 1:
            raise ValueError("weight_epochs must be >= 0 and weight_batch_size >= 1")


@dataclass
class ProbeState:
    """The linear probe h(phi) = W phi + c, stored as one (C, k + 1) matrix [W, c] that acts on
    [phi, 1], with torch.optim.SGD's momentum buffer (dampening 0)."""

    params: torch.Tensor
    momentum: torch.Tensor | None = None

    def step(self, grad: torch.Tensor, lr: float, momentum: float) -> None:
        self.momentum = grad.clone() if self.momentum is None else self.momentum.mul_(momentum).add_(grad)
        self.params.sub_(self.momentum, alpha=lr)


class ClassMajorLayout:
    """Per-example values stored as a (C, M) matrix, row c holding class c's examples (M = the
    largest class; padding slots hold tau = -inf, i.e. w = 0, which no update ever moves).

    Every stage-1 step touches all N weights; in this layout the per-class sums are row sums and
    the per-class gradient term is a broadcast, instead of N-element scatters and gathers."""

    def __init__(self, targets: torch.Tensor, num_classes: int) -> None:
        counts = torch.bincount(targets, minlength=num_classes)
        self.num_classes = num_classes
        self.width = max(1, int(counts.max()))
        order = torch.argsort(targets, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(targets)
        rank[order] = torch.arange(len(targets), device=targets.device) - starts[targets[order]]
        self.position = targets * self.width + rank  # flat slot of every example

    def matrix(self, values: torch.Tensor, fill: float) -> torch.Tensor:
        out = torch.full((self.num_classes * self.width,), fill, dtype=values.dtype, device=values.device)
        out[self.position] = values
        return out.view(self.num_classes, self.width)

    def per_example(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix.reshape(-1)[self.position]


def minmax_gradients(
    tau: torch.Tensor, num_train: int, y: torch.Tensor, slots: torch.Tensor, phi: torch.Tensor, probe: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward of REPAIR's min-max on a batch, at the current parameters.

    `tau` is (C, M) in the class-major layout; `y`, `slots` and `phi` (with a trailing 1 for the
    probe's bias) describe the batch's examples; `probe` is the (C, k + 1) matrix [W, c].
    Returns (grad of L w.r.t. the probe, grad of 1 - L/H w.r.t. tau (C, M), L): the probe's
    gradient comes from L only and tau's from 1 - L/H only."""
    num_classes = tau.shape[0]
    batch = y.shape[0]
    w = torch.sigmoid(tau)
    class_weight = w.sum(1)
    total = class_weight.sum()
    log_prior = torch.log(class_weight.clamp_min(torch.finfo(w.dtype).tiny) / total)

    w_batch = w.view(-1)[slots]
    z = w_batch * (num_train / total)  # normalised by the whole-dataset mean weight
    log_probs = F.log_softmax(phi @ probe.T, dim=1)
    ce = -log_probs.gather(1, y[:, None]).squeeze(1)
    log_q = log_prior[y]
    loss = torch.dot(z, ce) / batch
    entropy = -torch.dot(z, log_q) / batch

    # dL/dlogits = z (softmax - onehot) / B
    grad_logits = log_probs.exp_().scatter_add_(1, y[:, None], -torch.ones_like(log_q)[:, None])
    grad_probe = (grad_logits * (z / batch)[:, None]).T @ phi

    class_z = torch.zeros(num_classes, dtype=w.dtype, device=w.device).index_add_(0, y, z)
    ratio = loss / entropy
    per_class = (ratio / (batch * entropy)) * (
        z.sum() / total - class_z / class_weight.clamp_min(torch.finfo(w.dtype).tiny)
    )
    batch_term = (ce + ratio * log_q) * (w_batch * (1.0 - w_batch)) * (-num_train / (batch * entropy) / total)
    # d/dtau = d/dw * w (1 - w), fused in one pass; padding slots have w = 0, so no gradient.
    grad_tau = torch.ops.aten.sigmoid_backward(per_class[:, None].expand_as(w), w)
    grad_tau.view(-1).index_add_(0, slots, batch_term)
    return grad_probe, grad_tau, loss


@torch.no_grad()
def learn_weights(
    phi: torch.Tensor, targets: torch.Tensor, num_classes: int, hparams: REPAIRHparams, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """Stage 1: per-example weights w in (0, 1) and the final bias estimate 1 - L / H(Q)."""
    n, k = phi.shape
    device = phi.device
    bound = 1.0 / math.sqrt(k)  # nn.Linear's default initialisation range, for W and c
    probe = ProbeState(((torch.rand(num_classes, k + 1, generator=generator) * 2 - 1) * bound).to(device))
    phi = torch.cat([phi, torch.ones(n, 1, dtype=phi.dtype, device=device)], dim=1)
    layout = ClassMajorLayout(targets, num_classes)
    tau = layout.matrix(torch.zeros(n, device=device), fill=-math.inf)
    last_epoch_loss = torch.zeros((), device=device)
    size = hparams.weight_batch_size
    for _ in range(hparams.weight_epochs):
        order = torch.randperm(n, generator=generator).to(device)
        # Gathered once per epoch; each batch is then a slice (a view).
        epoch_phi, epoch_y, epoch_slots = phi[order], targets[order], layout.position[order]
        last_epoch_loss.zero_()
        for start in range(0, n, size):
            grad_probe, grad_tau, loss = minmax_gradients(
                tau,
                n,
                epoch_y[start : start + size],
                epoch_slots[start : start + size],
                epoch_phi[start : start + size],
                probe.params,
            )
            # Both gradients come from the same forward; only then are both parameter sets stepped.
            probe.step(grad_probe, hparams.probe_lr, hparams.probe_momentum)
            tau.add_(grad_tau, alpha=-hparams.weight_lr)
            last_epoch_loss += loss
    w = torch.sigmoid(layout.per_example(tau))
    prior = torch.zeros(num_classes, device=device).index_add_(0, targets, w)
    prior = prior / prior.sum()
    prior_entropy = -(prior * torch.log(prior.clamp_min(torch.finfo(prior.dtype).tiny))).sum()
    batches = math.ceil(n / size)
    bias_estimate = 1.0 - float(last_epoch_loss / batches / prior_entropy) if hparams.weight_epochs else float("nan")
    return w, bias_estimate


def select_subset(
    w: torch.Tensor, targets: torch.Tensor, num_classes: int, hparams: REPAIRHparams, generator: torch.Generator
) -> torch.Tensor:
    """Stage 2: boolean mask of the kept examples for the configured variant."""
    n = w.shape[0]
    kept = torch.zeros(n, dtype=torch.bool, device=w.device)
    variant = hparams.variant
    if variant == "T":
        return w > hparams.threshold
    if variant == "R":
        kept[torch.argsort(w, descending=True, stable=True)[: round(hparams.keep_ratio * n)]] = True
        return kept
    if variant == "C":
        for c in range(num_classes):
            members = torch.nonzero(targets == c).squeeze(1)
            order = torch.argsort(w[members], descending=True, stable=True)
            kept[members[order[: round(hparams.keep_ratio * len(members))]]] = True
        return kept
    if variant == "S":
        draws = torch.rand(n, generator=generator).to(w.device)
        return draws < w
    kept[torch.randperm(n, generator=generator)[: round(hparams.keep_ratio * n)].to(w.device)] = True
    return kept


def bias_representation(ctx: MethodContext) -> torch.Tensor:
    """phi(x) for all N training samples: on Colored MNIST the per-channel maximum pixel intensity
    of the un-augmented image (REPAIR's colour of the digit), elsewhere the one-hot bias label."""
    if ctx.dataset in COLOUR_REPRESENTATION_DATASETS:
        chunks = []
        for start in range(0, ctx.num_train, _PHI_CHUNK):
            index = torch.arange(start, min(start + _PHI_CHUNK, ctx.num_train), device=ctx.device)
            chunks.append(ctx.unit_inputs(ctx.train_inputs(index)).flatten(2).amax(2))
        return torch.cat(chunks).float()
    if ctx.train_bias is None or ctx.num_bias_values is None:
        raise ValueError(f"repair on {ctx.dataset!r} uses the one-hot bias label, but no bias labels were given")
    return F.one_hot(ctx.train_bias, ctx.num_bias_values).float()


@register_method("repair")
class REPAIR(Method):
    # Declared conservatively; `supervision_on` relaxes it to bias-tailored on Colored MNIST.
    supervision = Supervision.BIAS_LABELS
    Hparams = REPAIRHparams
    search_space = {
        "keep_ratio": lambda rng: float(rng.choice([0.25, 0.5, 0.75])),
        "weight_lr": lambda rng: float(10.0 ** rng.uniform(0, 2)),
    }
    roles = ("main",)
    predictor_role = "main"

    @classmethod
    def supervision_on(cls, dataset: str) -> Supervision:
        if dataset in COLOUR_REPRESENTATION_DATASETS:
            return Supervision.BIAS_TAILORED
        return Supervision.BIAS_LABELS

    def __init__(self, hparams: REPAIRHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")
        n = ctx.num_train
        # Stage-1/2 results are buffers so a resumed trial keeps its subset (prepare runs once).
        self.register_buffer("example_weights", torch.zeros(n, device=ctx.device))
        self.register_buffer("kept", torch.zeros(n, dtype=torch.bool, device=ctx.device))
        self.register_buffer("bias_estimate", torch.full((), float("nan"), device=ctx.device))

    def prepare(self) -> None:
        # Seeded from the trial's global RNG (already seeded by the trainer): reproducible per seed.
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        phi = bias_representation(self.ctx)
        targets = self.ctx.train_targets
        threads = torch.get_num_threads()
        if phi.device.type == "cpu":
            # ~10^5 steps of tiny, latency-bound ops: intra-op threads only add wake-up latency
            # (measured 30x slower with 2 threads on a busy 2-core machine).
            torch.set_num_threads(1)
        try:
            w, bias_estimate = learn_weights(phi, targets, self.ctx.num_classes, self.hparams, generator)
        finally:
            torch.set_num_threads(threads)
        kept = select_subset(w, targets, self.ctx.num_classes, self.hparams, generator)
        if not bool(kept.any()):
            raise RuntimeError(
                f"REPAIR-{self.hparams.variant} kept no training example (max weight {float(w.max()):.3g}); "
                "lower `threshold` or use another variant"
            )
        self.example_weights.copy_(w)
        self.kept.copy_(kept)
        self.bias_estimate.fill_(bias_estimate)

    def epoch_diagnostics(self) -> dict[str, float]:
        # Stage 1 leaves an estimate of how strongly the bias representation predicts the label.
        return {"kept_fraction": float(self.kept.float().mean()), "bias_estimate": float(self.bias_estimate)}

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        subset = torch.nonzero(self.kept).squeeze(1).cpu()
        if self.hparams.epoch_length == "subset":
            return subset[torch.randperm(len(subset), generator=generator)]
        return shuffled_rounds(subset, self.ctx.num_train, generator)

    def train_step(self, batch: Batch) -> StepOutput:
        return self.cross_entropy_step(self.net, batch)
