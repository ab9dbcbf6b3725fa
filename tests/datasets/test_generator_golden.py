"""Golden outputs of the dataset generators: the exact arrays a small fixed configuration produces.

The expectations are literal digests and pixel values, not recomputed from the generators' constants
(palette, colour noise, input scaling, split seeds, corruption parameters), so any change to the
generated data fails here. Such a change must bump the family's `generator_version` (it is part of
every trial key and cache key) and then update the digests below in the same commit.

Colored MNIST and Corrupted CIFAR-10 run on small synthetic raw data (no download, well under a
second); one Colored MNIST configuration also runs on the real MNIST under the data root. CelebA,
BAR and image_table run on the fixtures their own tests generate (test_celeba.make_celeba,
test_bar.make_bar, image_table_kit.Folder), never on real data. Their images are JPEG/PNG files
decoded by Pillow: a Pillow (libjpeg) upgrade that decodes differently changes those digests too;
check the exact values beside them, then update the digests."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from image_table_kit import Folder
from PIL import Image
from test_bar import make_bar
from test_celeba import make_celeba

import debiasbench.datasets.cmnist as cmnist
from debiasbench.datasets.bar import BAR
from debiasbench.datasets.base import BiasedData, DataPaths
from debiasbench.datasets.ccifar import CorruptedCIFAR10Type1, CorruptedCIFAR10Type2
from debiasbench.datasets.celeba import CelebA, balanced_rows
from debiasbench.datasets.cmnist import ColoredMNIST
from debiasbench.datasets.image_table import ImageTable


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        for part in (name, str(array.dtype), str(array.shape)):
            h.update(part.encode())
        h.update(array.tobytes())
    return h.hexdigest()


def test_the_ten_palette_colours_on_a_white_pixel():
    white = np.full((10, 1, 1), 255, np.uint8)
    out = cmnist.colorize(white, np.arange(10), 0.0, np.random.default_rng(0))
    assert out[:, :, 0, 0].tolist() == [
        [250, 79, 42],
        [252, 233, 89],
        [171, 117, 147],
        [199, 212, 153],
        [22, 198, 250],
        [81, 245, 113],
        [6, 60, 193],
        [141, 25, 194],
        [52, 100, 4],
        [212, 51, 68],
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"ratio": 99.5, "difficulty": 4}, "13246e0bf51b1bd855aff5bd65b622308b57e93111f2097bd3de63c8450c8554"),
        ({"ratio": 95.0, "difficulty": 1}, "312e02ceaf73b25186b6133bda11e28246270b629f19735c35a28222a0bcd67b"),
        (
            {"ratio": 99.0, "difficulty": 2, "unbiased_train": True},
            "7d1239fdfacc1c3da80db1ea6c64a1be8ec353c645c43cd553ced2bb45b0c113",
        ),
        (
            {"ratio": 98.0, "difficulty": 3, "assignment": "random"},
            "4cc55eb6e246aa3cf2e66cff42297bf10e796c36abb72d2d430c7f9a1ff1cc30",
        ),
    ],
)
def test_colored_mnist_arrays_are_pinned(synthetic_mnist, params, expected):
    config = ColoredMNIST.canonical(ColoredMNIST.make_params(params))
    assert ColoredMNIST.generator_version == "2", "bump the digests below together with the version"
    assert digest(ColoredMNIST.arrays(config, synthetic_mnist, 3)) == expected


@pytest.mark.parametrize(("scaling", "scale"), [("reference", 1 / 65025), ("unit", 1 / 255)])
def test_colored_mnist_input_scaling(synthetic_mnist, scaling, scale):
    # The reference stores [0, 1] inputs and its MLP divides by 255 again: 1 / 255^2 = 1 / 65025.
    data = ColoredMNIST.load(ColoredMNIST.make_params({"input_scaling": scaling}), synthetic_mnist)
    assert data.input_spec.scale == pytest.approx(scale, rel=1e-12)


@pytest.mark.real_data
def test_colored_mnist_on_real_mnist_is_pinned(mnist_paths):
    config = ColoredMNIST.canonical(ColoredMNIST.make_params({"ratio": 99.5, "difficulty": 4}))
    assert digest(ColoredMNIST.arrays(config, mnist_paths, 0)) == (
        "7218b43bb859ba82aa867a4e0bbe8fc62c407b2f7bd0404043732765002dab41"
    )


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (CorruptedCIFAR10Type1, "347aebb108942912b593a985d61513c2b301886ee0ae8c508bff101034939dd0"),
        (CorruptedCIFAR10Type2, "125c05c6289e810f7fab69b9d9ffadcccbddb73021591f32d60eb971603a581c"),
    ],
)
def test_corrupted_cifar10_arrays_are_pinned(cls, expected):
    rng = np.random.default_rng(5)
    train = (rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 3))
    test = (rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 2))
    params = cls.make_params({"ratio": 95.0, "difficulty": 4})
    assert cls.generator_version == "2", "bump the digests together with the version"
    assert digest(cls.generate(params, train, test, data_seed=1, workers=1, progress=False)) == expected


def test_the_digest_sees_every_byte():
    a = {"x": np.zeros(4, np.uint8)}
    b = {"x": np.array([0, 0, 0, 1], np.uint8)}
    assert digest(a) != digest(b) and digest(a) != digest({"x": np.zeros(4, np.int64)})


def loaded_arrays(data: BiasedData) -> dict[str, np.ndarray]:
    """Everything a loaded dataset hands to training: both splits' images, targets and biases, and
    the aligned mapping."""
    out = {}
    for name, split in (("train", data.train), ("test", data.test)):
        out[f"{name}_images"], out[f"{name}_targets"] = split.images.numpy(), split.targets.numpy()
        if split.biases is not None:
            out[f"{name}_biases"] = split.biases.numpy()
    if data.aligned_bias is not None:
        out["aligned_bias"] = data.aligned_bias.numpy()
    return out


@pytest.fixture
def celeba_paths(tmp_path) -> DataPaths:
    make_celeba(tmp_path)  # 48 solid-colour JPEGs, partitions train, train, valid, train, test, train, ...
    return DataPaths(tmp_path, tmp_path / "cache", allow_download=False)


@pytest.mark.parametrize(
    ("params", "seed", "expected"),
    [
        ({}, 0, "37bd55eacda516f7e374ef88aea8f23507d51bb1d91b14556194d56dac584ddf"),
        ({}, 3, "37bd55eacda516f7e374ef88aea8f23507d51bb1d91b14556194d56dac584ddf"),  # no seeded step
        (
            {"target": "Wearing_Lipstick", "bias": "Heavy_Makeup"},
            0,
            "e28f47caf0d0693cf9db93ff59263aae8d33596954fb52f7a0357cf2b68ab0c4",
        ),
        ({"balanced_train": True}, 0, "c1b5529d33c4b7f021fb7c11c386f9bf83dd45e7eabfba804e7357a95fa92434"),
        ({"balanced_train": True}, 3, "ec14560ea28ff1e120d27599e64b78cc857700a3ccf74dfaaad3dabe78b213b8"),
    ],
)
def test_celeba_arrays_are_pinned(celeba_paths, params, seed, expected):
    data = CelebA.load(CelebA.make_params({"resolution": 16, "pretrained": False, **params}), celeba_paths, seed)
    assert CelebA.generator_version == "1", "bump the digests together with the version"
    arrays = loaded_arrays(data)
    # 48 files, 4 of every 6 in the train partition and 1 in the validation one (the evaluation set).
    train_size = 8 if params.get("balanced_train") else 32
    assert arrays["train_images"].shape == (train_size, 3, 16, 16) and arrays["test_images"].shape == (8, 3, 16, 16)
    assert digest(arrays) == expected


def test_celeba_fixture_rows_and_balanced_subsample_exact_values(celeba_paths):
    data = CelebA.load(CelebA.make_params({"resolution": 16, "pretrained": False}), celeba_paths)
    # The first train files are 000001, 000002 and 000004: colours (20 + 37i, 20 + 91i, 20 + 53i) mod 200.
    assert data.train.images[:3, :, 0, 0].tolist() == [[20, 20, 20], [57, 112, 73], [131, 93, 180]]
    assert data.train.targets[:8].tolist() == [1, 0, 1, 1, 1, 1, 0, 0]
    assert data.aligned_bias.tolist() == [1, 0]
    balanced = CelebA.load(
        CelebA.make_params({"resolution": 16, "pretrained": False, "balanced_train": True}), celeba_paths, 0
    )
    # The smallest (Blond_Hair, Male) group of the fixture's train partition has 2 samples: 2 per group.
    groups = balanced.train.targets * 2 + balanced.train.biases
    assert groups.bincount(minlength=4).tolist() == [2, 2, 2, 2]
    assert balanced.train.images[:3, :, 0, 0].tolist() == [[42, 166, 138], [153, 39, 98], [27, 22, 203]]


def test_celeba_balanced_rows_are_pinned():
    # Groups (target * 2 + bias): 0 at 0 1 2 10, 1 at 3 4, 2 at 5 6 11, 3 at 7 8 9; m = 2 per group.
    targets = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1])
    biases = np.array([0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0])
    assert balanced_rows(targets, biases, 0).tolist() == [0, 3, 4, 5, 6, 7, 8, 10]
    assert balanced_rows(targets, biases, 1).tolist() == [0, 2, 3, 4, 6, 7, 9, 11]


def paint_distinct(bar_root) -> None:
    """Replace make_bar's solid colours (one per class) by a different stripy gradient per file, so
    the digest sees each file's place in the order and the resize-and-crop geometry."""
    for i, path in enumerate(sorted(bar_root.glob("*/*.jpg"))):
        with Image.open(path) as image:
            width, height = image.size
        x, y = np.arange(width)[None, :, None], np.arange(height)[:, None, None]
        ramp = (x * 255 // max(width - 1, 1) + np.array([0, 40, 80]) + 17 * i) % 256
        Image.fromarray(np.where((y * 4 // height) % 2 == 1, 255 - ramp, ramp).astype(np.uint8)).save(path, quality=95)


@pytest.mark.parametrize(
    ("painted", "resolution", "expected"),
    [
        (False, 16, "caace4446f630c101ed21ca9524fac4b02ba6e243b913745ce8edf52cff51500"),
        (False, 8, "ecc7bc68f8307a9fb06d9091b668592023272edb01c91cba1d24bf2013657153"),
        (True, 16, "d571e371d113cba3384afa785f910fe0372211d328ab9b63eaab2e5127958481"),
    ],
)
def test_bar_arrays_are_pinned(tmp_path, painted, resolution, expected):
    bar_root = make_bar(tmp_path)  # train (4, 3, 2, 4, 3, 2) and test (2, 1, 2, 1, 2, 1) images per class
    if painted:
        paint_distinct(bar_root)
    paths = DataPaths(tmp_path, tmp_path / "cache", allow_download=False)
    arrays = BAR.arrays(BAR.canonical(BAR.make_params({"resolution": resolution, "pretrained": False})), paths)
    assert BAR.generator_version == "1", "bump the digests together with the version"
    stored = {16: 18, 8: 9}[resolution]  # round(resolution * 256 / 224)
    assert arrays["train_images"].shape == (18, 3, stored, stored)
    assert arrays["train_targets"].tolist() == [0] * 4 + [1] * 3 + [2] * 2 + [3] * 4 + [4] * 3 + [5] * 2
    assert arrays["test_targets"].tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 5]
    if not painted:  # climbing is solid (200, 30, 30), within JPEG error
        assert arrays["train_images"][0, :, 0, 0].tolist() == [202, 30, 30]
    assert digest(arrays) == expected


@pytest.mark.parametrize(
    ("seed", "params", "expected"),
    [
        (0, {}, "ac441800f8ffe8ad37181c3b7b62dbb94d8616747015de685dde9efa21897733"),
        (1, {"ratio": 80}, "fc0e01ab8715870dedd1a3f8b1c9d2fd519d82e309ad4f4376c6532523c08493"),
        (
            2,
            {"split_column": None, "test_fraction": 0.25, "balanced_test": True},
            "50e6fe064c256afeeae0ab5c90ec65c94597095fa1ddb44b75981db33dd09848",
        ),
    ],
)
def test_image_table_folder_arrays_are_pinned(tmp_path, seed, params, expected):
    folder = Folder(tmp_path)  # 35 solid-colour PNG/JPEG rows: train 12 + 3 cats, 10 + 2 dogs; test 2 per group
    data = folder.load(seed, **params)
    arrays = loaded_arrays(data)
    assert (data.class_names, data.bias_names) == (["cat", "dog"], ["land", "water"])
    assert data.aligned_bias.tolist() == [1, 0]  # cats mostly on water, dogs on land: the swap
    # ratio=80: cats keep 12 aligned + 3 conflicting (80%), dogs 8 aligned + their 2 conflicting.
    sizes = {0: (27, 8), 1: (25, 8), 2: (26, 4)}[seed]
    assert (len(arrays["train_targets"]), len(arrays["test_targets"])) == sizes
    assert digest(arrays) == expected


@pytest.mark.parametrize(
    ("resize", "expected"),
    [
        ("stretch", "5502cc57c9e3a6ec9bdc90675b4560b4d4e49459f8b76668bf3015a4f04e0c9c"),
        ("short_side_center", "7b17462fcee7c61e79f1a10571a32fd47d1f089936e5dad579dfe2acbe5281a8"),
    ],
)
def test_image_table_array_arrays_are_pinned(tmp_path, resize, expected):
    # Six random 10 x 7 (H x W) images in a .npy file, resized to 8 x 8; table rows in a shuffled order.
    images = np.random.default_rng(11).integers(0, 256, size=(6, 10, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    order = (5, 0, 4, 2, 1, 3)
    rows = [dict(index=k, y="ba"[k % 2], split="test" if k in (1, 4) else "train") for k in order]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    values = dict(root="images.npy", table="t.csv", target="y", split_column="split", model="mlp", resolution=8)
    data = ImageTable.load(ImageTable.make_params({**values, "resize": resize}), DataPaths(tmp_path, tmp_path / "c"))
    arrays = loaded_arrays(data)
    assert arrays["train_targets"].tolist() == [0, 1, 1, 0]  # rows 5 0 2 3: b a a b, classes a=0, b=1
    first = Image.fromarray(images[5])  # the first train row
    if resize == "stretch":
        expected_pixels = first.resize((8, 8), Image.BILINEAR)
    else:  # width 7 -> 8, height 10 * 8 / 7 = 11.4 -> 11, then rows 2..9 (round(3 / 2) = 2)
        expected_pixels = first.resize((8, 11), Image.BILINEAR).crop((0, 2, 8, 10))
    np.testing.assert_array_equal(arrays["train_images"][0], np.asarray(expected_pixels).transpose(2, 0, 1))
    assert digest(arrays) == expected
