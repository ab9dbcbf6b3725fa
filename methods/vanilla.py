"""Vanilla ERM: one network trained with plain cross-entropy (docs/methods.md#vanilla)."""

from __future__ import annotations

from debiasbench.methods.base import Batch, Method, MethodContext, StepOutput, Supervision, register_method


@register_method("vanilla")
class Vanilla(Method):
    supervision = Supervision.NONE
    roles = ("main",)
    predictor_role = "main"

    def __init__(self, hparams, ctx: MethodContext) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")

    def train_step(self, batch: Batch) -> StepOutput:
        return self.cross_entropy_step(self.net, batch)
