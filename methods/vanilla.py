"""Vanilla ERM: one network trained with plain cross-entropy (docs/methods.md#vanilla)."""

from __future__ import annotations

import torch.nn.functional as F

from methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method


@register_method("vanilla")
class Vanilla(Method):
    supervision = Supervision.NONE
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")

    def train_step(self, batch: Batch) -> StepOutput:
        per_sample = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        loss = per_sample.mean()
        self.zero_grad_all()
        loss.backward()
        self.step_all()
        return StepOutput(loss=loss.detach(), per_sample_loss={"main": per_sample.detach()})
