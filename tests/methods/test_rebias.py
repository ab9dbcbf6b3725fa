"""ReBias: the HSIC_1 estimator against its U-statistic definition, the median heuristic, the
small-receptive-field biased family, one alternating step against a hand-written replica, and
end-to-end trials (resume included)."""

import copy
import dataclasses
import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths
from debiasbench.methods.base import METHODS, Batch, MethodContext, Supervision
from debiasbench.methods.hsic import hsic_rbf, hsic_unbiased, median_sigma, rbf_kernel, squared_distances
from debiasbench.methods.rebias import ReBias, ReBiasHparams, auto_biased_net, build_biased_net
from debiasbench.models import build_model

# -- HSIC -----------------------------------------------------------------------------------


def hsic_u_statistic(k: torch.Tensor, l: torch.Tensor) -> float:
    """HSIC_1 from its definition: the average over ordered 4-tuples of distinct indices of
    k_ij l_ij + k_ij l_qr - 2 k_ij l_iq (Song et al. 2012)."""
    m = k.shape[0]
    total = 0.0
    for i, j, q, r in itertools.permutations(range(m), 4):
        total += float(k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q])
    return total / (m * (m - 1) * (m - 2) * (m - 3))


def hsic_matrix_form(k: torch.Tensor, l: torch.Tensor) -> float:
    """The closed form written with explicit matrices: trace, 1'K1, 1'KL1."""
    m = k.shape[0]
    kt, lt = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
    one = torch.ones(m, dtype=k.dtype)
    value = (
        torch.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (one @ kt @ lt @ one)
    )
    return float(value / (m * (m - 3)))


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_hsic_estimator_matches_its_definition(kernel):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(7, 3, generator=g, dtype=torch.float64)
    v = u[:, :2] ** 2 + 0.3 * torch.randn(7, 2, generator=g, dtype=torch.float64)
    if kernel == "rbf":
        k, l = rbf_kernel(u, 1.3), rbf_kernel(v, 0.8)
    else:  # non-constant diagonal: the diagonal must really be zeroed
        k, l = u @ u.T, v @ v.T
    expected = hsic_u_statistic(k, l)
    assert float(hsic_unbiased(k, l)) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert hsic_matrix_form(k, l) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_rbf_kernel_and_distances():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    assert torch.allclose(squared_distances(x), torch.cdist(x, x) ** 2, atol=1e-5)
    assert float(rbf_kernel(x, 2.0)[0, 1]) == pytest.approx(math.exp(-25 / 8))
    assert torch.allclose(torch.diag(rbf_kernel(x, 0.5)), torch.ones(3))


def test_hsic_near_zero_when_independent_and_larger_when_dependent():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(256, 8, generator=g)
    independent = torch.randn(256, 8, generator=g)
    dependent = torch.tanh(u) + 0.2 * torch.randn(256, 8, generator=g)
    s = float(median_sigma([squared_distances(u)]))
    h_indep = float(hsic_rbf(u, independent, s, s))
    h_dep = float(hsic_rbf(u, dependent, s, s))
    assert abs(h_indep) < 5e-4
    assert h_dep > 100 * abs(h_indep) and h_dep > 2e-3
    # Unbiased: over many small independent batches the estimates average to about zero.
    draws = torch.stack(
        [hsic_rbf(torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g), 2.0, 2.0) for _ in range(200)]
    )
    assert abs(float(draws.mean())) < 3 * float(draws.std()) / math.sqrt(200)


def test_hsic_needs_more_than_three_samples():
    with pytest.raises(ValueError, match="more than 3"):
        hsic_unbiased(torch.eye(3), torch.eye(3))


def test_median_sigma_uses_off_diagonal_pairs():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    d = squared_distances(x)
    pairs = torch.tensor([1.0, 9.0, 49.0, 4.0, 36.0, 16.0])  # every i != j pair once
    expected = torch.cat([pairs, pairs]).median().sqrt()
    assert float(median_sigma([d])) == pytest.approx(float(expected))


# -- the biased family ----------------------------------------------------------------------


def receptive_field(net, shape):
    net.eval()
    x = torch.randn(1, *shape, requires_grad=True)
    out = net.local_features(x)
    out[0, :, out.shape[-2] // 2, out.shape[-1] // 2].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    return (touched.max(0).values - touched.min(0).values + 1).tolist()


def test_biased_family_follows_the_input_size():
    assert auto_biased_net((3, 28, 28)) == "conv1x1"
    assert auto_biased_net((3, 32, 32)) == "conv3x3_1x1"
    assert auto_biased_net((3, 64, 64)) == "bagnet18" and auto_biased_net((3, 224, 224)) == "bagnet18"
    torch.manual_seed(0)
    assert receptive_field(build_biased_net("auto", 10, (3, 28, 28)), (3, 28, 28)) == [1, 1]
    assert receptive_field(build_biased_net("auto", 10, (3, 32, 32)), (3, 32, 32)) == [3, 3]
    bagnet = build_biased_net("auto", 6, (3, 64, 64))
    assert type(bagnet).__name__ == "BagNet18"
    assert receptive_field(bagnet, (3, 64, 64)) == [5, 5]
    assert bagnet.features(torch.randn(2, 3, 64, 64)).shape == (2, 512)
    # Any registered model can be named directly.
    assert type(build_biased_net("simple_convnet", 2, (3, 32, 32))).__name__ == "SimpleConvNet"


def test_hparams_are_validated():
    with pytest.raises(ValueError, match="sigma"):
        ReBiasHparams(sigma="mean")
    with pytest.raises(ValueError, match="sigma"):
        ReBiasHparams(sigma=-1.0)
    with pytest.raises(ValueError, match="biased_net"):
        ReBiasHparams(biased_net="nope")
    assert ReBiasHparams(sigma=1).sigma == 1 and ReBiasHparams(biased_net="mlp").biased_net == "mlp"


def test_registered_contract():
    cls = METHODS.get("rebias")
    assert cls is ReBias and cls.supervision is Supervision.BIAS_TAILORED
    assert cls.roles == ("main", "biased") and cls.predictor_role == "main" and cls.drop_last


# -- one alternating step ---------------------------------------------------------------------


def _context(n=24, num_classes=3, lr=0.5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % num_classes
    return (
        MethodContext(
            dataset="synthetic",
            num_classes=num_classes,
            num_train=n,
            train_targets=y,
            device=torch.device("cpu"),
            model_factory=lambda: build_model("mlp", num_classes, in_features=3 * 8 * 8),
            optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr),
            train_inputs=lambda index: x[index],
            unit_inputs=lambda inputs: inputs,
            input_shape=tuple(x.shape[1:]),
        ),
        x,
        y,
    )


def _replica_step(f, g, x, y, sigma_f, sigma_g, lambda_f, lambda_g, pairing, lr):
    """ReBias' step written out directly: g step, then the f step against the updated g."""
    opt_f, opt_g = torch.optim.SGD(f.parameters(), lr=lr), torch.optim.SGD(g.parameters(), lr=lr)
    kern = lambda feats, s: torch.exp(-((feats[:, None] - feats[None]) ** 2).sum(-1) / (2 * s * s))
    feat_g = g.features(x)
    g_width = sigma_f if pairing == "reference" else sigma_g
    loss_g = F.cross_entropy(g.classifier(feat_g), y) - lambda_g * hsic_matrix_form_t(
        kern(feat_g, g_width), kern(f.features(x).detach(), sigma_g if pairing == "reference" else sigma_f)
    )
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    feat_f = f.features(x)
    with torch.no_grad():
        feat_g_new = g.features(x)
    loss_f = F.cross_entropy(f.classifier(feat_f), y) + lambda_f * hsic_matrix_form_t(
        kern(feat_f, sigma_f), kern(feat_g_new, sigma_g)
    )
    opt_f.zero_grad()
    loss_f.backward()
    opt_f.step()


def hsic_matrix_form_t(k, l):
    m = k.shape[0]
    kt, lt = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
    one = torch.ones(m, dtype=k.dtype)
    return (
        torch.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (one @ kt @ lt @ one)
    ) / (m * (m - 3))


@pytest.mark.parametrize("pairing", ["reference", "own"])
def test_one_step_matches_the_written_out_update(pairing):
    torch.manual_seed(0)
    ctx, x, y = _context()
    hp = ReBiasHparams(lambda_f=0.7, lambda_g=1.3, sigma="median", sigma_pairing=pairing)
    method = ReBias(hp, ctx)
    assert type(method.g).__name__ == "SimpleConvNet"  # 8x8 inputs: the pixel-wise family
    method.sigma_f.fill_(1.5)
    method.sigma_g.fill_(0.9)
    method.train()
    f0, g0 = copy.deepcopy(method.f), copy.deepcopy(method.g)
    index = torch.arange(16)
    out = method.train_step(Batch(index=index, x=x[index], y=y[index]))
    _replica_step(f0, g0, x[index], y[index], 1.5, 0.9, 0.7, 1.3, pairing, lr=0.5)
    for mine, theirs in ((method.f, f0), (method.g, g0)):
        for (name, a), b in zip(mine.named_parameters(), theirs.parameters()):
            assert torch.allclose(a, b, atol=1e-6), name
    assert set(out.per_sample_loss) == {"main", "biased"} and out.per_sample_loss["main"].shape == (16,)

    # The HSIC terms matter at this tolerance: without them the step lands elsewhere.
    torch.manual_seed(0)
    plain = ReBias(dataclasses.replace(hp, lambda_f=0.0, lambda_g=0.0), ctx)
    plain.sigma_f.fill_(1.5)
    plain.sigma_g.fill_(0.9)
    plain.train_step(Batch(index=index, x=x[index], y=y[index]))
    assert max(float((a - b).detach().abs().max()) for a, b in zip(plain.g.parameters(), method.g.parameters())) > 1e-4
    assert max(float((a - b).detach().abs().max()) for a, b in zip(plain.f.parameters(), method.f.parameters())) > 1e-5


def test_small_batches_are_refused():
    torch.manual_seed(0)
    ctx, x, y = _context()
    method = ReBias(ReBiasHparams(), ctx)
    with pytest.raises(ValueError, match="more than 3"):
        method.train_step(Batch(index=torch.arange(3), x=x[:3], y=y[:3]))


@pytest.mark.parametrize("bn_mode", ["batch", "eval"])
def test_median_widths_are_computed_without_side_effects(bn_mode):
    torch.manual_seed(0)
    ctx, x, _ = _context(n=40)
    method = ReBias(ReBiasHparams(median_bn_mode=bn_mode), ctx)
    method.train()
    running = [b.clone() for b in method.g.buffers()]
    g_copy = copy.deepcopy(method.g).train(bn_mode == "batch")
    method.epoch_indices(0, torch.Generator().manual_seed(5))
    # 25% of 40 samples rounds up to one block of 40: every sample, in a seeded order.
    order = torch.randperm(40, generator=torch.Generator().manual_seed(int(method.sigma_seed)))
    with torch.no_grad():
        expected_f = median_sigma([squared_distances(method.f.features(x[order]))])
        expected_g = median_sigma([squared_distances(g_copy.features(x[order]))])
    assert float(method.sigma_f) == pytest.approx(float(expected_f), rel=1e-5)
    assert float(method.sigma_g) == pytest.approx(float(expected_g), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(method.g.buffers(), running))  # BN statistics untouched
    assert method.training and method.g.training


def test_fixed_sigma_is_never_recomputed(monkeypatch):
    torch.manual_seed(0)
    ctx, _, _ = _context()
    method = ReBias(ReBiasHparams(sigma=2.5), ctx)
    monkeypatch.setattr(method, "update_sigma", lambda epoch: pytest.fail("median computed for a fixed sigma"))
    assert method.epoch_indices(0, torch.Generator()) is None
    assert float(method.sigma_f) == float(method.sigma_g) == 2.5


def test_per_epoch_updates_can_be_switched_off(monkeypatch):
    torch.manual_seed(0)
    ctx, _, _ = _context()
    method = ReBias(ReBiasHparams(sigma_update_per_epoch=False), ctx)
    epochs = []
    monkeypatch.setattr(method, "update_sigma", epochs.append)
    for epoch in range(3):
        method.epoch_indices(epoch, torch.Generator())
    assert epochs == [0]


# -- end to end -------------------------------------------------------------------------------


def test_trial_on_toy_data_is_deterministic_and_resumes(tmp_path, toy_plugin):
    env = TrainEnv(paths=DataPaths(tmp_path, tmp_path / "cache"), device="cpu", num_threads=1)
    trial = resolve_trial(TrialConfig("toy", "rebias", epochs=2))
    assert trial.supervision == "bias-tailored" and trial.roles == ("main", "biased")
    strip = lambda out: [
        row
        for row in zip(*(out.metrics[c] for c in ("epoch", "role", "split", "subset", "metric", "value")))
        if row[4] != "seconds"
    ]
    uninterrupted = train_trial(trial, env)
    assert strip(train_trial(trial, env)) == strip(uninterrupted)
    checkpoints = dataclasses.replace(env, checkpoint_dir=tmp_path / "ckpt")

    class Preempted(Exception):
        pass

    def stop_after_first(summary):
        if summary["epoch"] == 1:
            raise Preempted

    with pytest.raises(Preempted):
        train_trial(trial, checkpoints, on_epoch=stop_after_first)
    resumed = train_trial(trial, checkpoints)
    assert resumed.resumed_from_epoch == 1
    assert strip(resumed) == strip(uninterrupted)
    roles = {row[1] for row in strip(uninterrupted) if row[2] == "test"}
    assert roles == {"main", "biased"}


def test_trial_on_bar_fixture_with_bagnet(tmp_path):
    spec = importlib.util.spec_from_file_location("bar_fixture", Path(__file__).parents[1] / "datasets" / "test_bar.py")
    bar_fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bar_fixture)
    bar_fixture.make_bar(tmp_path)
    paths = DataPaths(tmp_path, tmp_path / "cache", allow_download=False)
    trial = resolve_trial(TrialConfig("bar", "rebias", {"resolution": 40, "pretrained": False}, epochs=1))
    trial = dataclasses.replace(trial, batch_size=8)
    output = train_trial(trial, TrainEnv(paths=paths, device="cpu", num_threads=1))
    per_class = [
        (r, v)
        for r, s, sub, m, v in zip(*(output.metrics[c] for c in ("role", "split", "subset", "metric", "value")))
        if s == "test" and sub == "class" and m == "accuracy"
    ]
    assert {r for r, _ in per_class} == {"main", "biased"} and len(per_class) == 12
    losses = [
        v
        for r, s, m, v in zip(*(output.metrics[c] for c in ("role", "split", "metric", "value")))
        if s == "train" and m == "loss"
    ]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
