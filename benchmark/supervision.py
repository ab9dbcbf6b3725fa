"""What a method is told about the bias: the three supervision types of the paper's tables.
Torch-free ground floor: the trainer enforces them, the report prints their symbols."""

from __future__ import annotations

import enum


class Supervision(str, enum.Enum):
    """What a method is told about the bias (docs/protocol.md#vocabulary)."""

    NONE = "none"  # ○ e.g. Vanilla, LfF
    BIAS_TAILORED = "bias-tailored"  # ◐ knowledge of the bias type built into the method (HEX, ReBias)
    BIAS_LABELS = "bias-labels"  # ● reads the bias attribute of training samples (Group DRO, REPAIR)

    @property
    def symbol(self) -> str:
        return {"none": "○", "bias-tailored": "◐", "bias-labels": "●"}[self.value]

    @property
    def receives_bias_labels(self) -> bool:
        return self is Supervision.BIAS_LABELS


SUPERVISION_SYMBOLS = {s.value: s.symbol for s in Supervision}
