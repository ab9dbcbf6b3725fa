"""debiasbench.benchmark.paper.protocol (the torch-free copy of the paper's protocol the report reads) equals the
registered datasets' and methods' own defaults, so the two cannot drift apart."""

import dataclasses

import pytest

from debiasbench.benchmark.paper.protocol import (
    PAPER_DATASET_PARAMS,
    PAPER_EPOCHS,
    PAPER_METHOD_HPARAMS,
    protocol_departures,
)
from debiasbench.datasets.base import DATASETS
from debiasbench.methods.base import METHODS, resolve_hparams


@pytest.mark.parametrize("dataset", sorted(PAPER_EPOCHS))
def test_dataset_protocol_matches_the_registry(dataset):
    cls = DATASETS.get(dataset)
    params = cls.make_params({})
    assert cls.train_protocol(params).epochs == PAPER_EPOCHS[dataset]
    resolved = cls.resolved_params(params)
    assert {k: resolved[k] for k in PAPER_DATASET_PARAMS[dataset]} == PAPER_DATASET_PARAMS[dataset]


@pytest.mark.parametrize("method", sorted(PAPER_METHOD_HPARAMS))
def test_method_defaults_match_the_registry(method):
    for dataset in sorted(PAPER_EPOCHS):
        hparams = dataclasses.asdict(resolve_hparams(METHODS.get(method), dataset, 0, {}))
        hparams.pop("variant", None)  # REPAIR's variants are all the paper's
        assert hparams == PAPER_METHOD_HPARAMS[method], (method, dataset)


def test_departures_name_what_differs():
    assert protocol_departures("cmnist", "lff", 100, {"ratio": 99.0, "assignment": "reference"}, {"q": 0.7}) == []
    assert protocol_departures("cmnist", "lff", 40, {"assignment": "random"}, {"q": 0.5}) == [
        "epochs=40 (paper: 100)",
        "assignment=random (paper: reference)",
        "lff.q=0.5 (paper: 0.7)",
    ]
    assert protocol_departures("image_table", "vanilla", 1, {}, {}) == []  # no paper protocol to depart from


def test_a_method_beyond_the_paper_departs_from_its_recorded_defaults():
    defaults = {"lr": None, "lr_decay_step": None, "q": 0.7}
    hparams = {"lr": 0.01, "lr_decay_step": 10000, "q": 0.7}
    assert protocol_departures("cmnist", "disent", 213, {}, hparams, defaults) == [
        "epochs=213 (paper: 100)",
        "disent.lr=0.01 (default: None)",
        "disent.lr_decay_step=10000 (default: None)",
    ]
    assert protocol_departures("cmnist", "disent", 100, {}, defaults, defaults) == []
    # Recorded before defaults were: nothing is claimed about its hyper-parameters either way.
    assert protocol_departures("cmnist", "disent", 100, {}, hparams, None) == []
    # A paper method is judged against the paper's values, never against recorded defaults.
    assert protocol_departures("cmnist", "lff", 100, {}, {"q": 0.7}, {"q": 0.5}) == []
