"""tools/cell_explanations: the hand-kept CSV of why cells differ from the paper. A cell takes the
most specific matching line; every bad line is an error naming the line and the fix."""

import pytest

from debiasbench.tools.cell_explanations import FIELDS, explain, load_explanations

HEADER = ",".join(FIELDS)


def _write(tmp_path, *lines):
    path = tmp_path / "why.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_the_most_specific_line_wins(tmp_path):
    path = _write(
        tmp_path,
        "*,*,repair,open,a.md#x,anywhere",
        "2,*,repair,partly explained,a.md#y,table 2",
        '2,99.5,repair,explained,a.md#z,"table 2, 99.5%"',
    )
    items = load_explanations(path)
    assert explain(items, 2, 99.5, "repair").summary == "table 2, 99.5%"
    assert explain(items, 2, "99.5", "repair").verdict == "explained"  # rows compare as numbers
    assert explain(items, 2, 95.0, "repair").summary == "table 2"
    assert explain(items, 8, 1, "repair").summary == "anywhere"
    assert explain(items, 2, 99.5, "lff") is None


def test_a_text_row_matches_as_text(tmp_path):
    items = load_explanations(_write(tmp_path, "1,color/digit,biased_train,open,a.md#x,small"))
    assert explain(items, 1, "color/digit", "biased_train").verdict == "open"
    assert explain(items, 1, "digit/color", "biased_train") is None


@pytest.mark.parametrize(
    "line,message",
    [
        ("2,99,repair,done,a.md#x,s", "verdict must be one of explained, partly explained, open"),
        ("two,99,repair,open,a.md#x,s", "table must be a table number or \\*"),
        ("*,99,repair,open,a.md#x,s", "a row needs its table"),
        ("2,99,repair,open,,s", "link is empty"),
        ("2,99,repair,open,a.md#x,one, two", "quote a summary with commas"),
        ("2,99,repair,open", "expected the 6 fields"),
    ],
)
def test_a_bad_line_names_itself_and_the_fix(tmp_path, line, message):
    path = _write(tmp_path, "*,*,lff,open,a.md#x,fine", line)
    with pytest.raises(ValueError, match=message) as caught:
        load_explanations(path)
    assert f"{path}:3" in str(caught.value)


def test_two_lines_for_the_same_cells_are_refused(tmp_path):
    path = _write(tmp_path, "2,99,repair,open,a.md#x,one", "2,99.0,repair,open,a.md#y,two")
    with pytest.raises(ValueError, match="line 2"):
        load_explanations(path)


def test_a_wrong_header_or_a_missing_file_is_an_error(tmp_path):
    path = tmp_path / "why.csv"
    path.write_text("table,row,method\n", encoding="utf-8")
    with pytest.raises(ValueError, match="the header must be"):
        load_explanations(path)
    with pytest.raises(ValueError, match="no such explanations file"):
        load_explanations(tmp_path / "absent.csv")
