"""image_table storage: the array-file mode and the decoded-image cache (reuse, invalidation,
interrupted decoding, unreadable images)."""

import dataclasses
import os

import numpy as np
import pytest
import torch
from image_table_kit import write_images, write_table
from PIL import Image

from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.image_table import (
    ImageTable,
    ImageTableError,
)


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
    import debiasbench.datasets.image_table.dataset as module

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
    import debiasbench.datasets._image_decoding as decoding

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
