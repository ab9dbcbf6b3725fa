"""tools/export_reference_layout: the reference's folder names, files and command, and what it refuses."""

import pickle

import numpy as np
import pytest

from debiasbench.datasets.cmnist import CMNISTParams, ColoredMNIST
from debiasbench.tools.export_reference_layout import export, main, reference_command, reference_tag


@pytest.mark.parametrize(
    ("dataset", "ratio", "difficulty", "tag"),
    [
        ("cmnist", 99.0, 4, "ColoredMNIST-Skewed0.01-Severity4"),
        ("cmnist", 99.5, 1, "ColoredMNIST-Skewed0.005-Severity1"),
        ("ccifar1", 95.0, 4, "CorruptedCIFAR10-Type0-Skewed0.05-Severity4"),
        ("ccifar2", 98.0, 2, "CorruptedCIFAR10-Type1-Skewed0.02-Severity2"),
    ],
)
def test_folder_names_follow_the_reference_pattern(dataset, ratio, difficulty, tag) -> None:
    assert reference_tag(dataset, CMNISTParams(ratio=ratio, difficulty=difficulty)) == tag


def test_the_command_uses_the_reference_named_configs_and_overrides_the_tag_where_none_exists(tmp_path) -> None:
    command = reference_command("cmnist", CMNISTParams(ratio=99.0), tmp_path)
    assert "with colored_mnist skewed3 severity4 " in command
    assert f"data_dir={tmp_path.resolve()}" in command
    odd = reference_command("cmnist", CMNISTParams(ratio=97.0, difficulty=2), tmp_path)
    assert "dataset_tag=ColoredMNIST-Skewed0.03-Severity2" in odd


def test_the_export_holds_the_generated_arrays_in_the_reference_layout(mnist_paths, tmp_path) -> None:
    params = ColoredMNIST.make_params({"ratio": 99.0})
    folder = export("cmnist", params, mnist_paths, tmp_path)
    assert folder == tmp_path / "ColoredMNIST-Skewed0.01-Severity4"
    data = ColoredMNIST.load(params, mnist_paths, 0)
    for ours, theirs in ((data.train, "train"), (data.test, "valid")):
        images = np.load(folder / theirs / "images.npy")
        attrs = np.load(folder / theirs / "attrs.npy")
        assert images.dtype == np.uint8 and images.shape == (len(ours), 28, 28, 3)
        np.testing.assert_array_equal(images, ours.images.numpy().transpose(0, 2, 3, 1))
        assert attrs.dtype == np.uint8
        np.testing.assert_array_equal(attrs[:, 0], ours.targets.numpy())
        np.testing.assert_array_equal(attrs[:, 1], ours.biases.numpy())
    train_attrs = np.load(folder / "train" / "attrs.npy")
    # The reference's cell counts: differences of round(n_y * cumsum(p)) over the bias values.
    p = 0.99 * np.eye(10) + 0.01 / 9 * (1 - np.eye(10))
    milestones = (np.bincount(train_attrs[:, 0])[:, None] * np.cumsum(p, axis=1)).round()
    cells = np.diff(milestones, axis=1, prepend=0)
    counts = np.zeros((10, 10))
    np.add.at(counts, (train_attrs[:, 0], train_attrs[:, 1]), 1)
    np.testing.assert_array_equal(counts, cells)
    with open(folder / "attr_names.pkl", "rb") as handle:
        assert pickle.load(handle) == ["digit", "color"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no partial files left


def test_an_existing_export_is_never_overwritten(mnist_paths, tmp_path) -> None:
    params = ColoredMNIST.make_params({"ratio": 99.0})
    (tmp_path / "ColoredMNIST-Skewed0.01-Severity4").mkdir()
    (tmp_path / "ColoredMNIST-Skewed0.01-Severity4" / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="exists; export into a new DATA_DIR"):
        export("cmnist", params, mnist_paths, tmp_path)
    assert (tmp_path / "ColoredMNIST-Skewed0.01-Severity4" / "mine.txt").read_text() == "keep me"


def test_the_reversed_task_and_bad_parameters_are_refused_with_the_fix(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit, match="reference trains the reversed task"):
        export("cmnist", ColoredMNIST.make_params({"target": "color"}), None, tmp_path)
    with pytest.raises(SystemExit, match="bad dataset parameter: .*difficulty"):
        main(["--dataset", "cmnist", "--difficulty", "7", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as raised:
        main(["--dataset", "bar", "--out", str(tmp_path)])
    assert raised.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_nothing_behind(mnist_paths, tmp_path, monkeypatch) -> None:
    import debiasbench.tools.export_reference_layout as module

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module.np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export("cmnist", ColoredMNIST.make_params({"ratio": 99.0}), mnist_paths, tmp_path)
    assert list(tmp_path.iterdir()) == []
