"""The diagnosis's verdict, loss evidence and output files as pure functions of small known stores
(synthetic trials written with the real store API; benchmark/report/diagnosis.py)."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from debiasbench.benchmark.report.diagnosis import (
    DiagnosisSpec,
    DirectionSpec,
    diagnose,
    loss_evidence,
    verdict_of,
    write_diagnosis,
)
from debiasbench.benchmark.store import ResultStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"
_spec = importlib.util.spec_from_file_location("report_synthetic", FIXTURES / "synthetic.py")
syn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(syn)

EPOCHS = 8


def _trial(
    store: ResultStore, target: str, unbiased_train: bool, seed: int, accuracy: float, aligned_loss, conflicting_loss
) -> str:
    """A Colored MNIST Vanilla trial ending at `accuracy` (unbiased test accuracy), with per-epoch
    training loss curves of aligned and conflicting samples and a 2 x 2 per-group matrix."""
    params = {
        "ratio": 10.0 if unbiased_train else 99.0,
        "difficulty": 4,
        "target": target,
        "unbiased_train": unbiased_train,
    }
    config = syn.trial("cmnist", "vanilla", params, seed=seed, epochs=EPOCHS)
    rows = syn.Rows()
    for epoch in range(1, EPOCHS + 1):
        final = epoch == EPOCHS
        rows.evaluation(epoch, "main", "test", accuracy if final else 0.1, accuracy if final else 0.1)
        rows.add(epoch, "main", "train", "aligned", "loss", aligned_loss(epoch))
        rows.add(epoch, "main", "train", "conflicting", "loss", conflicting_loss(epoch))
        for t in (0, 1):
            for b in (0, 1):
                value = (1.0 if t == b else 2 * accuracy - 1.0) if final else 0.0
                rows.add(epoch, "main", "test", "group", "accuracy", value, t, b)
                rows.add(epoch, "main", "test", "group", "count", 50, t, b)
    return syn.write(store, config, rows)


def fast(epoch):  # the aligned loss of a malignant direction: gone within two epochs
    return 2.0 * 0.2 ** (epoch - 1)


def slow(epoch):  # the conflicting loss there: halves only at epoch 6
    return 2.0 * 0.87 ** (epoch - 1)


def _direction(store, target, bias, biased, balanced, aligned=fast, conflicting=slow):
    keys = {
        arm: tuple(
            _trial(store, target.lower(), arm == "balanced", seed, value, aligned, conflicting)
            for seed, value in enumerate(values)
        )
        for arm, values in (("biased", biased), ("balanced", balanced))
    }
    return DirectionSpec(
        target,
        bias,
        keys["biased"],
        keys["balanced"],
        target_values=("zero", "one"),
        bias_values=("red", "green"),
        balanced_how="the unbiased training set",
    )


@pytest.fixture
def store(tmp_path):
    store = ResultStore(tmp_path / "store")
    store.ensure_writable()
    return store


def test_malignant_and_benign_directions_of_a_known_store(store):
    """Table 1's Colored MNIST numbers: Digit with bias Color drops ~46 points (malignant, the
    aligned loss falls first); Color with bias Digit does not drop (benign, losses fall together)."""
    malignant = _direction(store, "Digit", "Color", [0.5034, 0.5050, 0.5018], [0.9641, 0.9648, 0.9634])
    benign = _direction(
        store,
        "Color",
        "Digit",
        [0.9997, 0.9993, 0.9999],
        [1.0, 1.0, 1.0],
        aligned=fast,
        conflicting=lambda e: 1.1 * fast(e),
    )
    spec = DiagnosisSpec("cmnist", (malignant, benign), (0, 1, 2), "ratio=99.0, difficulty=4; 8 epochs")
    table = diagnose(str(store.root), spec).table.set_index("target")

    digit = table.loc["Digit"]
    assert digit["verdict"] == "malignant" and digit["n_biased"] == 3 and digit["n_balanced"] == 3
    assert digit["drop"] == pytest.approx(96.41 - 50.34, abs=1e-6)
    se_b, se_u = 0.16 / math.sqrt(3), 0.07 / math.sqrt(3)
    assert digit["noise"] == pytest.approx(2 * math.sqrt(se_b**2 + se_u**2), rel=1e-6)
    assert digit["learned_first"] == "bias" and digit["learned_first_attribute"] == "Color"
    assert (digit["aligned_half_epoch"], digit["conflicting_half_epoch"]) == (2, 6)
    assert digit["loss_quarter"] == 2 and digit["early_loss_ratio"] == pytest.approx((2 + 1.74) / (2 + 0.4))

    color = table.loc["Color"]
    assert color["verdict"] == "benign" and color["drop"] == pytest.approx(100 - 99.9633333, abs=1e-6)
    assert color["learned_first"] == "target" and color["learned_first_attribute"] == "Color"
    assert color["early_loss_ratio"] == pytest.approx(1.1)


def test_inconclusive_when_the_drop_is_within_the_seed_noise(store):
    noisy = _direction(store, "Digit", "Color", [0.50, 0.70, 0.60], [0.62, 0.80, 0.64])
    spec = DiagnosisSpec("cmnist", (noisy,), (0, 1, 2))
    row = diagnose(str(store.root), spec).table.iloc[0]
    assert row["verdict"] == "inconclusive" and row["drop"] == pytest.approx(8.6667, abs=1e-3)
    assert row["noise"] > row["drop"] > 5
    # noise ~ 1/sqrt(n): floor(3 * (noise / drop)^2) + 1 seeds bring it below the drop.
    needed = math.floor(3 * (row["noise"] / row["drop"]) ** 2) + 1
    assert f"about {needed} seeds" in row["settle"]
    assert "--seeds " + ",".join(str(s) for s in range(needed)) in row["settle"]


@pytest.mark.parametrize(
    "biased,balanced,verdict,fragment",
    [
        ([50.0], [80.0], "malignant", "one seed: confirm with --seeds 0,1,2"),
        ([90.0], [91.5], "benign", "at most 2 (one seed)"),
        ([90.0], [93.0], "inconclusive", "a second seed settles it"),
        ([90.0, 90.2], [93.0, 93.1], "benign", "at most 5"),
        ([95.0, 95.0], [80.0, 80.0], "benign", "-15.00"),  # the balanced set doing worse is no bias harm
        ([], [80.0], "inconclusive", "no completed trial on the biased training set"),
    ],
)
def test_the_verdict_rule(biased, balanced, verdict, fragment):
    result = verdict_of(biased, balanced, seeds=[0])
    assert result.verdict == verdict
    assert fragment in result.reason + " " + result.settle


def _curves(epochs, aligned, conflicting):
    return pd.DataFrame(
        [(e, s, f(e)) for e in range(1, epochs + 1) for s, f in (("aligned", aligned), ("conflicting", conflicting))],
        columns=["epoch", "subset", "loss"],
    )


def test_loss_evidence_halving_epochs_and_ratio():
    # Colored MNIST's malignant direction as measured (100 epochs): aligned halves at 2, conflicting at 33.
    evidence = loss_evidence(_curves(100, fast, lambda e: 3.0 if e < 33 else 1.0))
    assert (evidence.epochs, evidence.quarter, evidence.aligned_half, evidence.conflicting_half) == (100, 25, 2, 33)
    assert evidence.learned_first == "bias"
    # Its benign direction: both halve early, conflicting a little later (ratio about 5): the target.
    evidence = loss_evidence(_curves(100, fast, lambda e: 2.0 * 0.75 ** (e - 1)))
    assert (evidence.aligned_half, evidence.conflicting_half) == (2, 4) and 2 < evidence.ratio < 10
    assert evidence.learned_first == "target"
    # Both halve within the quarter but conflicting stays ten times higher: the bias.
    assert loss_evidence(_curves(8, fast, lambda e: 12 * fast(e))).learned_first == "bias"
    # Nothing halves in the first quarter: unclear. Short runs go by the ratio alone.
    assert loss_evidence(_curves(8, lambda e: 1.0, lambda e: 1.0)).learned_first == "unclear"
    assert loss_evidence(_curves(1, lambda e: 1.0, lambda e: 2.5)).learned_first == "bias"
    assert loss_evidence(_curves(2, lambda e: 1.0, lambda e: 1.2)).learned_first == "target"
    assert loss_evidence(_curves(1, lambda e: 1.0, lambda e: 1.7)).learned_first == "unclear"
    assert loss_evidence(_curves(8, fast, fast).iloc[:0]).learned_first == "n/a"


def test_output_files_and_matrices_with_value_names(store, tmp_path):
    malignant = _direction(store, "Digit", "Color", [0.50, 0.51], [0.96, 0.97])
    benign = _direction(store, "Color", "Digit", [0.99, 0.99], [1.0, 1.0], conflicting=fast)
    spec = DiagnosisSpec("cmnist", (malignant, benign), (0, 1), "ratio=99.0, difficulty=4; 8 epochs")
    out = tmp_path / "diagnosis"
    result, text = write_diagnosis(str(store.root), spec, out)
    assert "Digit" in text and "malignant" in text and "benign" in text and "Rule:" in text
    for name in (
        "diagnosis.md",
        "diagnosis.csv",
        "diagnosis.json",
        "diagnosis_loss.png",
        "diagnosis_loss.pdf",
        "groups_Digit_Color_biased_matrix.csv",
        "groups_Color_Digit_balanced.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert DiagnosisSpec.from_json((out / "diagnosis.json").read_text()) == spec
    matrix = pd.read_csv(out / "groups_Digit_Color_biased_matrix.csv", index_col=0)
    assert list(matrix.index) == ["zero", "one"] and list(matrix.columns) == ["red", "green"]  # rows target
    assert matrix.loc["one", "red"] == pytest.approx(100 * (2 * 0.505 - 1.0))  # mean over the two seeds
    markdown = (out / "diagnosis.md").read_text()
    assert "| Digit | Color = red | Color = green |" in markdown and "| one | 1.0 | 100.0 |" in markdown
    csv = pd.read_csv(out / "diagnosis.csv")
    assert list(csv["verdict"]) == ["malignant", "benign"]


def test_missing_trials_are_listed_and_the_verdict_waits_for_them(store, tmp_path):
    present = _direction(store, "Digit", "Color", [0.5], [0.96])
    spec = DiagnosisSpec("cmnist", (DirectionSpec("Digit", "Color", present.biased, ("0" * 20,)),), (0,))
    result, _ = write_diagnosis(str(store.root), spec, tmp_path / "d")
    assert result.table.iloc[0]["verdict"] == "inconclusive"
    assert result.missing == [f"Digit with bias Color, balanced: trial {'0' * 20} not in the store"]
    assert "Trials not completed" in (tmp_path / "d" / "diagnosis.md").read_text()
