"""Fault tests for the dataset cache (ISSUE 13, failure 3): pixels or labels damaged inside a cached
array with its .npy header intact are caught by the per-array checksum and the entry is rebuilt
with a warning naming the array; entries written before checksums are verified once and stamped;
a full disk while building is one clear error and leaves nothing behind."""

import json
import logging

import faultkit
import numpy as np
import pytest

from debiasbench.datasets._cache import CacheWriteError, atomic_entry, cache_key, load_or_build, read_entry


def _arrays():
    rng = np.random.default_rng(0)
    return {"images": rng.integers(0, 256, size=(50, 3, 8, 8), dtype=np.uint8), "labels": np.arange(50) % 10}


def _header_size(path) -> int:
    with open(path, "rb") as handle:
        np.lib.format.read_magic(handle)
        np.lib.format.read_array_header_1_0(handle)
        return handle.tell()


def test_pixels_damaged_behind_an_intact_header_are_caught_and_rebuilt(tmp_path, caplog):
    calls = []

    def build():
        calls.append(1)
        return _arrays()

    load_or_build(tmp_path, "fam", {"x": 1}, build)
    images = tmp_path / "fam" / cache_key({"x": 1}) / "images.npy"
    faultkit.flip(images, _header_size(images) + 1000, 16)  # pixels only: shape and dtype still match
    assert np.load(images).shape == (50, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        arrays = load_or_build(tmp_path, "fam", {"x": 1}, build)
    assert len(calls) == 2
    assert "images.npy does not match its checksum" in caplog.text and "rebuilding" in caplog.text
    np.testing.assert_array_equal(arrays["images"], _arrays()["images"])
    np.testing.assert_array_equal(np.load(images), _arrays()["images"])  # the entry on disk is sound again


def test_an_entry_written_before_checksums_is_verified_once_then_stamped(tmp_path):
    load_or_build(tmp_path, "fam", {"x": 1}, _arrays)
    entry = tmp_path / "fam" / cache_key({"x": 1})
    meta = json.loads((entry / "meta.json").read_text())
    for spec in meta["arrays"].values():
        del spec["checksum"]  # what an entry of the previous release looks like
    (entry / "meta.json").write_text(json.dumps(meta))

    calls = []
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays())
    assert calls == []  # kept: a long grid's cache is not thrown away
    stamped = json.loads((entry / "meta.json").read_text())["arrays"]
    assert all(spec["checksum"].startswith("sha256:") for spec in stamped.values())

    # ...and from now on damage is caught.
    faultkit.flip(entry / "labels.npy", _header_size(entry / "labels.npy"), 1)
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays())
    assert calls == [1]


def test_memory_mapped_entries_are_verified_too(tmp_path, caplog):
    entry = tmp_path / "celeba" / "abc"
    with atomic_entry(entry) as tmp:  # a builder that writes its own meta.json (CelebA, image_table)
        out = np.lib.format.open_memmap(tmp / "train.npy", mode="w+", dtype=np.uint8, shape=(20, 3, 4, 4))
        out[:] = 7
        out.flush()
        del out
        (tmp / "meta.json").write_text(json.dumps({"arrays": {"train": {"shape": [20, 3, 4, 4], "dtype": "uint8"}}}))
    assert json.loads((entry / "meta.json").read_text())["arrays"]["train"]["checksum"].startswith("sha256:")
    assert read_entry(entry, mmap_mode="c")["train"].sum() == 7 * 20 * 48
    faultkit.flip(entry / "train.npy", _header_size(entry / "train.npy") + 100)
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        assert read_entry(entry, mmap_mode="c") is None
    assert "train.npy does not match its checksum" in caplog.text


def test_a_full_disk_while_building_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    big = {"images": np.zeros((64, 3, 32, 32), dtype=np.uint8)}  # 196 KB
    with faultkit.tiny_filesystem(tmp_path, 128) as tiny:
        cache = tiny if tiny is not None else tmp_path / "sim"
        if tiny is None:
            monkeypatch.setattr(np, "save", faultkit.enospc)  # no mount permitted: simulate ENOSPC
        with pytest.raises(CacheWriteError) as error:
            load_or_build(cache, "fam", {"x": 1}, lambda: big)
        message = str(error.value)
        assert "the disk is full" in message and "--cache-dir" in message and str(cache / "fam") in message
        assert not [p for p in (cache / "fam").iterdir()]  # no half-written entry, no temporary directory


@pytest.mark.real_data
def test_colored_mnist_entry_damaged_in_pixels_or_labels_is_rebuilt_not_trained_on(mnist_paths, tmp_path, caplog):
    """The reported case: Colored MNIST pixels (and a label) damaged inside the cached arrays."""
    from debiasbench.datasets.base import DataPaths
    from debiasbench.datasets.cmnist import CMNISTParams, ColoredMNIST

    paths = DataPaths(mnist_paths.data_root, tmp_path / "cache", allow_download=False)
    params = ColoredMNIST.canonical(CMNISTParams(ratio=99.0, difficulty=4))
    pristine = {k: v.copy() for k, v in ColoredMNIST.arrays(params, paths, 0).items()}
    (entry,) = (tmp_path / "cache" / "cmnist").iterdir()
    images, digits = entry / "train_images.npy", entry / "train_digits.npy"
    faultkit.flip(images, _header_size(images) + 5_000_000, 4096)  # pixels of ~5 images
    faultkit.flip(digits, _header_size(digits), value=np.array([12], dtype=np.int64).tobytes())  # label 12

    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        data = ColoredMNIST.load(params, paths, 0)
    assert "train_images.npy does not match its checksum" in caplog.text
    np.testing.assert_array_equal(data.train.images.numpy(), pristine["train_images"])
    assert int(data.train.targets.max()) == 9


# -- ISSUE 29, item 2: labels out of range in an entry from before checksums ------------------------


def _strip_checksums(entry) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    for spec in meta["arrays"].values():
        del spec["checksum"]  # what an entry of the release before checksums looks like
    (entry / "meta.json").write_text(json.dumps(meta))


def test_a_legacy_entry_with_an_out_of_range_label_is_rebuilt_not_stamped(tmp_path, caplog):
    ranges = {"labels": 10}
    load_or_build(tmp_path, "fam", {"x": 1}, _arrays, label_ranges=ranges)
    entry = tmp_path / "fam" / cache_key({"x": 1})
    _strip_checksums(entry)
    labels = entry / "labels.npy"
    faultkit.flip(labels, _header_size(labels), value=np.array([12], dtype=np.int64).tobytes())  # decodes fine

    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        arrays = load_or_build(tmp_path, "fam", {"x": 1}, _arrays, label_ranges=ranges)
    assert f"dataset cache entry {entry}" in caplog.text
    assert "labels.npy holds the value 12, outside 0..9" in caplog.text and "rebuilding" in caplog.text
    assert int(arrays["labels"].max()) == 9 and int(np.load(labels).max()) == 9  # rebuilt, not stamped


def test_labels_out_of_range_in_a_stamped_entry_are_caught_too(tmp_path, caplog):
    """An entry stamped by the previous release with checksums of its damaged labels."""
    ranges = {"labels": 10}
    bad = {**_arrays(), "labels": np.append(np.arange(49) % 10, -1)}
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: bad)  # stamped as the previous release did: no range check
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        arrays = load_or_build(tmp_path, "fam", {"x": 1}, _arrays, label_ranges=ranges)
    assert "labels.npy holds the value -1, outside 0..9" in caplog.text
    assert int(arrays["labels"].min()) == 0


def test_raw_data_that_gives_bad_labels_is_one_error_naming_the_entry(tmp_path):
    bad = {**_arrays(), "labels": np.arange(50)}
    with pytest.raises(ValueError, match=r"labels\.npy holds the value 49.*raw files are damaged.*was not written"):
        load_or_build(tmp_path, "fam", {"x": 1}, lambda: bad, label_ranges={"labels": 10})
    assert not (tmp_path / "fam" / cache_key({"x": 1})).exists()


def test_colored_mnist_legacy_entry_with_an_out_of_range_label_is_rebuilt(mnist_paths, tmp_path, caplog):
    """The reported case: the trial failed on every run with an IndexError that never named the cache."""
    from debiasbench.datasets.base import DataPaths
    from debiasbench.datasets.cmnist import CMNISTParams, ColoredMNIST

    paths = DataPaths(mnist_paths.data_root, tmp_path / "cache", allow_download=False)
    params = ColoredMNIST.canonical(CMNISTParams(ratio=99.0, difficulty=4))
    ColoredMNIST.arrays(params, paths, 0)
    (entry,) = (tmp_path / "cache" / "cmnist").iterdir()
    _strip_checksums(entry)
    colors = entry / "train_colors.npy"
    faultkit.flip(colors, _header_size(colors), value=np.array([10], dtype=np.int64).tobytes())  # colour 10 of 0..9

    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        data = ColoredMNIST.load(params, paths, 0)
    assert f"dataset cache entry {entry}" in caplog.text and "train_colors.npy holds the value 10" in caplog.text
    assert int(data.train.biases.max()) == 9


# -- ISSUE 29, item 0: the cache records the raw data it was generated from ------------------------


def test_an_entry_generated_from_other_raw_data_is_regenerated(tmp_path, caplog):
    calls = []
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays(), raw="raw-v1:aaaaaaaa00")
    entry = tmp_path / "fam" / cache_key({"x": 1})
    assert json.loads((entry / "meta.json").read_text())["raw_data"] == "raw-v1:aaaaaaaa00"
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays(), raw="raw-v1:aaaaaaaa00")
    assert len(calls) == 1
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays(), raw="raw-v1:bbbbbbbb00")
    assert len(calls) == 2
    assert "generated from other raw data (fingerprint aaaaaaaa, the raw data's is now bbbbbbbb)" in caplog.text
    assert "regenerating it" in caplog.text
    assert json.loads((entry / "meta.json").read_text())["raw_data"] == "raw-v1:bbbbbbbb00"


def test_an_entry_from_before_fingerprints_is_kept_and_stamped(tmp_path):
    load_or_build(tmp_path, "fam", {"x": 1}, _arrays)  # no fingerprint recorded: unknown
    entry = tmp_path / "fam" / cache_key({"x": 1})
    calls = []
    load_or_build(tmp_path, "fam", {"x": 1}, lambda: calls.append(1) or _arrays(), raw="raw-v1:aaaaaaaa00")
    assert calls == [] and json.loads((entry / "meta.json").read_text())["raw_data"] == "raw-v1:aaaaaaaa00"


def test_colored_mnist_from_replaced_raw_files_is_regenerated(mnist_paths, tmp_path, caplog):
    """MNIST's label file replaced in place under the same data root: the entry is not served."""
    from debiasbench.datasets.base import DataPaths
    from debiasbench.datasets.cmnist import MNIST_FILES, CMNISTParams, ColoredMNIST

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to(mnist_paths.data_root / "MNIST" / "raw" / name)
    paths = DataPaths(tmp_path / "data", tmp_path / "cache", allow_download=False)
    params = ColoredMNIST.canonical(CMNISTParams(ratio=99.0, difficulty=4))
    before = ColoredMNIST.arrays(params, paths, 0)["train_digits"].copy()

    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    labels.unlink()
    data[8] = (data[8] + 1) % 10  # the first training image now has another digit
    labels.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets._cache"):
        after = ColoredMNIST.arrays(params, paths, 0)["train_digits"]
    assert "generated from other raw data" in caplog.text and "regenerating" in caplog.text
    assert (before != after).sum() >= 1
