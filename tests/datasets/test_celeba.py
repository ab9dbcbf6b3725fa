"""CelebA on a tiny fixture in torchvision's layout: celeba/img_align_celeba/*.jpg,
list_attr_celeba.txt (count, the 40 names, then -1/1 rows) and list_eval_partition.txt."""

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets._image_decoding import decode_images
from debiasbench.datasets.base import DATASETS, DataNotFoundError, DataPaths
from debiasbench.datasets.celeba import ATTRIBUTES, CelebA, aligned_mapping, attribute_name

BLOND, MALE = ATTRIBUTES.index("Blond_Hair"), ATTRIBUTES.index("Male")
MAKEUP, LIPSTICK = ATTRIBUTES.index("Heavy_Makeup"), ATTRIBUTES.index("Wearing_Lipstick")


def colour_of(i: int) -> tuple[int, int, int]:
    """A distinct solid colour per image index, so tests can tell which file a row came from."""
    return (20 + (i * 37) % 200, 20 + (i * 91) % 200, 20 + (i * 53) % 200)


def make_celeba(root, n: int = 48, size=(22, 27), seed: int = 0):
    """n solid-colour JPEGs plus both text files in the real formats. Partitions are interleaved
    (train, valid and test files alternate), Blond_Hair is mostly female (so the aligned mapping
    is the swap) and Wearing_Lipstick follows Heavy_Makeup (the identity)."""
    rng = np.random.default_rng(seed)
    celeba = root / "celeba"
    images = celeba / "img_align_celeba"
    images.mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    partition = np.array([(0, 0, 1, 0, 2, 0)[i % 6] for i in range(n)])
    attributes = rng.integers(0, 2, size=(n, 40))
    male = rng.random(n) < 0.5
    blond = np.where(male, rng.random(n) < 0.15, rng.random(n) < 0.8)
    attributes[:, MALE], attributes[:, BLOND] = male, blond
    attributes[:, LIPSTICK] = np.where(rng.random(n) < 0.85, attributes[:, MAKEUP], 1 - attributes[:, MAKEUP])
    for i, name in enumerate(names):
        Image.new("RGB", size, colour_of(i)).save(images / name, quality=95)
    lines = [str(n), " ".join(ATTRIBUTES) + " "]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in (2 * row - 1)) for name, row in zip(names, attributes)]
    (celeba / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (celeba / "list_eval_partition.txt").write_text("".join(f"{a} {p}\n" for a, p in zip(names, partition)))
    return attributes, partition


@pytest.fixture
def celeba(tmp_path):
    attributes, partition = make_celeba(tmp_path)
    return DataPaths(tmp_path, tmp_path / "cache", allow_download=False), attributes, partition


def _load(paths, **params):
    return CelebA.load(CelebA.make_params({"resolution": 16, "pretrained": False, **params}), paths)


def test_registered_with_the_paper_protocol():
    assert DATASETS.get("celeba") is CelebA and CelebA.has_bias_labels
    protocol = CelebA.train_protocol(CelebA.make_params())
    assert (protocol.lr, protocol.weight_decay, protocol.batch_size, protocol.epochs) == (1e-4, 1e-4, 256, 50)
    params = CelebA.make_params()
    assert (params.target, params.bias, params.resolution, params.pretrained, params.freeze_backbone) == (
        "Blond_Hair",
        "Male",
        224,
        True,
        False,
    )


def test_train_partition_and_validation_evaluation(celeba):
    paths, attributes, partition = celeba
    data = _load(paths)
    train_rows, valid_rows = np.flatnonzero(partition == 0), np.flatnonzero(partition == 1)
    assert data.train.images.shape == (len(train_rows), 3, 16, 16) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (len(valid_rows), 3, 16, 16)  # validation, not the test partition
    assert data.train.targets.tolist() == attributes[train_rows, BLOND].tolist()
    assert data.train.biases.tolist() == attributes[train_rows, MALE].tolist()
    assert data.test.targets.tolist() == attributes[valid_rows, BLOND].tolist()
    # Each row holds the pixels of its own file (solid colours survive JPEG within a few levels).
    for split, rows in ((data.train, train_rows), (data.test, valid_rows)):
        expected = torch.tensor([colour_of(int(i)) for i in rows], dtype=torch.float32)
        assert (split.images.float().mean((2, 3)) - expected).abs().max() < 6
    assert data.num_classes == 2 and data.num_bias_values == 2
    assert data.class_names == ["not Blond_Hair", "Blond_Hair"]
    assert data.input_spec.horizontal_flip and data.input_spec.crop_size is None
    assert data.input_spec.mean == (0.485, 0.456, 0.406)
    assert data.model == "resnet18" and data.model_kwargs == {"pretrained": False, "freeze_backbone": False}


def test_aligned_mapping_maximises_aligned_training_samples(celeba):
    paths, attributes, partition = celeba
    blond = _load(paths)
    assert blond.aligned_bias.tolist() == [1, 0]  # blond hair goes with "not Male"
    aligned = blond.aligned_mask(blond.train)
    assert int(aligned.sum()) * 2 > len(aligned)
    lipstick = _load(paths, target="Wearing_Lipstick", bias="Heavy_Makeup")
    assert lipstick.aligned_bias.tolist() == [0, 1]
    rows = partition == 0
    assert lipstick.train.targets.tolist() == attributes[rows, LIPSTICK].tolist()
    assert lipstick.train.biases.tolist() == attributes[rows, MAKEUP].tolist()
    assert aligned_mapping(np.array([0, 1, 1]), np.array([1, 0, 0])).tolist() == [1, 0]
    assert aligned_mapping(np.array([0, 1]), np.array([0, 0])).tolist() == [0, 1]  # tie: identity


def test_attribute_names():
    assert attribute_name("BlondHair") == "Blond_Hair" and attribute_name("heavy_makeup") == "Heavy_Makeup"
    with pytest.raises(ValueError) as error:
        CelebA.make_params({"target": "Blonde_Hair"})
    assert "Blond_Hair" in str(error.value) and "Wearing_Necktie" in str(error.value)
    with pytest.raises(ValueError, match="same"):
        CelebA.make_params({"target": "Male", "bias": "Male"})
    assert CelebA.make_params({"target": "HeavyMakeup"}).target == "Heavy_Makeup"
    with pytest.raises(InvalidTrialError, match="unknown CelebA attribute"):
        resolve_trial(TrialConfig("celeba", "vanilla", {"target": "Hair"}))


def test_image_cache_is_one_memmap_shared_by_attribute_pairs(celeba, monkeypatch):
    paths, _, _ = celeba
    first = _load(paths)
    entries = list((paths.cache_dir / "celeba").iterdir())
    assert len(entries) == 1
    assert json.loads((entries[0] / "meta.json").read_text())["arrays"]["train"]["shape"] == [32, 3, 16, 16]
    import debiasbench.datasets._image_decoding as decoding
    import debiasbench.datasets.celeba as module

    arrays = CelebA.images(CelebA.make_params({"resolution": 16}), paths, module.read_metadata(paths))
    assert isinstance(arrays["train"], np.memmap)  # training reads the file, not a copy in memory
    assert np.array_equal(np.asarray(arrays["train"]), first.train.images.numpy())

    monkeypatch.setattr(decoding, "decode_images", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    other = _load(paths, target="Heavy_Makeup", pretrained=True, freeze_backbone=True)
    assert torch.equal(first.train.images, other.train.images)
    assert other.model_kwargs == {"pretrained": True, "freeze_backbone": True}
    with pytest.raises(AssertionError, match="rebuilt"):
        _load(paths, resolution=20)  # another resolution is another entry


def test_interrupted_preprocessing_leaves_nothing_behind(celeba, monkeypatch):
    paths, _, _ = celeba
    import debiasbench.datasets._image_decoding as module

    real = module.load_resized
    calls = []

    def flaky(path, size, mode):
        calls.append(path)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return real(path, size, mode)

    monkeypatch.setattr(module, "load_resized", flaky)
    monkeypatch.setenv("DEBIAS_PREPROCESS_WORKERS", "1")  # in-process, so the patch applies
    with pytest.raises(KeyboardInterrupt):
        _load(paths)
    assert list((paths.cache_dir / "celeba").iterdir()) == []  # no partial entry, no temp dir
    monkeypatch.setattr(module, "load_resized", real)
    assert len(_load(paths).train) == 32


def test_corrupt_entry_is_rebuilt(celeba):
    paths, _, _ = celeba
    good = _load(paths).train.images.clone()  # the clone outlives the memory map truncated below
    entry = next((paths.cache_dir / "celeba").iterdir())
    with open(entry / "train.npy", "r+b") as handle:
        handle.truncate(200)
    rebuilt = _load(paths)
    assert torch.equal(good, rebuilt.train.images)


def test_parallel_decoding_matches_sequential(celeba, tmp_path, monkeypatch):
    paths, _, _ = celeba
    files = sorted(str(p) for p in (paths.data_root / "celeba" / "img_align_celeba").iterdir())
    one = np.zeros((len(files), 3, 12, 12), np.uint8)
    decode_images(files, 12, "stretch", one, workers=1, chunk=8)
    # Workers return blocks to the parent for an in-memory array ...
    two = np.zeros_like(one)
    decode_images(files, 12, "stretch", two, workers=2, chunk=8)
    # ... and write straight into a memory-mapped .npy file.
    mapped = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.uint8, shape=one.shape)
    import debiasbench.datasets._image_decoding as module

    returned = []
    real = module._run_tasks

    def spy(tasks, workers):
        for start, count, block in real(tasks, workers):
            returned.append(block)
            yield start, count, block

    monkeypatch.setattr(module, "_run_tasks", spy)
    decode_images(files, 12, "stretch", mapped, workers=2, chunk=8)
    assert len(returned) == 6 and all(block is None for block in returned)  # no pixels came back
    assert np.array_equal(one, two) and one.any()
    assert np.array_equal(np.load(tmp_path / "out.npy"), one)


def test_missing_data_explains_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="img_align_celeba"):
        _load(DataPaths(tmp_path, tmp_path / "cache"))
    make_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000003.jpg").unlink()  # a validation image
    with pytest.raises(DataNotFoundError, match="000003.jpg"):
        _load(DataPaths(tmp_path, tmp_path / "cache"))


def test_trial_end_to_end(celeba):
    paths, _, partition = celeba
    trial = resolve_trial(TrialConfig("celeba", "vanilla", {"resolution": 16, "pretrained": False}, epochs=1))
    trial = dataclasses.replace(trial, batch_size=8)
    output = train_trial(trial, TrainEnv(paths=paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("split", "subset", "target", "bias", "metric", "value"))))
    test_rows = [r for r in rows if r[0] == "test"]
    subsets = {r[1] for r in test_rows if r[4] == "accuracy"}
    assert {"all", "aligned", "conflicting", "group"} <= subsets
    counts = {(r[2], r[3]): r[5] for r in test_rows if r[1] == "group" and r[4] == "count"}
    assert sum(counts.values()) == int((partition == 1).sum())
    assert any(r[4] == "worst_group_accuracy" for r in test_rows)
    train_losses = {r[1] for r in rows if r[0] == "train" and r[4] == "loss"}
    assert train_losses == {"aligned", "conflicting"}


# -- balanced_train (the diagnosis's bias-balanced training set) ---------------------------------


def _identify(split) -> list[int]:
    """Which fixture image each sample is, read back from its solid colour."""
    lookup = {colour_of(i): i for i in range(48)}
    means = split.images.float().mean((2, 3)).tolist()
    return [lookup[min(lookup, key=lambda c: sum(abs(a - b) for a, b in zip(c, mean)))] for mean in means]


@pytest.mark.parametrize("target,bias", [("Wearing_Lipstick", "Heavy_Makeup"), ("Blond_Hair", "Male")])
def test_balanced_train_keeps_the_smallest_group_size_in_every_group(celeba, target, bias):
    paths, attributes, partition = celeba
    t, b = ATTRIBUTES.index(target), ATTRIBUTES.index(bias)
    train_rows = np.flatnonzero(partition == 0)
    sizes = {
        (y, c): int(np.sum((attributes[train_rows, t] == y) & (attributes[train_rows, b] == c)))
        for y in (0, 1)
        for c in (0, 1)
    }
    smallest = min(sizes.values())
    assert smallest >= 1  # the fixture has every group in both pairs

    full = _load(paths, target=target, bias=bias)
    balanced = _load(paths, target=target, bias=bias, balanced_train=True)
    counts = Counter(zip(balanced.train.targets.tolist(), balanced.train.biases.tolist()))
    assert counts == {group: smallest for group in sizes}  # exactly m per group, 4m in all
    # Each kept sample is a training image of its own group, with its own pixels and labels, in file order.
    files = _identify(balanced.train)
    assert files == sorted(files) and set(files) <= set(train_rows.tolist()) and len(set(files)) == 4 * smallest
    assert balanced.train.targets.tolist() == attributes[files, t].tolist()
    assert balanced.train.biases.tolist() == attributes[files, b].tolist()
    # The evaluation split and the aligned mapping (from the whole train partition) are unchanged.
    assert torch.equal(balanced.test.targets, full.test.targets) and torch.equal(balanced.test.images, full.test.images)
    assert balanced.aligned_bias.tolist() == full.aligned_bias.tolist()
    # Seeded by the data seed: the same seed keeps the same samples.
    again = CelebA.load(
        CelebA.make_params(
            {"resolution": 16, "pretrained": False, "target": target, "bias": bias, "balanced_train": True}
        ),
        paths,
        data_seed=0,
    )
    assert torch.equal(again.train.targets, balanced.train.targets) and torch.equal(
        again.train.images, balanced.train.images
    )


def test_balanced_rows_exact_counts_seeds_and_empty_groups():
    from debiasbench.datasets.celeba import balanced_rows

    targets = np.array([0] * 10 + [1] * 6 + [0] * 3 + [1] * 5)
    biases = np.array([0] * 10 + [1] * 6 + [1] * 3 + [0] * 5)
    kept = balanced_rows(targets, biases, data_seed=0)
    assert Counter(zip(targets[kept].tolist(), biases[kept].tolist())) == {(0, 0): 3, (1, 1): 3, (0, 1): 3, (1, 0): 3}
    assert kept.tolist() == sorted(kept.tolist())
    assert set(range(16, 19)) <= set(kept.tolist())  # the smallest group (0, 1) is kept whole
    assert balanced_rows(targets, biases, data_seed=0).tolist() == kept.tolist()
    assert any(balanced_rows(targets, biases, data_seed=s).tolist() != kept.tolist() for s in range(1, 6))
    with pytest.raises(ValueError, match=r"\(Smiling, not Young\) has none"):
        balanced_rows(np.array([0, 0, 1]), np.array([0, 1, 1]), 0, ("Smiling", "Young"))


def test_balanced_train_stays_out_of_the_trial_key_while_false():
    plain = resolve_trial(TrialConfig("celeba", "vanilla", {"target": "Blond_Hair"}))
    explicit = resolve_trial(TrialConfig("celeba", "vanilla", {"target": "Blond_Hair", "balanced_train": False}))
    balanced = resolve_trial(TrialConfig("celeba", "vanilla", {"target": "Blond_Hair", "balanced_train": True}))
    assert "balanced_train" not in plain.dataset_params and plain.key == explicit.key  # Table 5's keys unchanged
    assert balanced.dataset_params["balanced_train"] is True and balanced.key != plain.key
    with pytest.raises(InvalidTrialError, match="balanced_train must be true or false"):
        resolve_trial(TrialConfig("celeba", "vanilla", {"balanced_train": "yes"}))


def test_diagnosis_settings_swap_the_attributes_and_balance_the_training_set():
    settings = CelebA.diagnosis_settings({"target": "wearing_lipstick", "bias": "HeavyMakeup", "resolution": 16}, None)
    assert settings.biased == {"target": "Wearing_Lipstick", "bias": "Heavy_Makeup", "resolution": 16}
    assert settings.balanced == {**settings.biased, "balanced_train": True}
    assert settings.reversed == {"target": "Heavy_Makeup", "bias": "Wearing_Lipstick", "resolution": 16}
    assert (settings.target, settings.bias) == ("Wearing_Lipstick", "Heavy_Makeup")
    assert settings.target_values == ("not Wearing_Lipstick", "Wearing_Lipstick")
    with pytest.raises(ValueError, match="chooses balanced_train itself"):
        CelebA.diagnosis_settings({"balanced_train": True}, None)
    with pytest.raises(ValueError, match="unknown CelebA attribute"):
        CelebA.diagnosis_settings({"target": "Lipstick"}, None)
