"""The shared trainer: bias labels reach only methods allowed to see them, CPU training is
deterministic for a seed, and a trial resumed from a checkpoint ends exactly where an
uninterrupted one does."""

import dataclasses

import pytest
import torch.nn.functional as F

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths
from debiasbench.methods.base import METHODS, Batch, Method, StepOutput, Supervision, register_method

SEEN: dict[str, list] = {}


class _Spy(Method):
    def __init__(self, hparams, ctx) -> None:
        super().__init__(hparams, ctx)
        self.net = self.add_net("main")
        SEEN[self.name] = [ctx.train_bias]

    def train_step(self, batch: Batch) -> StepOutput:
        SEEN[self.name].append(batch.bias)
        loss = F.cross_entropy(self.net(batch.x), batch.y, reduction="none")
        self.zero_grad_all()
        loss.mean().backward()
        self.step_all()
        return StepOutput(loss=loss.mean().detach(), per_sample_loss={"main": loss.detach()})


for _name, _supervision in (
    ("spy_none", Supervision.NONE),
    ("spy_tailored", Supervision.BIAS_TAILORED),
    ("spy_labels", Supervision.BIAS_LABELS),
):
    if _name not in METHODS:
        register_method(_name)(type(_name, (_Spy,), {"supervision": _supervision}))


@pytest.fixture
def env(tmp_path, toy_plugin):
    return TrainEnv(paths=DataPaths(tmp_path, tmp_path / "cache"), device="cpu", num_threads=1)


@pytest.mark.parametrize("method,sees_labels", [("spy_none", False), ("spy_tailored", False), ("spy_labels", True)])
def test_bias_labels_reach_only_methods_that_may_use_them(env, method, sees_labels):
    train_trial(resolve_trial(TrialConfig("toy", method, epochs=1)), env)
    context_bias, *batch_biases = SEEN[method]
    assert batch_biases, "the method trained on no batch"
    if sees_labels:
        assert context_bias is not None and all(b is not None for b in batch_biases)
    else:
        assert context_bias is None and all(b is None for b in batch_biases)


def _values(output, **where):
    rows = zip(*(output.metrics[c] for c in ("epoch", "role", "split", "subset", "metric", "value")))
    return [
        r[-1]
        for r in rows
        if all(r[i] == where[k] for i, k in enumerate(("epoch", "role", "split", "subset", "metric")) if k in where)
    ]


def test_same_seed_same_numbers_other_seed_other_numbers(env):
    trial = resolve_trial(TrialConfig("toy", "lff", epochs=2))
    first, second = train_trial(trial, env), train_trial(trial, env)
    drop_seconds = lambda out: [v for v, m in zip(out.metrics["value"], out.metrics["metric"]) if m != "seconds"]
    assert drop_seconds(first) == drop_seconds(second)
    other = train_trial(dataclasses.replace(trial, trial_seed=1), env)
    assert drop_seconds(other) != drop_seconds(first)


def test_resume_from_checkpoint_matches_uninterrupted_run(env, tmp_path):
    trial = resolve_trial(TrialConfig("toy", "lff", epochs=3))
    uninterrupted = train_trial(trial, env)
    checkpoints = dataclasses.replace(env, checkpoint_dir=tmp_path / "ckpt")

    class Preempted(Exception):
        pass

    def preempt_after_epoch_2(summary):
        if summary["epoch"] == 2:
            raise Preempted

    with pytest.raises(Preempted):
        train_trial(trial, checkpoints, on_epoch=preempt_after_epoch_2)
    resumed = train_trial(trial, checkpoints)
    assert resumed.resumed_from_epoch == 2
    strip = lambda out: [
        (e, r, s, b, m, v)
        for e, r, s, b, m, v in zip(*(out.metrics[c] for c in ("epoch", "role", "split", "subset", "metric", "value")))
        if m != "seconds"
    ]
    assert strip(resumed) == strip(uninterrupted)


def test_metrics_cover_every_role_and_alignment(env):
    output = train_trial(resolve_trial(TrialConfig("toy", "lff", epochs=1)), env)
    for role in ("biased", "debiased"):
        for subset in ("aligned", "conflicting"):
            assert len(_values(output, epoch=1, role=role, split="train", subset=subset, metric="loss")) == 1
            assert 0.0 <= _values(output, epoch=1, role=role, split="test", subset=subset, metric="accuracy")[0] <= 1.0
    groups = [
        v
        for s, m, v in zip(output.metrics["subset"], output.metrics["metric"], output.metrics["value"])
        if s == "group" and m == "count"
    ]
    assert len(groups) == 2 * 16 and sum(groups) == 2 * 200
    assert set(output.predictions["role"]) == {"biased", "debiased"}


def test_corrupt_checkpoint_is_ignored(env, tmp_path):
    checkpoints = dataclasses.replace(env, checkpoint_dir=tmp_path / "ckpt")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"not a checkpoint")
    output = train_trial(resolve_trial(TrialConfig("toy", "vanilla", epochs=1)), checkpoints)
    assert output.resumed_from_epoch == 0


def test_unsupervised_method_on_data_without_bias_labels_is_refused_when_it_needs_them(toy_plugin):
    from debiasbench.benchmark.experiments.resolve import InvalidTrialError
    from debiasbench.datasets.base import DATASETS

    toy = DATASETS.get("toy")
    try:
        toy.has_bias_labels = False
        with pytest.raises(InvalidTrialError, match="needs bias labels"):
            resolve_trial(TrialConfig("toy", "spy_labels"))
        resolve_trial(TrialConfig("toy", "spy_none"))
    finally:
        toy.has_bias_labels = True


class _CountsSteps(_Spy):
    """Reports how many steps it took each epoch, then resets the count."""

    steps = 0

    def train_step(self, batch: Batch) -> StepOutput:
        self.steps += 1
        return super().train_step(batch)

    def epoch_diagnostics(self):
        steps, self.steps = self.steps, 0
        return {"steps_this_epoch": steps}


if "spy_diagnostics" not in METHODS:
    register_method("spy_diagnostics")(type("spy_diagnostics", (_CountsSteps,), {}))


def test_method_diagnostics_are_stored_once_per_epoch(env):
    trial = resolve_trial(TrialConfig("toy", "spy_diagnostics", epochs=2))
    output = train_trial(trial, env)
    batches = -(-400 // 64)  # toy: 400 training samples, batch size 64, last batch kept
    assert _values(output, role="-", split="train", subset="method", metric="steps_this_epoch") == [batches, batches]
