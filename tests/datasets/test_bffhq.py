"""BFFHQ on a fake tree in the published layout that the tests write (bffhq_kit.py): exact group
counts per split, DFA's conflicting-only test set, pct selection, and errors for untrusted names
and missing folders."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
from bffhq_kit import SIZE, TEST_COUNTS, TRAIN_COUNTS, VALID_COUNTS, fake_face, make_bffhq

from debiasbench import cli
from debiasbench.benchmark.experiments.preflight import PreflightError, check_dataset_params
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DATASETS, DataNotFoundError, DataPaths
from debiasbench.datasets.bffhq import BFFHQ, dfa_epochs, parse_name, read_index

CONFLICTING = {group: n for group, n in TEST_COUNTS.items() if group[0] != group[1]}


@pytest.fixture
def bffhq_paths(tmp_path):
    make_bffhq(tmp_path)
    return DataPaths(tmp_path, tmp_path / "cache", allow_download=False)


def _load(paths, **params):
    return BFFHQ.load(BFFHQ.make_params({"resolution": 16, **params}), paths)


def _groups(split) -> dict[tuple[int, int], int]:
    counts = Counter(zip(split.targets.tolist(), split.biases.tolist()))
    return {(t, b): counts.get((t, b), 0) for t in (0, 1) for b in (0, 1)}


def _nonzero(counts: dict) -> dict:
    return {group: n for group, n in counts.items() if n}


def test_registered_with_dfas_protocol():
    assert DATASETS.get("bffhq") is BFFHQ and BFFHQ.has_bias_labels
    assert (BFFHQ.target_attribute, BFFHQ.bias_attribute) == ("Age", "Gender")
    protocol = BFFHQ.train_protocol(BFFHQ.make_params())
    assert (protocol.lr, protocol.weight_decay, protocol.batch_size, protocol.optimizer) == (1e-4, 0.0, 64, "adam")
    # 50,000 steps of 64 over 19,200 images (drop_last): 300 steps per epoch, 166.7 -> 167 epochs.
    assert protocol.epochs == dfa_epochs() == 167 and 19_200 // 64 == 300 and 167 * 300 == 50_100
    params = BFFHQ.make_params()
    assert dataclasses.asdict(params) == {
        "pct": 0.5,
        "resolution": 224,
        "test_split": "conflicting",
        "pretrained": False,
    }


def test_parameters_are_validated_and_canonical():
    assert BFFHQ.make_params({"pct": 1}).pct == 1.0 and isinstance(BFFHQ.make_params({"pct": 5}).pct, float)
    assert BFFHQ.resolved_params(BFFHQ.make_params({"pct": 2})) == {
        "pct": 2.0,
        "resolution": 224,
        "test_split": "conflicting",
        "pretrained": False,
    }
    with pytest.raises(ValueError, match=r"invalid pct 3: .*0\.5, 1, 2 or 5"):
        BFFHQ.make_params({"pct": 3})
    with pytest.raises(ValueError, match="invalid test_split 'valid': choose conflicting .* or all"):
        BFFHQ.make_params({"test_split": "valid"})
    with pytest.raises(ValueError, match="resolution"):
        BFFHQ.make_params({"resolution": 4})
    with pytest.raises(ValueError, match="has no parameter"):
        BFFHQ.make_params({"ratio": 99.5})
    # The preflight check quotes the dataset's own valid values for a value of the wrong type.
    with pytest.raises(PreflightError, match=r"pct='half' of 'bffhq' must be a number.*0\.5, 1, 2 or 5"):
        check_dataset_params("bffhq", {"pct": "half"})


def test_default_load_exact_groups_and_conflicting_test(bffhq_paths):
    data = _load(bffhq_paths)
    assert _groups(data.train) == TRAIN_COUNTS[0.5]
    assert _groups(data.test) == {**{g: 0 for g in TEST_COUNTS}, **CONFLICTING}  # DFA: target != bias only
    assert len(data.test) == 5 and bool((data.test.targets != data.test.biases).all())
    assert data.train.images.shape == (10, 3, 16, 16) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (5, 3, 16, 16)
    assert (data.class_names, data.bias_names, data.num_classes, data.num_bias_values) == (
        ["young", "old"],
        ["female", "male"],
        2,
        2,
    )
    assert data.aligned_bias.tolist() == [0, 1]
    assert data.aligned_mask(data.train).sum() == 7 and data.aligned_mask(data.test).sum() == 0
    spec = data.input_spec
    assert (spec.crop_padding, spec.horizontal_flip, spec.crop_size) == (4, True, None)
    assert spec.mean == (0.4914, 0.4822, 0.4465) and spec.std == (0.2023, 0.1994, 0.2010)  # DFA's (CIFAR-10's)
    assert data.model == "resnet18" and data.model_kwargs == {"pretrained": False}


def test_whole_test_folder(bffhq_paths):
    data = _load(bffhq_paths, test_split="all")
    assert _groups(data.test) == TEST_COUNTS and len(data.test) == 8
    assert data.aligned_mask(data.test).sum() == 3


def test_index_of_every_split_matches_the_names(bffhq_paths):
    index = read_index(bffhq_paths)
    assert {split: index[split].group_counts() for split in index} == {
        "train": TRAIN_COUNTS[0.5],
        "valid": VALID_COUNTS,
        "test": TEST_COUNTS,
    }
    for split in index.values():
        assert [parse_name(f) for f in split.files] == list(zip(split.targets.tolist(), split.biases.tolist()))
        assert split.targets.dtype == np.int64 and split.biases.dtype == np.int64
    train = index["train"]
    # align/ before conflict/, each in path order; the .DS_Store in align/ is skipped.
    assert [f.parent.parent.name for f in train.files] == ["align"] * 7 + ["conflict"] * 3
    assert all(f.suffix == ".png" for f in train.files)


def test_decoded_rows_carry_their_own_labels(bffhq_paths):
    """Each decoded image shows its bias colour and its target shape (rows follow the labels)."""
    data = _load(bffhq_paths, test_split="all")
    for split in (data.train, data.test):
        images = split.images.float()
        red_minus_blue = (images[:, 0] - images[:, 2]).mean((1, 2))
        assert ((red_minus_blue < 0).long() == split.biases).all()  # bias 1 draws in blue on dark
        # The bar (target 1) leaves the top-centre of the image in background colour; the square covers it.
        centre_top = images[:, :, 5, 8]
        corner = images[:, :, 0, 0]
        covered = (centre_top - corner).abs().sum(1) > 60
        assert ((~covered).long() == split.targets).all()


def test_pct_selects_the_folder_flat_or_nested(bffhq_paths):
    data = _load(bffhq_paths, pct=1)
    assert _groups(data.train) == TRAIN_COUNTS[1.0]  # 1pct is written flat, 0.5pct with class subfolders
    assert _groups(data.test) == {**{g: 0 for g in TEST_COUNTS}, **CONFLICTING}
    with pytest.raises(DataNotFoundError, match=r"bffhq/2pct is missing.*2pct/align/.*docs/data\.md#bffhq"):
        _load(bffhq_paths, pct=2)


def test_missing_folders_name_the_layout_and_the_download(tmp_path):
    paths = DataPaths(tmp_path, tmp_path / "cache")
    with pytest.raises(DataNotFoundError) as error:
        _load(paths)
    message = str(error.value)
    assert "\n" not in message and f"{tmp_path}/bffhq is missing" in message
    for part in ("0.5pct/align/", "0.5pct/conflict/", "bffhq/valid/", "bffhq/test/", "<id>_<target>_<bias>.png"):
        assert part in message
    assert "Learning-Debiased-Disentangled" in message and "--data-root" in message and "docs/data.md#bffhq" in message
    bffhq = make_bffhq(tmp_path)
    for folder in sorted((bffhq / "test").iterdir()):
        folder.unlink()
    with pytest.raises(DataNotFoundError, match="bffhq/test holds no image"):
        _load(paths)
    (bffhq / "test").rmdir()
    with pytest.raises(DataNotFoundError, match="bffhq/test is missing"):
        _load(paths)
    import shutil

    shutil.rmtree(bffhq / "0.5pct" / "conflict")
    with pytest.raises(DataNotFoundError, match="0.5pct/conflict is missing"):
        _load(paths)


@pytest.mark.parametrize(
    "name,problem",
    [
        ("00999_young_0.png", r"does not match the expected name <id>_<target>_<bias>\.png"),
        ("00999_0.png", "does not match the expected name"),
        ("notes.txt", "does not match the expected name"),
        ("00999_2_0.png", "has target 2 and bias 0; both must be 0 or 1"),
    ],
)
def test_bad_file_names_are_refused_naming_the_file(bffhq_paths, name, problem):
    bad = bffhq_paths.data_root / "bffhq" / "valid" / name
    fake_face(0, 0).save(bad, format="PNG")
    with pytest.raises(ValueError, match=problem) as error:
        _load(bffhq_paths)
    assert str(bad) in str(error.value)


def test_images_in_the_wrong_train_folder_are_refused(bffhq_paths):
    train = bffhq_paths.data_root / "bffhq" / "0.5pct"
    fake_face(0, 1).save(train / "align" / "0" / "00999_0_1.png")
    with pytest.raises(ValueError, match=r"00999_0_1\.png is in the bias-aligned folder align/.* are 0 and 1"):
        _load(bffhq_paths)
    (train / "align" / "0" / "00999_0_1.png").unlink()
    fake_face(1, 1).save(train / "conflict" / "1" / "00998_1_1.png")
    with pytest.raises(ValueError, match="bias-conflicting folder conflict/.*different labels"):
        _load(bffhq_paths)
    (train / "conflict" / "1" / "00998_1_1.png").unlink()
    (train / "align" / "0" / "deeper").mkdir()
    with pytest.raises(ValueError, match="nested too deep"):
        _load(bffhq_paths)


def test_cache_is_built_once_and_shared_by_test_split(bffhq_paths, monkeypatch):
    first = _load(bffhq_paths)
    import debiasbench.datasets.bffhq as module

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(module, "build_memmap_cache", fail)
    again = _load(bffhq_paths, test_split="all", pretrained=True)  # neither changes the cached images
    assert torch.equal(first.train.images, again.train.images)
    with pytest.raises(AssertionError, match="decoded again"):
        _load(bffhq_paths, resolution=SIZE)
    # A changed download (a new image) is a new cache entry, not a stale one.
    fake_face(0, 0).save(bffhq_paths.data_root / "bffhq" / "0.5pct" / "align" / "0" / "00999_0_0.png")
    with pytest.raises(AssertionError, match="decoded again"):
        _load(bffhq_paths)


def test_list_shows_bffhq_and_its_parameters(capsys):
    assert cli.main(["--list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("bffhq "))
    assert "Age/Gender (bias labels)" in line
    assert "'pct': 0.5" in line and "'resolution': 224" in line and "'test_split': 'conflicting'" in line
    assert "'pretrained': False" in line


def test_run_without_the_data_fails_before_training(capsys, tmp_path):
    code = cli.main(
        ["--grid", "user", "--datasets", "bffhq", "--methods", "vanilla", "--seeds", "0", "--epochs", "1"]
        + ["--data-root", str(tmp_path / "data"), "--results", str(tmp_path / "results"), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: BFFHQ not found:") and err.count("\n") == 1
    assert "docs/data.md#bffhq" in err


def test_trial_end_to_end(bffhq_paths):
    trial = resolve_trial(TrialConfig("bffhq", "vanilla", {"resolution": 16}, epochs=1))
    assert trial.dataset_params == {"pct": 0.5, "resolution": 16, "test_split": "conflicting", "pretrained": False}
    assert (trial.batch_size, trial.epochs) == (64, 1)
    trial = dataclasses.replace(trial, batch_size=4)
    output = train_trial(trial, TrainEnv(paths=bffhq_paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("split", "subset", "target", "bias", "metric", "value"))))
    test_rows = [r for r in rows if r[0] == "test"]
    counts = {(r[2], r[3]): r[5] for r in test_rows if r[1] == "group" and r[4] == "count"}
    assert counts == {group: float(n) for group, n in CONFLICTING.items()}
    subsets = {r[1] for r in test_rows if r[4] == "accuracy"}
    assert {"all", "conflicting", "group"} <= subsets and "aligned" not in subsets
    assert output.predictions["prediction"].shape == (5,)


def test_the_raw_data_fingerprint_covers_the_folders_a_trial_reads(tmp_path):
    root = make_bffhq(tmp_path)
    paths = DataPaths(tmp_path, tmp_path / "cache", allow_download=False)
    params = BFFHQ.make_params({"resolution": 16})
    before = BFFHQ.raw_fingerprint(params, paths)
    assert before is not None
    extra = next((root / "test").rglob("*.png"))
    (extra.parent / "99999_1_0.png").write_bytes(extra.read_bytes())  # another copy of the test folder
    assert BFFHQ.raw_fingerprint(params, paths) != before
