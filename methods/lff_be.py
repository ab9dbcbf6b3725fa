"""LfF with BiasEnsemble (Lee et al., "Revisiting the Importance of Amplifying Bias for Debiasing",
AAAI 2023; docs/successors/lff_be.md).

Read from the official code, kakaoenterprise/BiasEnsemble at 13c01f4: `learner.py::
pretrain_b_ensemble_best` (stage A), `learner.py::train_lff_be` (stage B),
`learner.py::board_pretrain_best_acc` (the early stopping), `train.py` (argparse defaults) and
`scripts/train_codes/train_cmnist.sh` (the Colored MNIST command).

Stage A (`prepare`, before the trainer's first epoch), no bias labels:
  1. [inferred, see below] A random `holdout_fraction` of the training indices this method
     receives is held out; the bias models train on the rest.
  2. For k = 1..num_bias_models: a fresh network of the dataset's architecture is trained with
     GCE(q) (the LfF form, methods/losses.py) for `biased_model_train_iter` steps on batches of the
     protocol's size; the batches of all models come from one stream of back-to-back shuffles, as
     the official models share one loader iterator. After the update of every 0-based step s with
     s % selection_every == 0 its accuracy on the held-out part is measured, and the state with
     the best accuracy so far (strictly better) is kept: the official `board_pretrain_best_acc`,
     called with valid_freq 500, i.e. after updates 1 and 501 of 1000.
  3. p_k(y_i | x_i) of every training sample under each kept model (eval mode, un-augmented), and
        pseudo_aligned_i = #{k : p_k(y_i | x_i) > tau} >= agreement,
     stored in the `pseudo_aligned` buffer (the stage-A models are discarded).
Stage B (the trainer's epochs): LfF (methods/lff.py) with one change. The EMAs of both networks
are updated for every sample of the batch and W = e_B / (e_B + e_D + 1e-8) as in LfF, but f_B is
trained with plain CE only on the batch's pseudo-aligned samples:
  L = sum_{i in S} CE_B,i / |S| + mean_i(W_i * CE_D,i),   S = {i in batch : pseudo_aligned_i}
(the official `self.criterion(logit_b[curr_align_flag], ...)`, with `self.criterion` =
nn.CrossEntropyLoss; GCE is used only in stage A). `biased_loss="gce"` is an ablation option.

Validation split. The official code early-stops each bias model on DFA's `valid` folder, which has
the training bias (LDD issue #1). This suite's paper protocol has no validation split, and under its
`validation` protocol the trainer's held-out part is never shown to a method. So this method holds
out its own random 10% of the indices it receives (ctx.train_targets / ctx.train_inputs): no bias
labels, biased like the official valid split. Those samples still get a pseudo-label in step 3 and
are trained on in stage B. `holdout_fraction=0` trains on everything and keeps each model's last
state (no early stopping).

Defaults (Colored MNIST, `train.py` and `train_cmnist.sh`): num_bias_models 5,
biased_model_train_iter 1000, tau (biased_model_softmax_threshold) 0.99, agreement 3, q 0.7
(`GeneralizedCELoss(q=0.7)` in `Learner.__init__`), ema_alpha 0.7, selection_every 500
(`--valid_freq`); the command adds lr 0.01 (a named option here: `lr=0.01`; None = the protocol's)
and no learning-rate decay. holdout_fraction 0.1 [inferred].

Deviations: the protocol's optimiser, rate, epochs and batches (official: Adam lr 0.01, 50,000
steps of 256, last batch dropped); a batch without pseudo-aligned samples gives f_B a zero loss
(the official code takes the mean of an empty tensor, NaN, and stops with NameError); the class
maximum of e_B is guarded only against 0/0, as in methods/lff.py (official: max + 1e-8); stage A's
batches use the trial's augmented view where the dataset has one (the official train loader's
transforms), its probabilities the un-augmented inputs (the official pretrain loader, CMNIST:
no augmentation either way). No checkpoint is selected for stage B: the suite reports the last
epoch (the official code keeps the best test accuracy).
Supervision: none. Bias labels are never read (the official code reads them only for logging).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debiasbench.methods.base import Batch, MethodContext, StepOutput, Supervision, register_method
from debiasbench.methods.lff import LfF, LfFHparams
from debiasbench.methods.losses import generalized_ce

_EVAL_CHUNK = 1024  # inputs per forward when measuring accuracy or probabilities


@dataclass(frozen=True)
class LfFBEHparams(LfFHparams):
    biased_loss: str = "ce"  # stage B's f_B loss: CE (official train_lff_be); "gce" is an ablation
    num_bias_models: int = 5  # train.py --num_bias_models
    biased_model_train_iter: int = 1000  # steps per bias model (train.py)
    softmax_threshold: float = 0.99  # tau (train.py --biased_model_softmax_threshold)
    agreement: int = 3  # models that must exceed tau (train.py --agreement)
    holdout_fraction: float = 0.1  # [inferred] this method's own biased split for early stopping
    selection_every: int = 500  # train.py --valid_freq: the 0-based steps after which a model is checked
    bias_model_batch_size: int | None = None  # None: the protocol's (official: the train loader's, 256)
    lr: float | None = None  # None: the protocol's; the official Colored MNIST command uses 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_bias_models < 1:
            raise ValueError(f"num_bias_models must be at least 1, got {self.num_bias_models}")
        if self.biased_model_train_iter < 1:
            raise ValueError(f"biased_model_train_iter must be at least 1, got {self.biased_model_train_iter}")
        if not 0.0 <= self.softmax_threshold < 1.0:
            raise ValueError(f"softmax_threshold must lie in [0, 1), got {self.softmax_threshold}")
        if not 1 <= self.agreement <= self.num_bias_models:
            raise ValueError(f"agreement must lie in [1, num_bias_models={self.num_bias_models}], got {self.agreement}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")
        if self.selection_every < 1:
            raise ValueError(f"selection_every must be at least 1, got {self.selection_every}")
        if self.bias_model_batch_size is not None and self.bias_model_batch_size < 1:
            raise ValueError(f"bias_model_batch_size must be positive or None, got {self.bias_model_batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive or None (the protocol's), got {self.lr}")


def pseudo_aligned(target_probabilities: torch.Tensor, threshold: float, agreement: int) -> torch.Tensor:
    """(N,) bool: at least `agreement` of the (M, N) rows p_k(y_i | x_i) are strictly above `threshold`."""
    return (target_probabilities > threshold).sum(dim=0) >= agreement


def split_holdout(n: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(training part, held-out part) of range(n): a random round(fraction * n) are held out."""
    order = torch.randperm(n, generator=generator)
    held = round(fraction * n)
    return order[held:], order[:held]


def batch_stream(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches from back-to-back shuffles of `pool`, the last partial batch of each
    shuffle dropped (the official loader's drop_last), unless the pool is smaller than one batch."""
    size = min(batch_size, len(pool))
    while True:
        order = pool[torch.randperm(len(pool), generator=generator)]
        for start in range(0, len(order) - size + 1, size):
            yield order[start : start + size]


@torch.no_grad()
def _chunked(model: nn.Module, ctx: MethodContext, index: torch.Tensor, fn) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = [fn(model(ctx.train_inputs(chunk)), ctx.train_targets[chunk]) for chunk in index.split(_EVAL_CHUNK)]
    model.train(was_training)
    return torch.cat(out)


def holdout_accuracy(model: nn.Module, ctx: MethodContext, index: torch.Tensor) -> float:
    """Plain accuracy of `model` on the training samples `index` (eval mode, un-augmented)."""
    correct = _chunked(model, ctx, index, lambda logits, y: (logits.argmax(1) == y).float())
    return float(correct.mean())


def target_probabilities(model: nn.Module, ctx: MethodContext) -> torch.Tensor:
    """(N,) p(y_i | x_i) of every training sample (eval mode, un-augmented)."""
    index = torch.arange(ctx.num_train, device=ctx.device)
    return _chunked(model, ctx, index, lambda logits, y: F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1))


@register_method("lff_be")
class LfFBE(LfF):
    supervision = Supervision.NONE
    Hparams = LfFBEHparams
    # [inferred] around the official values (5 models, 1000 steps, tau 0.99, agreement 3).
    search_space = {
        "biased_model_train_iter": lambda rng: int(rng.choice([500, 1000, 2000])),
        "softmax_threshold": lambda rng: float(rng.choice([0.9, 0.95, 0.99])),
        "agreement": lambda rng: int(rng.choice([2, 3, 4])),
        "ema_alpha": LfF.search_space["ema_alpha"],
    }
    roles = ("debiased", "biased")
    predictor_role = "debiased"

    def __init__(self, hparams: LfFBEHparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)  # f_B and f_D, fresh (stage B's f_B is not a stage-A model)
        if hparams.lr is not None:
            for role, net in self.nets.items():
                self.optimizers[role] = ctx.optimizer_factory(net.parameters(), lr=hparams.lr)
        n, device = ctx.num_train, ctx.device
        self.register_buffer("pseudo_aligned", torch.zeros(n, dtype=torch.bool, device=device))
        self.register_buffer("bias_model_accuracy", torch.zeros(hparams.num_bias_models, device=device))
        self.register_buffer("identified", torch.zeros((), dtype=torch.bool, device=device))

    # -- stage A --------------------------------------------------------------------------
    def _optimizer(self, params) -> torch.optim.Optimizer:
        lr = self.hparams.lr
        return self.ctx.optimizer_factory(params) if lr is None else self.ctx.optimizer_factory(params, lr=lr)

    def train_bias_model(self, batches: Iterator[torch.Tensor], holdout: torch.Tensor) -> tuple[nn.Module, float]:
        """One fresh GCE model, `biased_model_train_iter` steps; returns it at its best held-out
        accuracy (checked after the update of every step s with s % selection_every == 0) and that
        accuracy, or at its last state (accuracy nan) when nothing is held out."""
        h, ctx = self.hparams, self.ctx
        model = ctx.model_factory().to(ctx.device)
        optimizer = self._optimizer(model.parameters())
        inputs = ctx.augmented_inputs or ctx.train_inputs
        best_accuracy, best_state = -1.0, None
        model.train()
        for step in range(h.biased_model_train_iter):
            index = next(batches).to(ctx.device)
            loss = generalized_ce(model(inputs(index)), ctx.train_targets[index], h.q).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if len(holdout) and step % h.selection_every == 0:
                accuracy = holdout_accuracy(model, ctx, holdout)
                if accuracy > best_accuracy:
                    best_accuracy = accuracy
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if best_state is None:
            return model, math.nan
        model.load_state_dict(best_state)
        return model, best_accuracy

    def prepare(self) -> None:
        h, ctx = self.hparams, self.ctx
        batch_size = h.bias_model_batch_size or ctx.batch_size
        if batch_size < 1:
            raise ValueError("lff_be: the context carries no batch size; set bias_model_batch_size")
        # Seeded from the trial's global RNG (seeded by the trainer): reproducible per trial seed.
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        pool, holdout = split_holdout(ctx.num_train, h.holdout_fraction, generator)
        holdout = holdout.to(ctx.device)
        batches = batch_stream(pool, batch_size, generator)  # one stream for every model
        probabilities = []
        for k in range(h.num_bias_models):
            model, accuracy = self.train_bias_model(batches, holdout)
            self.bias_model_accuracy[k] = accuracy
            probabilities.append(target_probabilities(model, ctx))
            del model
        self.pseudo_aligned.copy_(pseudo_aligned(torch.stack(probabilities), h.softmax_threshold, h.agreement))
        self.identified.fill_(True)

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> torch.Tensor | None:
        if not bool(self.identified):
            raise RuntimeError("lff_be: the pseudo-aligned mask is missing; prepare() must run before the first epoch")
        return None  # the trainer's uniform permutation

    # -- stage B --------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> StepOutput:
        index, x, y = batch.index, batch.x, batch.y
        logits_b = self.biased(x)
        logits_d = self.debiased(x)
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        ce_d = F.cross_entropy(logits_d, y, reduction="none")

        # Both EMAs (and so W) see every sample, pseudo-aligned or not, as in the official code.
        weight = self.track_difficulty(index, y, ce_b, ce_d)

        selected = self.pseudo_aligned[index]
        per_sample_b = ce_b if self.hparams.biased_loss == "ce" else generalized_ce(logits_b, y, self.hparams.q)
        # Mean over the pseudo-aligned samples only (no host sync; 0 when there are none). `where`,
        # not a product with the mask: the other samples then give exactly zero gradient.
        masked = torch.where(selected, per_sample_b, torch.zeros_like(per_sample_b))
        loss_b = masked.sum() / selected.sum().clamp_min(1).to(masked.dtype)
        loss = loss_b + (weight * ce_d).mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(
            loss=loss.detach(),
            per_sample_loss={"biased": ce_b.detach(), "debiased": ce_d.detach()},
        )

    def epoch_diagnostics(self) -> dict[str, float]:
        """The share of training samples marked pseudo-aligned, and the bias models' mean best
        accuracy on this method's held-out part (absent without one)."""
        diagnostics = {"pseudo_aligned_fraction": float(self.pseudo_aligned.float().mean())}
        accuracy = float(self.bias_model_accuracy.mean())
        if not math.isnan(accuracy):  # the store keeps finite values only
            diagnostics["bias_model_holdout_accuracy"] = accuracy
        return diagnostics
