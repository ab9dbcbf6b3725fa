"""Corrupted CIFAR-10 (docs/protocol.md#corrupted-cifar-10) on a small fake CIFAR-10 written in the
standard pickle layout:
the raw reader (restricted unpickler, str/bytes keys, clear errors), exact group counts, splits,
the reversed task, the unbiased training set, seeding independent of workers, and the cache."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from debiasbench.datasets import ccifar
from debiasbench.datasets._bias import bias_counts
from debiasbench.datasets.base import DATASETS, DataNotFoundError, DataPaths
from debiasbench.datasets.cifar10_source import (
    CIFARBatchError,
    find_cifar10,
    fingerprint,
    read_batch,
    read_cifar10,
    restricted_load,
)

PER_TRAIN_FILE = 120  # 600 train images, 60 per class
N_TEST = 200


def _fake_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    labels = np.tile(np.arange(10), n // 10)
    rng.shuffle(labels)
    # A smooth per-image gradient plus noise, channel-planar as CIFAR stores it.
    base = rng.integers(0, 200, size=(n, 3, 1, 1)) + np.arange(32)[None, None, :, None] * 1.5
    data = np.clip(base + rng.integers(0, 20, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8)
    return data.reshape(n, 3072), labels.tolist()


def write_fake_cifar(root: Path, seed: int = 0) -> Path:
    """<root>/cifar-10-batches-py with bytes keys in the train files (as Python 2's pickles read
    with encoding='bytes' re-packed) and str keys in test_batch, like the offline subset."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    for i in range(1, 6):
        data, labels = _fake_batch(rng, PER_TRAIN_FILE)
        with open(directory / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"batch_label": b"training batch", b"labels": labels, b"data": data}, f, protocol=3)
    data, labels = _fake_batch(rng, N_TEST)
    with open(directory / "test_batch", "wb") as f:
        pickle.dump({"batch_label": "testing batch", "labels": labels, "data": data}, f, protocol=4)
    return directory


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar_root")
    write_fake_cifar(root)
    return root


@pytest.fixture(scope="module")
def paths(fake_root, tmp_path_factory) -> DataPaths:
    return DataPaths(fake_root, tmp_path_factory.mktemp("cache"), allow_download=False)


@pytest.fixture(scope="module")
def type1(paths):
    cls = DATASETS.get("ccifar1")
    return cls.load(cls.make_params({"ratio": 95, "difficulty": 2}), paths)


# ---------------------------------------------------------------------------------------------
# raw reader


def test_reads_bytes_and_str_keys_and_converts_to_hwc(fake_root):
    raw = read_cifar10(fake_root / "cifar-10-batches-py")
    assert raw.train_images.shape == (5 * PER_TRAIN_FILE, 32, 32, 3) and raw.test_images.shape == (N_TEST, 32, 32, 3)
    assert raw.train_images.dtype == np.uint8 and raw.train_labels.dtype == np.int64
    with open(fake_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        stored = pickle.load(f)
    planar = stored["data"].reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(raw.test_images[7, 5, 9], planar[7, :, 5, 9])  # pixel (5, 9), RGB
    np.testing.assert_array_equal(raw.test_labels, stored["labels"])


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    payload = tmp_path / "data_batch_1"
    payload.write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}))
    with pytest.raises(CIFARBatchError, match=r"data_batch_1.*refusing to unpickle global (posix|os)\.system"):
        read_batch(payload)
    assert not marker.exists()
    with open(payload, "rb") as f, pytest.raises(pickle.UnpicklingError):
        restricted_load(f)


def test_restricted_unpickler_admits_numpy_arrays(tmp_path):
    file = tmp_path / "arrays"
    arrays = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": [np.float32(1.5)], "c": ("x", b"y")}
    for protocol in (2, 4, 5):
        file.write_bytes(pickle.dumps(arrays, protocol=protocol))
        with open(file, "rb") as f:
            loaded = restricted_load(f)
        np.testing.assert_array_equal(loaded["a"], arrays["a"])
        assert loaded["b"][0] == np.float32(1.5)


def test_truncated_batch_names_the_file(tmp_path):
    directory = write_fake_cifar(tmp_path)
    victim = directory / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(CIFARBatchError, match=r"data_batch_3 is truncated or corrupt"):
        read_cifar10(directory)


def test_missing_cifar_says_where_to_put_it(tmp_path):
    cls = DATASETS.get("ccifar2")
    paths = DataPaths(tmp_path / "empty", tmp_path / "cache", allow_download=False)
    with pytest.raises(DataNotFoundError) as error:
        cls.load(cls.make_params({}), paths)
    message = str(error.value)
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in message
    assert "--data-root" in message and "DEBIAS_DATA_ROOT" in message


def test_search_order_finds_the_offline_subset_layout(tmp_path):
    write_fake_cifar(tmp_path / "CIFAR10-subset")
    assert find_cifar10(tmp_path) == tmp_path / "CIFAR10-subset" / "cifar-10-batches-py"
    write_fake_cifar(tmp_path)  # the standard location wins when both exist
    assert find_cifar10(tmp_path) == tmp_path / "cifar-10-batches-py"
    assert find_cifar10(tmp_path / "cifar-10-batches-py") == tmp_path / "cifar-10-batches-py"


# ---------------------------------------------------------------------------------------------
# generated dataset


def _cells(split) -> np.ndarray:
    return torch.bincount(split.targets * 10 + split.biases, minlength=100).view(10, 10).numpy()


def test_train_split_has_exact_group_counts(type1):
    cells = _cells(type1.train)
    for y in range(10):
        np.testing.assert_array_equal(cells[y], bias_counts(cells[y].sum(), 0.95, 10, y))
        assert cells[y, y] == 57


def test_test_split_is_unbiased(type1):
    cells = _cells(type1.test)
    assert len(type1.test) == N_TEST
    for y in range(10):
        np.testing.assert_array_equal(cells[y], bias_counts(cells[y].sum(), 0.1, 10, y))
        assert (cells[y] == 2).all()  # 20 per class: 2 per corruption


def test_dataset_contract(type1):
    assert type1.train.images.dtype == torch.uint8 and type1.train.images.shape[1:] == (3, 32, 32)
    assert type1.num_classes == 10 and type1.num_bias_values == 10
    assert type1.bias_names[0] == "Snow" and type1.class_names[0] == "airplane"
    assert type1.model == "resnet20"
    spec = type1.input_spec
    assert spec.scale == pytest.approx(1 / 255) and spec.crop_padding == 4 and spec.horizontal_flip
    assert spec.mean == (0.4914, 0.4822, 0.4465) and spec.std == (0.2023, 0.1994, 0.2010)
    cls = DATASETS.get("ccifar1")
    assert cls.target_attribute == "Object" and cls.bias_attribute == "Corruption"
    protocol = cls.train_protocol(cls.make_params({}))
    assert (protocol.lr, protocol.weight_decay, protocol.batch_size, protocol.epochs) == (1e-3, 0.0, 256, 200)


def test_each_image_is_its_raw_image_under_its_corruption(type1, fake_root):
    """Aligned 'Contrast' images are the raw images with contrast applied at severity 3."""
    from debiasbench.datasets.corruptions import corrupt, image_rngs

    raw = read_cifar10(fake_root / "cifar-10-batches-py")
    index = np.flatnonzero(type1.train.biases.numpy() == 4)[:5]  # bias value 4 = Contrast in type 1
    np.testing.assert_array_equal(type1.train.targets.numpy()[index], raw.train_labels[index])
    expected = corrupt(raw.train_images[index], "Contrast", 3, image_rngs(0, 0, index))
    np.testing.assert_array_equal(type1.train.images.numpy()[index], expected.transpose(0, 3, 1, 2))


def test_reversed_task_swaps_target_and_bias(paths, type1):
    cls = DATASETS.get("ccifar1")
    reversed_data = cls.load(cls.make_params({"ratio": 95, "difficulty": 2, "target": "corruption"}), paths)
    assert torch.equal(reversed_data.train.targets, type1.train.biases)
    assert torch.equal(reversed_data.train.biases, type1.train.targets)
    assert torch.equal(reversed_data.train.images, type1.train.images)
    assert reversed_data.class_names[0] == "Snow" and reversed_data.bias_names[0] == "airplane"


def test_unbiased_training_set(paths):
    cls = DATASETS.get("ccifar2")
    params = cls.make_params({"ratio": 99, "difficulty": 1, "unbiased_train": True})
    assert params.ratio == 10.0
    data = cls.load(params, paths)
    cells = _cells(data.train)
    for y in range(10):
        assert cells[y].max() - cells[y].min() <= 1  # 60 per class: 6 per corruption
    assert data.bias_names[-1] == "Original"


def test_split_is_independent_of_workers_and_chunks(fake_root):
    raw = read_cifar10(fake_root / "cifar-10-batches-py")
    labels = np.arange(len(raw.train_labels)) % 10
    names = ccifar.corruption_names(1)
    serial = ccifar.corrupt_images(raw.train_images, labels, names, 5, 3, 0, workers=1, chunk_size=37, progress=False)
    pooled = ccifar.corrupt_images(
        raw.train_images, labels, names, 5, 3, 0, workers=2, chunk_size=100, progress=False, min_parallel=0
    )
    np.testing.assert_array_equal(serial, pooled)
    other_seed = ccifar.corrupt_images(raw.train_images, labels, names, 5, 4, 0, workers=1, progress=False)
    assert (other_seed != serial).any()


def test_generation_is_cached_and_deterministic(paths, type1):
    cls = DATASETS.get("ccifar1")
    again = cls.load(cls.make_params({"ratio": 95.0, "difficulty": 2}), paths)
    assert torch.equal(again.train.images, type1.train.images)
    fresh_paths = DataPaths(paths.data_root, paths.cache_dir.parent / "fresh_cache", allow_download=False)
    regenerated = cls.load(cls.make_params({"ratio": 95.0, "difficulty": 2}), fresh_paths)
    assert torch.equal(regenerated.train.images, type1.train.images)
    other_seed = cls.load(cls.make_params({"ratio": 95.0, "difficulty": 2}), paths, data_seed=1)
    # The reference assignment is positional: the data seed changes the corruption draws only.
    assert torch.equal(other_seed.train.biases, type1.train.biases)
    assert not torch.equal(other_seed.train.images, type1.train.images)
    shuffled = cls.load(cls.make_params({"ratio": 95.0, "difficulty": 2, "assignment": "random"}), paths)
    assert not torch.equal(shuffled.train.biases, type1.train.biases)
    assert torch.equal(
        torch.bincount(shuffled.train.targets * 10 + shuffled.train.biases, minlength=100),
        torch.bincount(type1.train.targets * 10 + type1.train.biases, minlength=100),
    )


def test_interrupted_generation_leaves_no_cache_entry(paths, monkeypatch):
    cls = DATASETS.get("ccifar2")
    params = cls.make_params({"ratio": 98, "difficulty": 3})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ccifar, "corrupt_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cls.load(params, paths)
    monkeypatch.undo()
    family = paths.cache_dir / "ccifar2"
    assert not family.exists() or all(
        not (entry / "meta.json").exists() for entry in family.iterdir() if entry.name.startswith(".")
    )
    data = cls.load(params, paths)  # a later run generates it from scratch
    assert len(data.train) == 5 * PER_TRAIN_FILE


def test_raw_data_is_part_of_the_cache_key(tmp_path):
    a, b = write_fake_cifar(tmp_path / "a", seed=0), write_fake_cifar(tmp_path / "b", seed=1)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(write_fake_cifar(tmp_path / "c", seed=0))


@pytest.mark.parametrize(
    "values,message",
    [
        ({"difficulty": 5}, "difficulty is 1, 2, 3 or 4"),
        ({"difficulty": 0}, "difficulty is 1, 2, 3 or 4"),
        ({"target": "color"}, "choose one of object, corruption"),
        ({"ratio": 100}, "strictly between"),
        ({"severity": 3}, "has no parameter"),
    ],
)
def test_invalid_parameters(values, message):
    with pytest.raises(ValueError, match=message):
        DATASETS.get("ccifar1").make_params(values)


def test_prepare_caches_what_load_reads(paths):
    cls = DATASETS.get("ccifar2")
    params = cls.make_params({"ratio": 99.5, "difficulty": 4})
    cls.prepare(params, paths)
    entries = {e.name for e in (paths.cache_dir / "ccifar2").iterdir()}
    cls.load(params, paths)
    assert {e.name for e in (paths.cache_dir / "ccifar2").iterdir()} == entries  # no new generation


def test_contact_sheet_renders_every_corruption_and_severity(fake_root, tmp_path):
    from debiasbench.datasets import contact_sheet

    out = tmp_path / "sheet.png"
    assert contact_sheet.main(["--data-root", str(fake_root), "--out", str(out), "--images", "2", "--scale", "1"]) == 0
    from PIL import Image

    sheet = Image.open(out)
    rows = 20 * (32 + contact_sheet.GAP) + 2 * contact_sheet.HEADER_HEIGHT + contact_sheet.GAP
    assert sheet.size == (contact_sheet.LABEL_WIDTH + 6 * (2 * 32 + contact_sheet.GAP), rows)


def test_a_partial_copy_is_reported_even_from_a_warm_cache(paths, type1, caplog):
    import debiasbench.datasets.ccifar as ccifar

    ccifar._WARNED_PARTIAL.clear()
    cls = DATASETS.get("ccifar1")
    with caplog.at_level("WARNING", logger="debiasbench.datasets.ccifar"):
        cls.load(cls.make_params({"ratio": 95, "difficulty": 2}), paths)  # cached by the type1 fixture
    assert "partial copy (600 train / 200 test images" in caplog.text
