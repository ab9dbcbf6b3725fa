"""Each of the paper's tables as a declarative specification. Torch-free.

One fact, written once: which datasets, methods, ratios and difficulties a table covers. The grids
derive the trials a table needs from it (`benchmark.paper.grids`), and the report derives which
stored trials fill the table's cells from it (`benchmark.report.tables`), so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from debiasbench.benchmark.paper.axes import (
    BASELINES,
    CONTROLLED,
    DIFFICULTIES,
    EXTENDED_METHODS,
    EXTENDED_TABLE,
    MAIN_DIFFICULTY,
    MAIN_RATIO,
    RATIOS,
    TABLES,
)

# What one row of a table stands for.
ROW_KINDS = ("direction", "ratio", "dataset", "attribute", "method", "difficulty", "split")


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    datasets: tuple[str, ...]
    methods: tuple[str, ...]  # the paper's method columns (rows for Table 6)
    metrics: tuple[str, ...]
    rows: str  # one of ROW_KINDS
    ratios: tuple[float, ...] = (MAIN_RATIO,)
    difficulties: tuple[int, ...] = (MAIN_DIFFICULTY,)
    extra_methods: bool = False  # methods outside the paper get columns of their own
    trains: bool = True  # False: computed from the dataset itself (Table 7)


def _ratio_title(metric: str) -> str:
    return f"{metric} test accuracy (%) with varying ratio of bias-aligned training samples (difficulty 4)"


def _difficulty_title(metric: str) -> str:
    return f"{metric} test accuracy (%) with varying difficulty of the bias attribute (99% bias-aligned)"


PAPER_TABLES: dict[int, PaperTable] = {
    1: PaperTable(
        1,
        "Unbiased test accuracy (%) of Vanilla trained on the biased (99% aligned, difficulty 4; Accuracy) and on "
        "the unbiased training set (Accuracy*), for both (target, bias) directions",
        CONTROLLED,
        ("vanilla",),
        ("unbiased",),
        "direction",
    ),
    2: PaperTable(
        2, _ratio_title("Unbiased"), CONTROLLED, BASELINES, ("unbiased",), "ratio", RATIOS, extra_methods=True
    ),
    3: PaperTable(
        3,
        _ratio_title("Bias-conflicting"),
        CONTROLLED,
        BASELINES,
        ("conflicting",),
        "ratio",
        RATIOS,
        extra_methods=True,
    ),
    4: PaperTable(
        4,
        "Ablation at 99% bias-aligned samples (difficulty 4): LfF with a CE-trained biased model (LfF-CE) against "
        "Vanilla and LfF; unbiased and bias-conflicting test accuracy (%)",
        CONTROLLED,
        ("vanilla", "lff_ce", "lff"),
        ("unbiased", "conflicting"),
        "dataset",
    ),
    5: PaperTable(
        5,
        "CelebA (official validation partition): unbiased and bias-conflicting accuracy (%)",
        ("celeba",),
        ("vanilla", "lff", "group_dro"),
        ("unbiased", "conflicting"),
        "attribute",
        extra_methods=True,
    ),
    6: PaperTable(
        6,
        "BAR: per-class test accuracy (%) and their average (every test image is bias-conflicting)",
        ("bar",),
        ("vanilla", "rebias", "lff"),
        ("accuracy",),
        "method",
        extra_methods=True,
    ),
    7: PaperTable(
        7,
        "BAR: number of images per class in the training and evaluation sets",
        ("bar",),
        (),
        ("count",),
        "split",
        trains=False,
    ),
    8: PaperTable(
        8,
        _difficulty_title("Unbiased"),
        CONTROLLED,
        BASELINES,
        ("unbiased",),
        "difficulty",
        difficulties=DIFFICULTIES,
        extra_methods=True,
    ),
    9: PaperTable(
        9,
        _difficulty_title("Bias-conflicting"),
        CONTROLLED,
        BASELINES,
        ("conflicting",),
        "difficulty",
        difficulties=DIFFICULTIES,
        extra_methods=True,
    ),
    10: PaperTable(
        10,
        "Colored MNIST: LfF with the RUBi combination rule (LfF-RUBi) against Vanilla and LfF, unbiased and "
        "bias-conflicting test accuracy (%) with varying ratio of bias-aligned samples (difficulty 4)",
        ("cmnist",),
        ("vanilla", "lff", "lff_rubi"),
        ("unbiased", "conflicting"),
        "ratio",
        RATIOS,
    ),
}
assert tuple(PAPER_TABLES) == TABLES

# Not the paper's: its Table 2/3 protocol on Colored MNIST for the baselines plus the methods
# researchers compare against today; unbiased and bias-conflicting accuracy side by side.
EXTENDED = PaperTable(
    EXTENDED_TABLE,
    "Extended comparison beyond the paper on Colored MNIST: unbiased and bias-conflicting test accuracy (%) with "
    "varying ratio of bias-aligned training samples (difficulty 4)",
    ("cmnist",),
    (*BASELINES, *EXTENDED_METHODS),
    ("unbiased", "conflicting"),
    "ratio",
    RATIOS,
    extra_methods=True,
)
ALL_TABLES = {**PAPER_TABLES, EXTENDED_TABLE: EXTENDED}
# Where a table's paper values come from, per metric, when it is not one of the paper's own.
PAPER_VALUES_FROM = {EXTENDED_TABLE: {"unbiased": 2, "conflicting": 3}}


def paper_table(number: int) -> PaperTable:
    """A table's specification: the paper's 1-10, or the extended comparison (11)."""
    if number not in ALL_TABLES:
        raise ValueError(
            f"unknown table {number!r}; the paper has tables {TABLES[0]}-{TABLES[-1]}, and {EXTENDED_TABLE} is the "
            "extended comparison"
        )
    return ALL_TABLES[number]
