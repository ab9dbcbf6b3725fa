"""JTT (methods/jtt.py): the error set is exactly what the stage-1 model gets wrong, stage 1 is T
epochs of ERM that never touch the final model or the bias labels, the upsampled epoch is the
documented multiset, and the error set survives a checkpoint (stage 1 never reruns on resume)."""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch
from torch import nn

from debiasbench.methods.base import METHODS, Batch, Supervision, resolve_hparams
from debiasbench.methods.jtt import JTT, JTTHparams, upsampled_indices


def fixed_linear() -> nn.Module:
    """A 2-class linear model predicting argmax(x): identity weights, no bias."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    return model


# Predicted class = argmax(x): samples 1, 3 and 4 are on the wrong side of the diagonal.
INPUTS = torch.tensor([[2.0, 0.0], [2.0, 1.0], [0.0, 3.0], [0.0, 1.0], [1.0, 0.5], [0.5, 1.5]])
TARGETS = torch.tensor([0, 1, 1, 0, 1, 1])
ERRORS = torch.tensor([False, True, False, True, True, False])


def test_upsampled_multiset_has_every_sample_once_and_every_error_upweight_more_times() -> None:
    pool = upsampled_indices(ERRORS, upweight=3)
    counts = collections.Counter(pool.tolist())
    assert counts == {0: 1, 1: 4, 2: 1, 3: 4, 4: 4, 5: 1}


def test_epoch_is_a_shuffle_of_the_upsampled_multiset(toy_context) -> None:
    method = JTT(JTTHparams(upweight=3), toy_context(INPUTS, TARGETS))
    method.error_set.copy_(ERRORS)
    method.identified.fill_(True)
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == sorted(upsampled_indices(ERRORS, 3).tolist())
    assert len(order) == 6 + 3 * 3
    assert torch.equal(order, method.epoch_indices(0, torch.Generator().manual_seed(0)))  # seeded by the hook


def test_train_length_epoch_draws_n_indices_from_the_upsampled_pool(toy_context) -> None:
    method = JTT(JTTHparams(upweight=3, epoch_length="train"), toy_context(INPUTS, TARGETS))
    method.error_set.copy_(ERRORS)
    method.identified.fill_(True)
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    pool = collections.Counter(upsampled_indices(ERRORS, 3).tolist())
    assert len(order) == 6
    assert all(count <= pool[i] for i, count in collections.Counter(order.tolist()).items())


def test_no_errors_means_plain_erm_epochs(toy_context) -> None:
    method = JTT(JTTHparams(upweight=50), toy_context(INPUTS, TARGETS))
    method.identified.fill_(True)  # the error set stays empty
    assert sorted(method.epoch_indices(0, torch.Generator()).tolist()) == list(range(6))


def test_stage_one_error_set_is_what_the_identification_model_misclassifies(toy_context) -> None:
    steps: list[int] = []

    class CountingSGD(torch.optim.SGD):
        def step(self, closure=None):
            steps.append(id(self))
            return super().step(closure)

    ctx = dataclasses.replace(
        toy_context(INPUTS, TARGETS),
        model_factory=fixed_linear,
        # lr 0: the identification model stays argmax(x), so E is known.
        optimizer_factory=lambda params: CountingSGD(params, lr=0.0),
    )
    method = JTT(JTTHparams(identification_epochs=3, identification_batch_size=4), ctx)
    final_before = [p.detach().clone() for p in method.net.parameters()]
    method.prepare()
    assert torch.equal(method.error_set, ERRORS)
    assert bool(method.identified)
    # T = 3 epochs of ceil(6 / 4) = 2 steps, all on the identification model's own optimiser.
    main_optimizer = id(method.optimizers["main"])
    assert len(steps) == 6 and main_optimizer not in steps and len(set(steps)) == 1
    # The final model is fresh: stage 1 never moved it.
    assert all(torch.equal(a, b) for a, b in zip(final_before, method.net.parameters()))
    assert method.epoch_diagnostics() == {"error_set_fraction": pytest.approx(0.5)}


def test_stage_one_is_erm_that_learns(toy_context) -> None:
    """On a separable toy problem a trained identification model leaves (almost) no error set;
    the same model at lr 0 (untrained) leaves many."""
    torch.manual_seed(0)
    x = torch.randn(64, 2)
    y = (x[:, 0] > 0).long()
    error_counts = {}
    for lr in (0.0, 0.5):
        torch.manual_seed(1)
        method = JTT(JTTHparams(identification_epochs=10, identification_batch_size=16), toy_context(x, y, lr=lr))
        method.prepare()
        error_counts[lr] = int(method.error_set.sum())
    assert error_counts[0.5] <= 2 < 10 <= error_counts[0.0], error_counts


def test_never_reads_bias_labels(toy_context, poisoned_bias) -> None:
    assert JTT.supervision is Supervision.NONE
    torch.manual_seed(0)
    method = JTT(JTTHparams(upweight=2), toy_context(INPUTS, TARGETS, biases=poisoned_bias, num_bias=2))
    method.prepare()
    order = method.epoch_indices(0, torch.Generator().manual_seed(0))
    index = order[:4]
    method.train_step(Batch(index=index, x=INPUTS[index], y=TARGETS[index], bias=poisoned_bias))
    method.epoch_diagnostics()


def test_train_step_is_plain_cross_entropy(toy_context) -> None:
    torch.manual_seed(0)
    method = JTT(JTTHparams(), toy_context(INPUTS, TARGETS, lr=1.0))
    replica = type(method.net)(2, 2)
    replica.load_state_dict(method.net.state_dict())
    nn.functional.cross_entropy(replica(INPUTS), TARGETS).backward()
    method.train_step(Batch(index=torch.arange(6), x=INPUTS, y=TARGETS))
    for after, ref in zip(method.net.parameters(), replica.parameters()):
        torch.testing.assert_close(after.detach(), ref.detach() - ref.grad)


def test_error_set_survives_a_checkpoint_and_is_required(toy_context, saved_and_loaded) -> None:
    ctx = dataclasses.replace(
        toy_context(INPUTS, TARGETS),
        model_factory=fixed_linear,
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.0),
    )
    method = JTT(JTTHparams(upweight=2), ctx)
    method.prepare()
    restored = JTT(JTTHparams(upweight=2), ctx)
    with pytest.raises(RuntimeError, match="prepare"):
        restored.epoch_indices(0, torch.Generator())  # no error set yet: refuse, don't train plain ERM
    restored.load_checkpoint_state(saved_and_loaded(method.checkpoint_state()))
    assert torch.equal(restored.error_set, ERRORS) and bool(restored.identified)
    generator = lambda: torch.Generator().manual_seed(3)
    assert torch.equal(restored.epoch_indices(1, generator()), method.epoch_indices(1, generator()))


def test_hparams_registration_and_search_space() -> None:
    assert METHODS.get("jtt") is JTT
    assert resolve_hparams(JTT, "cmnist") == JTTHparams(identification_epochs=1, upweight=50)
    drawn = resolve_hparams(JTT, "cmnist", hparams_seed=3)
    assert drawn.identification_epochs in (1, 2, 5, 10, 20) and drawn.upweight in (10, 20, 50, 100)
    for bad in ({"identification_epochs": 0}, {"upweight": -1}, {"epoch_length": "half"}):
        with pytest.raises(ValueError):
            JTTHparams(**bad)


def test_trains_one_epoch_through_the_trainer(train_toy_epoch) -> None:
    output = train_toy_epoch("jtt", {"upweight": 5})
    assert output.trial.supervision == "none"
    fractions = [r[5] for r in output.rows if r[3] == "method" and r[4] == "error_set_fraction"]
    assert len(fractions) == 1 and 0.0 <= fractions[0] <= 1.0


def test_resume_keeps_the_error_set_and_matches_an_uninterrupted_run(tmp_path, toy_env, trial_api, monkeypatch) -> None:
    trial = trial_api.resolve_trial(trial_api.TrialConfig("toy", "jtt", method_hparams={"upweight": 3}, epochs=2))
    strip = lambda out: [
        row
        for row in zip(*(out.metrics[c] for c in ("epoch", "role", "split", "subset", "metric", "value")))
        if row[4] != "seconds"
    ]
    uninterrupted = trial_api.train_trial(trial, toy_env)
    checkpoints = dataclasses.replace(toy_env, checkpoint_dir=tmp_path / "ckpt")

    class Preempted(Exception):
        pass

    def stop_after_first(summary):
        if summary["epoch"] == 1:
            raise Preempted

    with pytest.raises(Preempted):
        trial_api.train_trial(trial, checkpoints, on_epoch=stop_after_first)
    prepared = []
    original = JTT.prepare
    monkeypatch.setattr(JTT, "prepare", lambda self: prepared.append(1) or original(self))
    resumed = trial_api.train_trial(trial, checkpoints)
    assert resumed.resumed_from_epoch == 1 and prepared == []  # stage 1 is not rerun
    assert strip(resumed) == strip(uninterrupted)
