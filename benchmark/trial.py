"""Trial configuration as plain dataclasses, and the stable trial key. Torch-free, so grids and
the report can use it without importing the training stack."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SELECTION_PROTOCOLS = ("paper", "validation")


@dataclass(frozen=True)
class TrialConfig:
    """One grid entry, as a user or a grid writes it (unresolved: defaults not filled in)."""

    dataset: str
    method: str
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    method_hparams: Mapping[str, Any] = field(default_factory=dict)
    trial_seed: int = 0
    data_seed: int = 0
    hparams_seed: int = 0
    epochs: int | None = None  # None: the dataset's protocol
    protocol: str = "paper"  # selection protocol (docs/protocol.md#training-and-selection)
    tables: tuple[int, ...] = ()  # which paper tables need this trial (not part of the key)
    validation_fraction: float = 0.1  # held out under the "validation" protocol


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial with every default resolved; its key is a hash of all of this."""

    dataset: str
    dataset_params: dict[str, Any]
    method: str
    method_hparams: dict[str, Any]
    supervision: str
    predictor_role: str
    roles: tuple[str, ...]
    trial_seed: int
    data_seed: int
    hparams_seed: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    optimizer: str
    protocol: str
    tables: tuple[int, ...] = ()
    validation_fraction: float = 0.1
    # The dataset generator's version: a new generator is a new experiment, so it is part of the key.
    data_generator_version: str = ""
    # The method's registered defaults for this dataset, recorded (not keyed) so that the torch-free
    # report can name every hyper-parameter a trial sets off them. None: not recorded (older trials).
    method_defaults: dict[str, Any] | None = None

    def key_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("tables")
        fields.pop("method_defaults")  # a record of the registry, not of the experiment
        if self.protocol == "paper":
            fields.pop("validation_fraction")  # unused without a validation split
        return fields

    @property
    def key(self) -> str:
        return trial_key(self.key_fields())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ResolvedTrial:
        data = json.loads(text)
        data["roles"] = tuple(data["roles"])
        data["tables"] = tuple(data.get("tables", ()))
        return cls(**data)


def trial_key(fields: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]
