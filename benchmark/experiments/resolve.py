"""Resolving a TrialConfig against the registries: defaults filled in, names and parameters
validated with messages that name the fix. Runs in the driver before anything is scheduled."""

from __future__ import annotations

import dataclasses

from debiasbench.benchmark.trial import SELECTION_PROTOCOLS, ResolvedTrial, TrialConfig
from debiasbench.datasets.base import DATASETS
from debiasbench.methods.base import METHODS, default_hparams, resolve_hparams


class InvalidTrialError(ValueError):
    pass


def resolve_trial(config: TrialConfig) -> ResolvedTrial:
    dataset_cls = DATASETS.get(config.dataset)
    method_cls = METHODS.get(config.method)
    if config.protocol not in SELECTION_PROTOCOLS:
        raise InvalidTrialError(
            f"unknown selection protocol {config.protocol!r}; choose one of {', '.join(SELECTION_PROTOCOLS)}"
        )
    if config.protocol == "validation" and not 0.0 < config.validation_fraction < 1.0:
        raise InvalidTrialError(f"validation_fraction must lie in (0, 1), got {config.validation_fraction}")
    supervision = method_cls.supervision_on(config.dataset)
    try:
        params = dataset_cls.make_params(config.dataset_params)
        hparams = resolve_hparams(method_cls, config.dataset, config.hparams_seed, config.method_hparams)
    except (TypeError, ValueError) as error:
        raise InvalidTrialError(f"{config.dataset}/{config.method}: {error}") from None
    if supervision.receives_bias_labels and not dataset_cls.has_bias_labels_for(params):
        raise InvalidTrialError(
            f"method {config.method!r} needs bias labels ({supervision.value}) but dataset "
            f"{config.dataset!r} has none{' with these parameters' if dataset_cls.has_bias_labels else ''}; "
            "run it on a dataset with bias labels"
        )
    protocol = dataset_cls.train_protocol(params)
    epochs = protocol.epochs if config.epochs is None else int(config.epochs)
    if epochs < 1:
        raise InvalidTrialError(f"epochs must be at least 1, got {epochs}")
    for seed_name in ("trial_seed", "data_seed", "hparams_seed"):
        if getattr(config, seed_name) < 0:
            raise InvalidTrialError(f"{seed_name} must be non-negative")
    return ResolvedTrial(
        dataset=config.dataset,
        dataset_params=dataset_cls.resolved_params(params),
        method=config.method,
        method_hparams=dataclasses.asdict(hparams),
        supervision=supervision.value,
        predictor_role=method_cls.predictor_role,
        roles=tuple(method_cls.roles),
        trial_seed=config.trial_seed,
        data_seed=config.data_seed,
        hparams_seed=config.hparams_seed,
        epochs=epochs,
        batch_size=protocol.batch_size,
        lr=protocol.lr,
        weight_decay=protocol.weight_decay,
        optimizer=protocol.optimizer,
        protocol=config.protocol,
        tables=tuple(sorted(set(config.tables))),
        validation_fraction=float(config.validation_fraction),
        data_generator_version=dataset_cls.generator_version,
        method_defaults=default_hparams(method_cls, config.dataset),
    )
