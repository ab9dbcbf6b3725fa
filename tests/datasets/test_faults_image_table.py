"""Fault tests for image_table (ISSUE 29, item 7): the same image listed twice with contradictory
labels was accepted silently (only an image in both splits was warned about)."""

import logging

from image_table_kit import Folder, write_table

from debiasbench.datasets.image_table import ImageTable


def test_an_image_listed_with_contradictory_labels_is_warned_about_naming_the_rows(tmp_path, caplog):
    folder = Folder(tmp_path)
    first = folder.rows[0]
    other = "dog" if first["label"] == "cat" else "cat"
    rows = [*folder.rows, {**first, "label": other}]  # the same file again, as the other class
    write_table(folder.table, rows)
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets.image_table"):
        ImageTable.plan(folder.params(), folder.paths)
    text = caplog.text
    assert "1 row(s) of" in text and "list an image already listed with other labels" in text
    assert f"labels.csv row 1 (line 2) (label={first['label']}" in text
    assert f"labels.csv row {len(rows)} (line {len(rows) + 1}) (label={other}" in text
    assert "correct the labels or remove one row" in text


def test_an_image_listed_twice_with_the_same_labels_is_not_a_contradiction(tmp_path, caplog):
    folder = Folder(tmp_path)
    write_table(folder.table, [*folder.rows, dict(folder.rows[0])])
    with caplog.at_level(logging.WARNING, logger="debiasbench.datasets.image_table"):
        ImageTable.plan(folder.params(), folder.paths)
    assert "other labels" not in caplog.text
