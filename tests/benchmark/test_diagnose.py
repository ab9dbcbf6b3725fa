"""`run_all.py --diagnose`: the trials it plans (Table 1's, key for key, on the controlled datasets),
the dataset hooks behind them, its refusals, and one run end to end on the CelebA fixture."""

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from debiasbench import cli
from debiasbench.benchmark.experiments.diagnose import DiagnosisUnsupportedError, plan_diagnosis
from debiasbench.benchmark.experiments.planning import resolve_all
from debiasbench.benchmark.paper.grids import build_grid
from debiasbench.datasets.base import DATASETS, DataPaths

TESTS = Path(__file__).resolve().parents[1]


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(configs) -> list[str]:
    return sorted(t.key for t in resolve_all(configs))


@pytest.fixture
def paths(tmp_path):
    return DataPaths(tmp_path, tmp_path / "cache", allow_download=False)


@pytest.mark.parametrize("dataset", ["cmnist", "ccifar1", "ccifar2"])
def test_the_controlled_datasets_diagnosis_trials_are_table_1s(dataset, paths):
    plan = plan_diagnosis(dataset, {}, paths)
    table1 = build_grid("paper", tables=[1], datasets=[dataset])
    assert len(plan.configs) == 12 and _keys(plan.configs) == _keys(table1)  # 2 directions x 2 arms x 3 seeds
    assert {c.tables for c in plan.configs} == {(1,)} and {c.method for c in plan.configs} == {"vanilla"}
    first, second = plan.spec.directions
    assert (first.target, first.bias) == (
        {"cmnist": "Digit"}.get(dataset, "Object"),
        {"cmnist": "Color"}.get(dataset, "Corruption"),
    )
    assert (second.target, second.bias) == (first.bias, first.target)
    assert plan.spec.setting.startswith("ratio=99.0, difficulty=4;")
    # The same with fewer seeds and epochs, and from the reverse direction named by target and bias.
    plan = plan_diagnosis(
        dataset,
        {
            "target": "color" if dataset == "cmnist" else "corruption",
            "bias": "digit" if dataset == "cmnist" else "object",
        },
        paths,
        seeds=[0],
        epochs=3,
    )
    assert _keys(plan.configs) == _keys(build_grid("paper", tables=[1], datasets=[dataset], seeds=[0], epochs=3))
    assert plan.spec.directions[0].target in ("Color", "Corruption")


def test_other_ratios_and_difficulties_leave_table_1(paths):
    plan = plan_diagnosis("cmnist", {}, paths, seeds=[0], ratios=[95.0], difficulties=[2])
    params = [c.dataset_params for c in plan.configs]
    assert {p["ratio"] for p in params if not p["unbiased_train"]} == {95.0}
    assert {p["difficulty"] for p in params} == {2} and all(c.tables == () for c in plan.configs)
    with pytest.raises(ValueError, match="one ratio"):
        plan_diagnosis("cmnist", {}, paths, ratios=[95.0, 99.0])


def test_hook_refusals_name_the_reason(paths, toy_plugin):
    with pytest.raises(ValueError, match="with target=digit the bias is color"):
        plan_diagnosis("cmnist", {"target": "digit", "bias": "digit"}, paths)
    with pytest.raises(ValueError, match="chooses unbiased_train itself"):
        plan_diagnosis("ccifar1", {"unbiased_train": True}, paths)
    with pytest.raises(DiagnosisUnsupportedError, match="'bar' cannot be diagnosed: it has no bias labels"):
        plan_diagnosis("bar", {}, paths)
    with pytest.raises(DiagnosisUnsupportedError, match="'toy' cannot be diagnosed: .* no diagnosis_settings hook"):
        plan_diagnosis("toy", {}, paths)


def test_celeba_any_attribute_pair(paths):
    plan = plan_diagnosis(
        "celeba",
        {"target": "wearing_lipstick", "bias": "heavy_makeup", "resolution": 16},
        paths,
        seeds=[0, 1],
        epochs=2,
    )
    params = [
        (c.dataset_params["target"], c.dataset_params["bias"], c.dataset_params.get("balanced_train", False))
        for c in plan.configs
    ]
    assert Counter(params) == {
        ("Wearing_Lipstick", "Heavy_Makeup", False): 2,
        ("Wearing_Lipstick", "Heavy_Makeup", True): 2,
        ("Heavy_Makeup", "Wearing_Lipstick", False): 2,
        ("Heavy_Makeup", "Wearing_Lipstick", True): 2,
    }
    assert plan.spec.directions[1].target_values == ("not Heavy_Makeup", "Heavy_Makeup")
    assert plan.spec.setting == "resolution=16; 2 epochs"


def _image_table(tmp_path) -> dict:
    """A 40-image array with a binary bias (bg) mostly following the label: training rows are 12 cats on
    water + 4 on land, 14 dogs on land + 2 on water."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    labels = ["cat"] * 20 + ["dog"] * 20
    bgs = ["water"] * 12 + ["land"] * 8 + ["land"] * 14 + ["water"] * 6
    splits = ["train"] * 16 + ["test"] * 4 + ["train"] * 16 + ["test"] * 4
    pd.DataFrame({"index": range(40), "label": labels, "bg": bgs, "split": splits}).to_csv(
        tmp_path / "t.csv", index=False
    )
    return {
        "root": str(tmp_path / "images.npy"),
        "table": "t.csv",
        "target": "label",
        "bias": "bg",
        "split_column": "split",
        "model": "mlp",
    }


def test_image_table_reverses_columns_and_balances_by_ratio(tmp_path, paths):
    table = DATASETS.get("image_table")
    params = _image_table(tmp_path)
    settings = table.diagnosis_settings(params, paths)
    assert settings.balanced == {**params, "ratio": 50.0}  # 100 / two bias values
    assert settings.reversed == {**params, "target": "bg", "bias": "label"}
    assert settings.target_values == ("cat", "dog") and settings.bias_values == ("land", "water")
    data = table.load(table.make_params(settings.balanced), paths)
    groups = Counter(zip(data.train.targets.tolist(), data.train.biases.tolist()))
    assert groups == {(0, 1): 4, (0, 0): 4, (1, 0): 2, (1, 1): 2}  # aligned = conflicting in every class
    plan = plan_diagnosis("image_table", params, paths, seeds=[0], epochs=1)
    assert [c.dataset_params.get("ratio") for c in plan.configs] == [None, 50.0, None, 50.0]
    with pytest.raises(ValueError, match="needs bias=COLUMN"):
        plan_diagnosis("image_table", {**params, "bias": None}, paths)


def test_command_line_dry_run_and_refusals(capsys, tmp_path):
    code = cli.main(["--diagnose", "--datasets", "cmnist", "--dry-run", "--results", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0 and "diagnosis of cmnist: 12 trial(s) to run, 0 already complete" in out
    assert cli.main(["--diagnose", "--datasets", "cmnist,celeba", "--dry-run"]) == 2
    assert "exactly one dataset" in capsys.readouterr().err
    assert cli.main(["--diagnose", "--datasets", "cmnist", "--methods", "lff", "--dry-run"]) == 2
    assert "takes no --methods" in capsys.readouterr().err
    assert cli.main(["--diagnose", "--datasets", "bar", "--dry-run"]) == 2
    assert "has no bias labels" in capsys.readouterr().err


@pytest.mark.ray
def test_diagnose_end_to_end_on_the_celeba_fixture(tmp_path, capsys):
    """An arbitrary attribute pair, both directions, one seed and one epoch through Ray Tune."""
    celeba = _load_module("celeba_fixture", TESTS / "datasets" / "test_celeba.py")
    celeba.make_celeba(tmp_path)
    results = tmp_path / "results"
    argv = [
        "--diagnose",
        "--datasets",
        "celeba",
        "--dataset-param",
        "target=Wearing_Lipstick",
        "--dataset-param",
        "bias=Heavy_Makeup",
        "--dataset-param",
        "resolution=8",
        "--dataset-param",
        "pretrained=false",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--data-root",
        str(tmp_path),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--results",
        str(results),
        "--progress",
        "off",
        "--max-concurrent",
        "2",
        "--device",
        "cpu",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "diagnosis of celeba: 4 trial(s) completed" in out and "Bias diagnosis of celeba" in out
    folder = results / "diagnosis"
    table = pd.read_csv(folder / "diagnosis.csv")
    assert list(zip(table["target"], table["bias"])) == [
        ("Wearing_Lipstick", "Heavy_Makeup"),
        ("Heavy_Makeup", "Wearing_Lipstick"),
    ]
    assert set(table["verdict"]) <= {"malignant", "benign", "inconclusive"} and table["verdict"].notna().all()
    assert (table[["n_biased", "n_balanced"]] == 1).all().all() and table["learned_first"].notna().all()
    for row in table.itertuples():
        assert f"{row.target} with bias {row.bias}: {row.verdict}" in out
    for name in (
        "diagnosis.md",
        "diagnosis.json",
        "diagnosis_loss.png",
        "diagnosis_loss.pdf",
        "groups_Wearing_Lipstick_Heavy_Makeup_biased_matrix.csv",
        "groups_Heavy_Makeup_Wearing_Lipstick_balanced.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    matrix = pd.read_csv(folder / "groups_Wearing_Lipstick_Heavy_Makeup_biased_matrix.csv", index_col=0)
    assert list(matrix.index) == ["not Wearing_Lipstick", "Wearing_Lipstick"]
    assert list(matrix.columns) == ["not Heavy_Makeup", "Heavy_Makeup"]
    # A second run trains nothing and writes the same verdicts.
    assert cli.main(argv) == 0
    assert "0 trial(s) completed, 0 failed, 4 skipped" in capsys.readouterr().out
    assert list(pd.read_csv(folder / "diagnosis.csv")["verdict"]) == list(table["verdict"])
