"""image_table on small folders and arrays made here: a few dozen solid-colour PNG/JPEG files (each
row's colour tells which file it came from) and a CSV or Parquet table."""

import dataclasses
import os
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from benchmark.training.trainer import TrainEnv, train_trial
from benchmark.trial import TrialConfig
from datasets.base import DATASETS, DataNotFoundError, DataPaths
from datasets.image_table import (
    ImageTable,
    ImageTableError,
    ImageTableNotFoundError,
    _largest_remainder,
    aligned_mapping,
    ratio_counts,
    subsample_to_ratio,
)

# (label, bg, split, rows): cats mostly on water and dogs mostly on land, so the aligned mapping
# in sorted index order (cat 0, dog 1; land 0, water 1) is the swap.
DESIGN = [
    ("cat", "water", "train", 12),
    ("cat", "land", "train", 3),
    ("dog", "land", "train", 10),
    ("dog", "water", "train", 2),
] + [(y, b, "test", 2) for y in ("cat", "dog") for b in ("land", "water")]
SIZES = (1, 2, 10)  # an integer column: classes in numeric order 1, 2, 10


def colour_of(i: int) -> tuple[int, int, int]:
    return (10 + (i * 37) % 230, 10 + (i * 91) % 230, 10 + (i * 53) % 230)


def make_rows(seed: int = 0) -> list[dict]:
    rows = [dict(label=y, bg=b, split=s) for y, b, s, n in DESIGN for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(rows))  # splits interleaved in the table
    rows = [rows[k] for k in order]
    for i, row in enumerate(rows):
        row["path"] = f"{'jpeg/' if i % 6 == 5 else 'png/'}{i:03d}.{'jpg' if i % 6 == 5 else 'png'}"
        row["size"] = SIZES[i % 3]
    return rows


def write_images(root, rows, size=(10, 7)) -> None:
    for i, row in enumerate(rows):
        path = root / row["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, colour_of(i)).save(path, quality=95)


def write_table(path, rows, columns=("path", "label", "bg", "split", "size")) -> None:
    import pandas as pd

    frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows])
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


class Folder:
    """An image folder with its table, and a loader with the usual test parameters."""

    def __init__(self, tmp_path, table="labels.csv"):
        self.root = tmp_path / "images"
        self.rows = make_rows()
        write_images(self.root, self.rows)
        self.table = self.root / table
        write_table(self.table, self.rows)
        self.paths = DataPaths(tmp_path / "data", tmp_path / "cache", allow_download=False)

    def params(self, **overrides):
        values = dict(
            root=str(self.root),
            table=self.table.name,
            target="label",
            bias="bg",
            split_column="split",
            resolution=8,
            model="mlp",
        )
        values.update(overrides)
        return ImageTable.make_params({k: v for k, v in values.items() if v is not None or k == "bias"})

    def load(self, data_seed=0, **overrides):
        return ImageTable.load(self.params(**overrides), self.paths, data_seed)

    def entries(self):
        family = self.paths.cache_dir / "image_table"
        return sorted(p.name for p in family.iterdir()) if family.exists() else []


@pytest.fixture
def folder(tmp_path):
    return Folder(tmp_path)


def row_ids(split) -> list[int]:
    """Which table row each sample came from, read back from its solid colour."""
    lookup = {colour_of(i): i for i in range(200)}
    means = split.images.float().mean((2, 3)).round().long().tolist()
    out = []
    for mean in means:
        best = min(lookup, key=lambda c: sum(abs(a - b) for a, b in zip(c, mean)))
        assert sum(abs(a - b) for a, b in zip(best, mean)) < 12
        out.append(lookup[best])
    return out


def groups(data, split) -> Counter:
    names = data.bias_names
    return Counter(
        (data.class_names[y], names[b] if names else None)
        for y, b in zip(
            split.targets.tolist(), (split.biases if split.biases is not None else split.targets * 0).tolist()
        )
    )


# -- loading ----------------------------------------------------------------------------------------


def test_registered_and_defaults():
    assert DATASETS.get("image_table") is ImageTable
    params = ImageTable.make_params({"root": "photos", "table": "labels.csv", "target": "label"})
    assert (params.path_column, params.test_fraction, params.resolution, params.model, params.pretrained) == (
        "path",
        0.2,
        224,
        "resnet18",
        True,
    )
    assert (params.normalization, params.lr, params.input_scaling, params.bias) == ("imagenet", 1e-4, "unit", None)
    arrays = ImageTable.make_params({"root": "x.npy", "table": "t.csv", "target": "y", "model": "mlp"})
    assert (arrays.path_column, arrays.resolution, arrays.pretrained, arrays.normalization, arrays.lr) == (
        "index",
        None,
        False,
        "none",
        1e-3,
    )
    protocol = ImageTable.train_protocol(arrays)
    assert (protocol.lr, protocol.weight_decay, protocol.batch_size, protocol.epochs, protocol.optimizer) == (
        1e-3,
        0.0,
        256,
        100,
        "adam",
    )
    assert ImageTable.make_params(dataclasses.asdict(params)) == params  # canonical is idempotent


def test_split_column_counts_labels_and_pixels(folder):
    data = folder.load()
    train = [i for i, r in enumerate(folder.rows) if r["split"] == "train"]
    test = [i for i, r in enumerate(folder.rows) if r["split"] == "test"]
    assert (len(data.train), len(data.test)) == (27, 8)
    assert data.train.images.shape == (27, 3, 8, 8) and data.train.images.dtype == torch.uint8
    assert data.class_names == ["cat", "dog"] and data.bias_names == ["land", "water"]
    assert data.num_classes == 2 and data.num_bias_values == 2
    # Table order within each split; each sample holds its own file's pixels.
    assert row_ids(data.train) == train and row_ids(data.test) == test
    png = [k for k, i in enumerate(train) if folder.rows[i]["path"].endswith(".png")]
    expected = torch.tensor([colour_of(train[k]) for k in png], dtype=torch.uint8)
    assert torch.equal(data.train.images[png], expected[:, :, None, None].expand(-1, -1, 8, 8))  # PNG: exact
    assert data.train.targets.tolist() == [["cat", "dog"].index(folder.rows[i]["label"]) for i in train]
    assert data.train.biases.tolist() == [["land", "water"].index(folder.rows[i]["bg"]) for i in train]
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 3,
        ("dog", "land"): 10,
        ("dog", "water"): 2,
    }
    assert data.model == "mlp" and data.model_kwargs == {"in_features": 3 * 8 * 8}
    assert data.input_spec.scale == 1 / 255 and data.input_spec.mean is None


def test_aligned_mapping_by_majority(folder, caplog):
    caplog.set_level("INFO", logger="datasets.image_table")
    data = folder.load()
    assert data.aligned_bias.tolist() == [1, 0]  # cat -> water, dog -> land
    assert int(data.aligned_mask(data.train).sum()) == 22
    assert "cat -> water (80.0% of 15)" in caplog.text and "dog -> land (83.3% of 12)" in caplog.text
    # The rule itself: a bijection when there are as many bias values as classes (ties: identity) ...
    assert aligned_mapping(np.array([0, 0, 1]), np.array([1, 1, 0]), 2, 2).tolist() == [1, 0]
    assert aligned_mapping(np.array([0, 1]), np.array([0, 0]), 2, 2).tolist() == [0, 1]  # tie
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    b = np.array([2, 2, 1, 0, 0, 1, 1, 2])
    assert aligned_mapping(y, b, 3, 3).tolist() == [2, 0, 1]
    # ... even when one class's most frequent value is taken (CelebA's Blond_Hair/Male case).
    y, b = np.array([0] * 10 + [1] * 10), np.array([0] * 6 + [1] * 4 + [0] * 9 + [1])
    assert aligned_mapping(y, b, 2, 2).tolist() == [1, 0]
    # ... otherwise each class's most frequent value (ties: the smaller one).
    assert aligned_mapping(np.array([0, 0, 1, 1]), np.array([2, 2, 1, 2]), 2, 3).tolist() == [2, 1]


def test_integer_values_sort_numerically_and_strings_keep_names(folder):
    data = folder.load(target="size", bias="label")
    assert data.class_names == ["1", "2", "10"] and data.bias_names == ["cat", "dog"]
    train = [i for i, r in enumerate(folder.rows) if r["split"] == "train"]
    assert data.train.targets.tolist() == [SIZES.index(folder.rows[i]["size"]) for i in train]


def test_parquet_table_gives_the_same_data(folder):
    write_table(folder.root / "labels.parquet", folder.rows)
    a, b = folder.load(), folder.load(table="labels.parquet")
    for name in ("images", "targets", "biases"):
        assert torch.equal(getattr(a.train, name), getattr(b.train, name))
        assert torch.equal(getattr(a.test, name), getattr(b.test, name))
    assert a.class_names == b.class_names and a.bias_names == b.bias_names


def test_stratified_test_fraction_exact_counts_and_seed(folder):
    data = folder.load(split_column=None, test_fraction=0.25)
    # floor(n * 0.25 + 1/2) test rows per (target, bias) group of n rows.
    assert groups(data, data.test) == {("cat", "water"): 4, ("cat", "land"): 1, ("dog", "land"): 3, ("dog", "water"): 1}
    assert groups(data, data.train) == {
        ("cat", "water"): 10,
        ("cat", "land"): 4,
        ("dog", "land"): 9,
        ("dog", "water"): 3,
    }
    again, other = (
        folder.load(split_column=None, test_fraction=0.25),
        folder.load(1, split_column=None, test_fraction=0.25),
    )
    assert row_ids(again.test) == row_ids(data.test) and row_ids(other.test) != row_ids(data.test)
    assert sorted(row_ids(data.train) + row_ids(data.test)) == list(range(len(folder.rows)))
    # Without a bias the strata are the classes: cat 19 -> 5, dog 16 -> 4.
    plain = folder.load(bias=None, split_column=None, test_fraction=0.25)
    assert groups(plain, plain.test) == {("cat", None): 5, ("dog", None): 4}


def test_ratio_subsampling_exact_counts(folder):
    # Training groups: cat 12 aligned (water) + 3 conflicting; dog 10 aligned (land) + 2 conflicting.
    data = folder.load(ratio=90)  # all aligned kept, round(A * 10 / 90) conflicting: 1 and 1
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 1,
        ("dog", "land"): 10,
        ("dog", "water"): 1,
    }
    data = folder.load(ratio=80)  # cat: 12 + 3; dog: round(2.5) = 3 > 2 conflicting, so 8 aligned + 2
    assert groups(data, data.train) == {
        ("cat", "water"): 12,
        ("cat", "land"): 3,
        ("dog", "land"): 8,
        ("dog", "water"): 2,
    }
    assert groups(data, data.test) == {g: 2 for g in groups(data, data.test)} and len(data.test) == 8
    assert row_ids(folder.load(ratio=80).train) == row_ids(data.train)  # seeded by the data seed
    assert row_ids(folder.load(1, ratio=80).train) != row_ids(data.train)
    kept = row_ids(data.train)
    assert kept == sorted(kept)  # table order is kept
    data = folder.load(ratio=50)
    assert groups(data, data.train) == {
        ("cat", "water"): 3,
        ("cat", "land"): 3,
        ("dog", "land"): 2,
        ("dog", "water"): 2,
    }


def test_ratio_rule_and_conflicting_allocation():
    assert ratio_counts(100, 50, 95) == (100, 5)
    assert ratio_counts(100, 2, 95) == (38, 2)  # round(2 * 95 / 5) = 38 aligned
    assert ratio_counts(10, 2, 80) == (8, 2)
    assert ratio_counts(199, 10, 99.5) == (199, 1)  # 0.995 -> 1 (half up)
    assert _largest_remainder(3, [6, 3]) == [2, 1]
    assert _largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    # Three bias values: class 0 aligned with 0, conflicting groups of 6 and 3 -> 3 kept as 2 + 1.
    targets = np.array([0] * 59 + [1] * 20)
    biases = np.array([0] * 50 + [1] * 6 + [2] * 3 + [2] * 19 + [0])
    keep = subsample_to_ratio(targets, biases, np.array([0, 2]), 95, 0, lambda y, b: f"({y}, {b})")
    assert Counter(zip(targets[keep].tolist(), biases[keep].tolist())) == {
        (0, 0): 50,
        (0, 1): 2,
        (0, 2): 1,
        (1, 2): 19,
        (1, 0): 1,
    }


def test_balanced_test_exact_counts(folder):
    data = folder.load(split_column=None, test_fraction=0.25, balanced_test=True)
    assert groups(data, data.test) == {(y, b): 1 for y in ("cat", "dog") for b in ("land", "water")}
    assert len(data.train) == 26  # training split untouched
    assert row_ids(data.test) == row_ids(folder.load(split_column=None, test_fraction=0.25, balanced_test=True).test)
    even = folder.load(balanced_test=True)
    assert groups(even, even.test) == {(y, b): 2 for y in ("cat", "dog") for b in ("land", "water")}
    plain = folder.load(bias=None, split_column=None, test_fraction=0.25, balanced_test=True)
    assert groups(plain, plain.test) == {("cat", None): 4, ("dog", None): 4}  # without bias: per class


def test_without_bias_there_are_no_bias_labels(folder):
    params = folder.params(bias=None)
    assert not ImageTable.has_bias_labels_for(params) and ImageTable.has_bias_labels_for(folder.params())
    data = folder.load(bias=None)
    assert data.train.biases is None and data.test.biases is None
    assert data.num_bias_values is None and data.bias_names is None and data.aligned_bias is None
    assert data.aligned_mask(data.train) is None
    with pytest.raises(ValueError, match="ratio needs a bias column"):
        folder.params(bias=None, ratio=95)


def test_array_file_mode(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 6, 6, 3), dtype=np.uint8)
    table_rows = [
        dict(index=int(k), y=["a", "b"][k % 2], b=k % 3 == 0, split="test" if k >= 9 else "train")
        for k in (11, 3, 0, 5, 7, 2, 4, 6, 8, 9, 1, 10)
    ]
    import pandas as pd

    pd.DataFrame(table_rows).to_csv(tmp_path / "t.csv", index=False)
    paths = DataPaths(tmp_path, tmp_path / "cache")
    order = [r["index"] for r in table_rows]
    train_rows = [k for k in order if k < 9]
    for layout, array in (("nhwc", images), ("nchw", images.transpose(0, 3, 1, 2))):
        np.save(tmp_path / f"{layout}.npy", array)
        data = ImageTable.load(
            ImageTable.make_params(
                dict(root=f"{layout}.npy", table="t.csv", target="y", bias="b", split_column="split", model="mlp")
            ),
            paths,
        )
        assert torch.equal(data.train.images, torch.from_numpy(images[train_rows].transpose(0, 3, 1, 2)))
        assert data.test.images.shape == (3, 3, 6, 6)
        assert data.bias_names == ["False", "True"] and data.model_kwargs == {"in_features": 3 * 6 * 6}
    # Grey N x H x W, resized by Pillow to the resolution; a CNN gets in_channels=1.
    grey = images[..., 0]
    np.save(tmp_path / "grey.npy", grey)
    params = ImageTable.make_params(
        dict(
            root=str(tmp_path / "grey.npy"),
            table="t.csv",
            target="y",
            split_column="split",
            model="simple_convnet",
            resolution=12,
        )
    )
    data = ImageTable.load(params, paths)
    assert data.train.images.shape == (9, 1, 12, 12) and data.model_kwargs == {"in_channels": 1}
    expected = np.asarray(Image.fromarray(grey[train_rows[0]]).resize((12, 12), Image.BILINEAR))
    assert np.array_equal(data.train.images[0, 0].numpy(), expected)
    with pytest.raises(ImageTableError, match="takes RGB images"):
        ImageTable.load(dataclasses.replace(params, model="resnet18", pretrained=False, normalization="none"), paths)
    with pytest.raises(ImageTableError, match="normalization=none"):
        ImageTable.load(dataclasses.replace(params, normalization="imagenet"), paths)


def test_array_file_bad_input(tmp_path):
    import pandas as pd

    paths = DataPaths(tmp_path, tmp_path / "cache")
    pd.DataFrame({"index": [0, 1, 7], "y": [0, 1, 0]}).to_csv(tmp_path / "t.csv", index=False)
    np.save(tmp_path / "a.npy", np.zeros((4, 5, 5, 3), np.uint8))

    def load(root="a.npy"):
        return ImageTable.load(
            ImageTable.make_params(dict(root=root, table="t.csv", target="y", model="mlp", test_fraction=0.5)), paths
        )

    with pytest.raises(ImageTableError, match=r"t.csv row 3 \(line 4\).*from 0 to 3"):
        load()
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ImageTableError, match="no pickled objects"):
        load("objects.npy")
    np.save(tmp_path / "floats.npy", np.zeros((8, 5, 5, 3), np.float32))
    with pytest.raises(ImageTableError, match="holds float32, not uint8"):
        load("floats.npy")
    assert not (tmp_path / "cache" / "image_table").exists()


# -- the cache ------------------------------------------------------------------------------------


def test_cache_is_reused_and_invalidated(folder, monkeypatch):
    import datasets.image_table.dataset as module

    first = folder.load()
    assert len(folder.entries()) == 1
    real = module.build_memmap_cache
    monkeypatch.setattr(module, "build_memmap_cache", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    # Other targets, splits and subsampling share the entry: it holds the images of the table's rows.
    other = folder.load(target="size", split_column=None, ratio=None, balanced_test=True)
    assert torch.equal(first.train.images, folder.load(model="simple_convnet").train.images)
    assert len(other.test) > 0
    # An edited table is a new entry ...
    folder.rows[0]["label"] = "dog" if folder.rows[0]["label"] == "cat" else "cat"
    write_table(folder.table, folder.rows)
    with pytest.raises(AssertionError, match="rebuilt"):
        folder.load()
    monkeypatch.setattr(module, "build_memmap_cache", real)
    folder.load()
    assert len(folder.entries()) == 2
    # ... and so is a replaced image file (size and modification time are in the key).
    image = folder.root / folder.rows[1]["path"]
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    folder.load()
    assert len(folder.entries()) == 3
    # Another resolution is another entry; a corrupt entry is rebuilt.
    good = folder.load(resolution=9).train.images.clone()
    assert len(folder.entries()) == 4
    for entry in (folder.paths.cache_dir / "image_table").iterdir():
        with open(entry / "images.npy", "r+b") as handle:
            handle.truncate(100)
    assert torch.equal(folder.load(resolution=9).train.images, good)


def test_interrupted_decoding_leaves_no_entry(folder, monkeypatch):
    import datasets._image_decoding as decoding

    real = decoding.load_resized
    calls = []

    def flaky(path, size, mode):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(path, size, mode)

    monkeypatch.setattr(decoding, "load_resized", flaky)
    monkeypatch.setenv("DEBIAS_PREPROCESS_WORKERS", "1")
    with pytest.raises(KeyboardInterrupt):
        folder.load()
    assert list((folder.paths.cache_dir / "image_table").iterdir()) == []  # no entry, no temporary directory
    monkeypatch.setattr(decoding, "load_resized", real)
    assert len(folder.load().train) == 27


def test_unreadable_image_names_row_and_file(folder):
    i = next(i for i, r in enumerate(folder.rows) if r["path"].endswith(".png") and i > 3)
    (folder.root / folder.rows[i]["path"]).write_bytes(b"this is not a picture")
    with pytest.raises(ImageTableError) as error:
        folder.load()
    message = str(error.value)
    assert f"labels.csv row {i + 1} (line {i + 2})" in message and folder.rows[i]["path"] in message
    assert "cannot be read" in message and "remove its row" in message
    assert list((folder.paths.cache_dir / "image_table").iterdir()) == []
    # A truncated JPEG is unreadable too.
    write_images(folder.root, folder.rows)
    j = next(i for i, r in enumerate(folder.rows) if r["path"].endswith(".jpg"))
    jpeg = folder.root / folder.rows[j]["path"]
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    with pytest.raises(ImageTableError, match=rf"row {j + 1} .*{folder.rows[j]['path']}"):
        folder.load()


def test_unreadable_image_found_by_a_parallel_worker(tmp_path, monkeypatch):
    rows = [dict(path=f"{i:03d}.png", label=i % 2, split="test" if i % 4 == 0 else "train") for i in range(80)]
    root = tmp_path / "many"
    write_images(root, rows, size=(4, 4))
    (root / "071.png").write_bytes(b"\x89PNG broken")
    write_table(root / "t.csv", rows, columns=("path", "label", "split"))
    monkeypatch.setenv("DEBIAS_PREPROCESS_WORKERS", "2")
    params = ImageTable.make_params(
        dict(root=str(root), table="t.csv", target="label", split_column="split", resolution=8, model="mlp")
    )
    with pytest.raises(ImageTableError, match=r"t.csv row 72 \(line 73\): the image file .*071.png cannot be read"):
        ImageTable.load(params, DataPaths(tmp_path, tmp_path / "cache"))
    assert list((tmp_path / "cache" / "image_table").iterdir()) == []


# -- bad input ----------------------------------------------------------------------------------------


def test_missing_root_table_and_image(folder, tmp_path):
    with pytest.raises(ImageTableNotFoundError, match="root 'nowhere' not found.*under the data root"):
        folder.load(root="nowhere")
    with pytest.raises(DataNotFoundError, match="table 'other.csv' not found.*inside the root folder"):
        folder.load(table="other.csv")
    (folder.root / folder.rows[4]["path"]).unlink()
    with pytest.raises(ImageTableNotFoundError) as error:
        folder.load()
    assert "labels.csv row 5 (line 6)" in str(error.value) and folder.rows[4]["path"] in str(error.value)
    assert "does not exist" in str(error.value)
    # A relative root is read under the data root.
    write_images(folder.root, folder.rows)
    relative = DataPaths(tmp_path, tmp_path / "cache")
    assert len(ImageTable.load(folder.params(root="images"), relative).train) == 27


def test_unknown_column_lists_the_columns(folder):
    with pytest.raises(ImageTableError) as error:
        folder.load(target="lable")
    message = str(error.value)
    assert "no column 'lable' (parameter target)" in message and "Did you mean 'label'?" in message
    assert "'path', 'label', 'bg', 'split', 'size'" in message
    with pytest.raises(ImageTableError, match="parameter split_column"):
        folder.load(split_column="fold")
    with pytest.raises(ImageTableError, match="parameter path_column"):
        folder.load(path_column="file")


def test_paths_may_not_leave_the_root(folder, tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    for bad in ("../outside.png", str(tmp_path / "outside.png"), "png/../../outside.png"):
        folder.rows[2]["path"] = bad
        write_table(folder.table, folder.rows)
        with pytest.raises(ImageTableError) as error:
            folder.load()
        assert "labels.csv row 3 (line 4)" in str(error.value) and "points outside the root" in str(error.value)
    # Paths that stay inside, however written, are fine.
    folder.rows[2]["path"] = str(folder.root / "png" / ".." / "png" / "002.png")
    write_table(folder.table, folder.rows)
    assert len(folder.load().train) == 27


def test_group_without_training_samples(folder):
    rows = [r for r in folder.rows if not (r["label"] == "dog" and r["bg"] == "water" and r["split"] == "train")]
    write_table(folder.table, rows)
    assert len(folder.load().train) == 25  # fine without ratio
    with pytest.raises(ImageTableError) as error:
        folder.load(ratio=95)
    assert "every conflicting group of (label=dog)" in str(error.value) and "no training samples" in str(error.value)
    rows = [r for r in folder.rows if not (r["label"] == "cat" and r["bg"] == "land" and r["split"] == "test")]
    write_table(folder.table, rows)
    with pytest.raises(ImageTableError, match=r"balanced_test=true needs .* \(label=cat, bg=land\) has none"):
        folder.load(balanced_test=True)


def test_single_class_empty_split_and_bad_cells(folder):
    rows = [dict(r, label="cat") for r in folder.rows]
    write_table(folder.table, rows)
    with pytest.raises(ImageTableError, match="target column 'label' .* single value 'cat'.*at least two classes"):
        folder.load()
    rows = [dict(r, split="train") for r in folder.rows]
    write_table(folder.table, rows)
    with pytest.raises(ImageTableError, match="the test split is empty: the split column 'split'"):
        folder.load()
    write_table(folder.table, folder.rows)
    with pytest.raises(ImageTableError, match="test split is empty: test_fraction=0.01"):
        folder.load(split_column=None, test_fraction=0.01)
    rows = [dict(r) for r in folder.rows]
    rows[6]["split"] = "validation"
    write_table(folder.table, rows)
    with pytest.raises(ImageTableError, match=r"row 7 \(line 8\): the split column 'split' holds 'validation'"):
        folder.load()
    rows[6]["split"], rows[8]["label"] = "train", ""
    write_table(folder.table, rows)
    with pytest.raises(ImageTableError, match=r"row 9 \(line 10\): the target column 'label' is empty"):
        folder.load()
    (folder.root / "labels.txt").write_text("path,label\n")
    with pytest.raises(ImageTableError, match="extension '.txt'"):
        folder.load(table="labels.txt")
    (folder.root / "empty.csv").write_text("path,label,bg,split\n")
    with pytest.raises(ImageTableError, match="has no rows"):
        folder.load(table="empty.csv")


def test_parameter_errors(folder):
    with pytest.raises(ValueError, match="needs the parameter root"):
        ImageTable.make_params({"table": "t.csv", "target": "y"})
    with pytest.raises(ValueError, match="either split_column .* or test_fraction"):
        folder.params(test_fraction=0.3)
    with pytest.raises(ValueError, match="name the same column 'label'"):
        folder.params(bias="label")
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        folder.params(model="resnet19")
    with pytest.raises(ValueError, match="has no pretrained weights"):
        folder.params(pretrained=True)
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        folder.params(ratio=100)
    with pytest.raises(ValueError, match="true or false"):
        folder.params(balanced_test="yes")
    with pytest.raises(InvalidTrialError, match="image_table/vanilla: .*strictly between 0 and 1"):
        resolve_trial(
            TrialConfig("image_table", "vanilla", {"root": "r", "table": "t.csv", "target": "y", "test_fraction": 1.5})
        )


# -- through the trainer ------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", ["bg", None])
def test_vanilla_epoch_end_to_end(folder, bias):
    params = dataclasses.asdict(folder.params(bias=bias, batch_size=8))
    trial = resolve_trial(TrialConfig("image_table", "vanilla", params, epochs=1))
    output = train_trial(trial, TrainEnv(paths=folder.paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("split", "subset", "target", "bias", "metric", "value"))))
    counts = {(r[2], r[3]): r[5] for r in rows if r[0] == "test" and r[4] == "count"}
    assert sum(counts.values()) == 8
    subsets = {r[1] for r in rows if r[0] == "test" and r[4] == "accuracy"}
    assert ({"aligned", "conflicting", "group"} <= subsets) == (bias is not None)


def test_methods_that_need_bias_labels_are_refused_without_a_bias_column(folder):
    with pytest.raises(InvalidTrialError, match="needs bias labels"):
        resolve_trial(TrialConfig("image_table", "group_dro", dataclasses.asdict(folder.params(bias=None))))
