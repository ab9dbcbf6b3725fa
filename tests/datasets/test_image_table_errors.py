"""image_table bad input: missing root, table or image, unknown columns, paths outside the
root, empty groups and splits, bad cells and bad parameters."""

import pytest
from image_table_kit import write_images, write_table
from PIL import Image

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataNotFoundError, DataPaths
from debiasbench.datasets.image_table import (
    ImageTable,
    ImageTableError,
    ImageTableNotFoundError,
)

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
