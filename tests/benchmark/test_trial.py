"""A resolved trial records its method's registered defaults beside its hyper-parameters, so the
torch-free report can name what a trial set off them; the record is not part of the trial's key."""

import dataclasses
import json

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.trial import ResolvedTrial, TrialConfig


def test_a_resolved_trial_records_the_defaults_it_was_resolved_against():
    trial = resolve_trial(TrialConfig("cmnist", "disent", {"ratio": 99.5}, {"lr": 0.01}, epochs=213))
    assert trial.method_hparams["lr"] == 0.01 and trial.method_defaults["lr"] is None
    assert {k: v for k, v in trial.method_hparams.items() if k != "lr"} == {
        k: v for k, v in trial.method_defaults.items() if k != "lr"
    }
    assert json.loads(trial.to_json())["method_defaults"] == trial.method_defaults  # stored in the config


def test_the_recorded_defaults_are_not_part_of_the_key():
    trial = resolve_trial(TrialConfig("cmnist", "lff", {"ratio": 99.0}))
    assert "method_defaults" not in trial.key_fields()
    assert dataclasses.replace(trial, method_defaults={"q": 0.1}).key == trial.key


def test_a_configuration_stored_before_defaults_were_recorded_still_loads():
    trial = resolve_trial(TrialConfig("cmnist", "lff", {"ratio": 99.0}))
    old = json.loads(trial.to_json())
    del old["method_defaults"]
    loaded = ResolvedTrial.from_json(json.dumps(old))
    assert loaded.method_defaults is None and loaded.key == trial.key  # None: not recorded
