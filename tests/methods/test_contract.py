"""The method contract, for every registered method at once (DomainBed's test over every algorithm,
timm's over every model): the declarations are consistent, and each method goes through set-up,
training, evaluation and a checkpoint round trip in the real trainer on a tiny dataset of each kind
(an MLP on vectors, a convolutional network on images). A new method gets these checks for free."""

import dataclasses
import math

import pytest

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.supervision import Supervision
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths
from debiasbench.methods.base import METHODS

# Test-only methods registered by other test modules or the toy plugin.
_FIXTURES = ("always_fails", "spy_")
REGISTERED = sorted(name for name in METHODS.names() if not name.startswith(_FIXTURES))
# Shorter first stages where the defaults would spend minutes on toy data (the rule is unchanged).
TOY_HPARAMS = {"lff_be": {"biased_model_train_iter": 20, "selection_every": 10}}


def test_the_contract_covers_the_methods_this_suite_ships():
    shipped = {
        "vanilla",
        "lff",
        "smote",
        "occamnets",
        "adversarial",
        "balanced_batches",
        "disent",
        "lff_be",
        "pgd",
        "lc",
    }
    assert shipped <= set(REGISTERED)


@pytest.mark.parametrize("name", REGISTERED)
def test_declarations_are_consistent(name):
    cls = METHODS.get(name)
    assert dataclasses.is_dataclass(cls.Hparams) and cls.Hparams.__dataclass_params__.frozen
    fields = {f.name for f in dataclasses.fields(cls.Hparams)}
    assert set(cls.search_space) <= fields, (
        f"search-space names that are not hyper-parameters: {set(cls.search_space) - fields}"
    )
    assert cls.predictor_role in cls.roles
    assert isinstance(cls.supervision, Supervision)
    cls.Hparams()  # the defaults are valid


@pytest.fixture
def env(tmp_path, toy_plugin):
    return TrainEnv(paths=DataPaths(tmp_path, tmp_path / "cache"), device="cpu", num_threads=1)


def _rows(output):
    keep = ("epoch", "role", "split", "subset", "metric", "value")
    return [r for r in zip(*(output.metrics[c] for c in keep)) if r[4] != "seconds"]


class Preempted(Exception):
    pass


@pytest.mark.parametrize("dataset", ["toy", "toy_image"])
@pytest.mark.parametrize("name", REGISTERED)
def test_trains_evaluates_and_resumes_exactly(name, dataset, env, tmp_path):
    trial = resolve_trial(TrialConfig(dataset, name, method_hparams=TOY_HPARAMS.get(name, {}), epochs=2))
    uninterrupted = train_trial(trial, env)
    rows = _rows(uninterrupted)
    accuracy = [
        v for e, r, s, b, m, v in rows if s == "test" and b == "all" and m == "accuracy" and r == trial.predictor_role
    ]
    assert len(accuracy) == 2 and all(0 <= v <= 1 for v in accuracy)
    assert all(math.isfinite(v) for *_, v in rows if not isinstance(v, str))

    def preempt_after_epoch_1(summary):
        if summary["epoch"] == 1:
            raise Preempted

    checkpoints = dataclasses.replace(env, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(Preempted):
        train_trial(trial, checkpoints, on_epoch=preempt_after_epoch_1)
    resumed = train_trial(trial, checkpoints)
    assert resumed.resumed_from_epoch == 1
    assert _rows(resumed) == rows, "a resumed run must end exactly where an uninterrupted one does"
