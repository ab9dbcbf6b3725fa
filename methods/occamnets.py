"""OccamNets (Shrestha, Kafle and Kanan, ECCV 2022; docs/methods-beyond-the-paper.md#occamnets):
an exit after every stage of the registered network, each predicting from class activation maps
(CAMs) kept inside the class's evidence, and each sample predicted by its earliest confident exit.

Read from the official code (erobic/occam-nets-v1 at b7a392d: `models/occam_lib.py` ExitModule,
MultiExitModule, get_early_exit_ixs; `trainers/occam_trainer.py` the three losses;
`conf/trainer/occam_trainer.yaml` the defaults). Exits are this method's own modules around the
stages `feature_maps(x)` returns (models.FeatureModel); the network's own classifier is unused.

Exit k (on stage k's output h_k; exit 0's input is detached from the trunk):
- convolutional maps: conv3x3(C_k -> C_k/4), BN, ReLU, conv3x3(-> C_k), ReLU = a_k; the CAM is a
  1x1 conv of a_k to the classes and the logits are its global average;
- MLP activations [inferred: no spatial map]: Linear(d_k -> d_k/4), BN, ReLU, Linear(-> d_k),
  ReLU = a_k; the logits are a Linear of a_k (a CAM with one location);
- gate g_k = sigmoid(Linear(16) . ReLU . BN . Linear(16) of pooled a_k, detached): P(exit here).

Losses per exit k, summed over exits (batch means):
1. CAM suppression (weight `cam_suppression_weight`, convolutional exits only): at the locations
   where the true class's CAM is not above its spatial mean, KL(uniform || softmax over classes).
2. Gate (weight `gate_weight`): binary CE of g_k against "exit k is right on this sample", with
   exit/continue weights (1 / (count / max count)) ** `balance_factor`. The target is recomputed
   while exit k's running class-mean training accuracy this epoch is at most its threshold
   (`acc_threshold` + k * `acc_threshold_step`) and during the first `min_epochs` epochs; after
   that each sample keeps the target last recorded for it.
3. Weighted CE: CE_k * (w_k / max w_k + `weight_offset`), with w_0 = p_0(y)^`gamma0` (exit 0
   learns the easy, biased samples) and w_k = (1 - g_{k-1})^`gamma` (exit k learns what exit k-1
   would not take); the max is a running maximum over the epoch.
Inference: the first exit from `inference_earliest_exit` on whose gate is >= 0.5, else the last.

Defaults are the official ones: 0.1, 1, 3, 1, 0.1, 0.5, thresholds 0.5/0.6/0.7/0.8, min_epochs 1,
exit 0 detached and skipped at inference. Deviations: the suite's protocol optimiser, learning rate
and epochs (the official Biased MNIST run uses Adam 1e-3, weight decay 5e-4, 90 epochs with decay at
50 and 70) and the registered architecture instead of OccamResNet's own widths.
Supervision: none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method


@dataclass(frozen=True)
class OccamNetsHparams:
    cam_suppression_weight: float = 0.1
    gate_weight: float = 1.0
    gamma0: float = 3.0
    gamma: float = 1.0
    weight_offset: float = 0.1
    balance_factor: float = 0.5
    acc_threshold: float = 0.5  # exit k's threshold is acc_threshold + k * acc_threshold_step
    acc_threshold_step: float = 0.1
    min_epochs: int = 1
    inference_earliest_exit: int = 1

    def __post_init__(self) -> None:
        for name in ("cam_suppression_weight", "gate_weight", "gamma0", "gamma", "weight_offset", "balance_factor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.inference_earliest_exit < 0 or self.min_epochs < 0:
            raise ValueError("inference_earliest_exit and min_epochs must be non-negative")


class Gate(nn.Module):
    def __init__(self, width: int, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled).squeeze(1)  # the gate's logit; sigmoid gives P(exit)


class ConvExit(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        hidden = max(1, channels // 4)
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.cam = nn.Conv2d(channels, num_classes, 1)
        self.gate = Gate(channels)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        a = self.body(h)
        cam = self.cam(a)
        return cam.mean(dim=(2, 3)), cam, self.gate(a.detach().mean(dim=(2, 3)))


class DenseExit(nn.Module):
    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        hidden = max(1, width // 4)
        self.body = nn.Sequential(
            nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, width), nn.ReLU()
        )
        self.head = nn.Linear(width, num_classes)
        self.gate = Gate(width)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        a = self.body(h)
        return self.head(a), None, self.gate(a.detach())


class OccamNetwork(nn.Module):
    """The registered network as a trunk, with an exit after each of its stages."""

    def __init__(self, trunk: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        was_training = trunk.training
        trunk.eval()
        with torch.no_grad():
            probe = next(trunk.parameters())
            maps = trunk.feature_maps(torch.zeros(2, *input_shape, device=probe.device, dtype=probe.dtype))
        trunk.train(was_training)
        self.exits = nn.ModuleList(
            ConvExit(m.shape[1], num_classes) if m.dim() == 4 else DenseExit(m.shape[1], num_classes) for m in maps
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the trunk's own classifier, which OccamNets never uses."""
        unused = {id(p) for p in self.trunk.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in unused]

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        maps = self.trunk.feature_maps(x)
        return [exit_(h.detach() if k == 0 else h) for k, (exit_, h) in enumerate(zip(self.exits, maps))]


def early_exit(gate_probabilities: torch.Tensor, earliest: int) -> torch.Tensor:
    """(B,) the exit of each sample: the first k >= earliest with gate >= 0.5, else the last.
    `gate_probabilities` is (num_exits, B)."""
    confident = gate_probabilities >= 0.5
    confident[:earliest] = False
    confident[-1] = True  # the last exit takes every sample that no earlier exit took
    return confident.float().argmax(dim=0)  # argmax returns the first maximum


def cam_suppression(cam: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over samples and locations of KL(uniform || softmax_c cam) where the true class's CAM
    is not above its spatial mean (elsewhere 0)."""
    b, c, h, w = cam.shape
    flat = cam.reshape(b, c, h * w)
    true_class = flat[torch.arange(b), y]  # (B, HW)
    suppress = (true_class <= true_class.mean(dim=1, keepdim=True)).float()
    log_uniform = -torch.log(torch.tensor(float(c), device=cam.device))
    kl = (log_uniform - F.log_softmax(flat, dim=1)).mean(dim=1)  # sum_c (1/c)(log(1/c) - log p_c)
    return (suppress * kl).mean()


def balanced_gate_loss(gate_logit: torch.Tensor, target: torch.Tensor, balance_factor: float) -> torch.Tensor:
    """BCE of the gate against `target`, exit and continue samples weighted by
    (1 / (their count / the larger count)) ** balance_factor (the official ExitGateLoss)."""
    exits, continues = target.sum(), (1 - target).sum()
    larger = torch.maximum(exits, continues)
    eps = 1e-5
    weight = torch.where(
        target > 0,
        (larger / (exits + eps * larger)) ** balance_factor,
        (larger / (continues + eps * larger)) ** balance_factor,
    )
    return (weight * F.binary_cross_entropy_with_logits(gate_logit, target, reduction="none")).mean()


@register_method("occamnets")
class OccamNets(Method):
    supervision = Supervision.NONE
    Hparams = OccamNetsHparams
    search_space = {
        "cam_suppression_weight": lambda rng: float(rng.choice([0.0, 0.1, 0.5])),
        "gamma0": lambda rng: float(rng.choice([1.0, 3.0, 5.0])),
        "weight_offset": lambda rng: float(rng.choice([0.0, 0.1, 0.5])),
    }
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams: OccamNetsHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = OccamNetwork(ctx.model_factory(), ctx.input_shape, ctx.num_classes).to(ctx.device)
        self.nets["main"] = self.net
        self.optimizers["main"] = ctx.optimizer_factory(self.net.trainable_parameters())
        exits, n, c, device = len(self.net.exits), ctx.num_train, ctx.num_classes, ctx.device
        if not 0 <= hparams.inference_earliest_exit < exits:
            raise ValueError(f"inference_earliest_exit must be below the {exits} exits of this network")
        # Per exit: this epoch's class-wise right/seen counts, every sample's last gate target, and
        # the running max of the CE weight; an epoch counter for `min_epochs`; exit shares.
        self.register_buffer("right", torch.zeros(exits, c, device=device))
        self.register_buffer("seen", torch.zeros(exits, c, device=device))
        self.register_buffer("gate_target", torch.zeros(exits, n, device=device))
        self.register_buffer("max_weight", torch.zeros(exits, device=device))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("exit_count", torch.zeros(exits, device=device))

    def thresholds(self) -> list[float]:
        h = self.hparams
        return [h.acc_threshold + k * h.acc_threshold_step for k in range(len(self.net.exits))]

    def _gate_targets(self, k: int, index: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        correct = (logits.argmax(1) == y).float()
        self.right[k].index_add_(0, y, correct)
        self.seen[k].index_add_(0, y, torch.ones_like(correct))
        present = self.seen[k] > 0
        class_mean = (self.right[k] / self.seen[k].clamp_min(1)).sum() / present.sum()
        # A tensor condition, not a Python `if`: no host round trip per exit and step on a GPU.
        record = (class_mean <= self.thresholds()[k]) | (self.epoch < self.hparams.min_epochs)
        self.gate_target[k, index] = torch.where(record, correct, self.gate_target[k, index])
        return self.gate_target[k, index]

    def _weighted_ce(self, k: int, ce: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, previous_gate):
        if k == 0:
            weight = F.softmax(logits.detach(), dim=1).gather(1, y[:, None]).squeeze(1) ** self.hparams.gamma0
        else:
            weight = (1 - previous_gate.detach()) ** self.hparams.gamma
        self.max_weight[k] = torch.maximum(self.max_weight[k], weight.max())
        return (weight / (self.max_weight[k] + 1e-5) + self.hparams.weight_offset) * ce

    def train_step(self, batch: Batch) -> StepOutput:
        h, y = self.hparams, batch.y
        outputs = self.net(batch.x)
        loss = torch.zeros((), device=y.device)
        previous_gate = None
        for k, (logits, cam, gate_logit) in enumerate(outputs):
            ce = F.cross_entropy(logits, y, reduction="none")
            if cam is not None and h.cam_suppression_weight > 0:
                loss = loss + h.cam_suppression_weight * cam_suppression(cam, y)
            if h.gate_weight > 0:
                target = self._gate_targets(k, batch.index, logits.detach(), y)
                loss = loss + h.gate_weight * balanced_gate_loss(gate_logit, target, h.balance_factor)
            loss = loss + self._weighted_ce(k, ce, logits, y, previous_gate).mean()
            previous_gate = torch.sigmoid(gate_logit)
        chosen = early_exit(torch.stack([torch.sigmoid(g) for _, _, g in outputs]).detach(), h.inference_earliest_exit)
        self.exit_count.index_add_(0, chosen, torch.ones_like(chosen, dtype=self.exit_count.dtype))
        predicted = torch.stack([o[0].detach() for o in outputs])[chosen, torch.arange(len(y))]
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": F.cross_entropy(predicted, y, reduction="none")})

    def logits(self, x: torch.Tensor, role: str) -> torch.Tensor:
        outputs = self.net(x)
        chosen = early_exit(
            torch.stack([torch.sigmoid(g) for _, _, g in outputs]), self.hparams.inference_earliest_exit
        )
        return torch.stack([o[0] for o in outputs])[chosen, torch.arange(len(x), device=x.device)]

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        self.right.zero_()
        self.seen.zero_()
        self.max_weight.zero_()
        self.epoch += 1

    def epoch_diagnostics(self) -> dict[str, float]:
        """The share of training samples whose earliest confident exit was each exit."""
        shares = (self.exit_count / self.exit_count.sum().clamp_min(1)).tolist()
        self.exit_count.zero_()
        return {f"exit_{k}_share": share for k, share in enumerate(shares)}
