"""The paper's reported numbers (Nam et al., NeurIPS 2020, Tables 1-10) as reference data for the
report. Transcribed once from the paper text; tests/benchmark/test_paper_values.py re-parses the
paper and checks every number here against it.

A cell is addressed as (table, dataset, row, metric, column), the same address the report's tidy
CSVs use:

    table 1        row "<target>/<bias>" (e.g. "digit/color"), metric "unbiased", column
                   "biased_train" (Accuracy) or "unbiased_train" (Accuracy*); metric and column
                   "relative_drop" for the relative drop (percent, no std)
    tables 2, 3    row the ratio ("95.0" ...), metric "unbiased" (2) / "conflicting" (3), column the method
    table 4        row "99.0", metric "unbiased"/"conflicting", column the method
    table 5        row "<target>/<bias>" attribute names, metric "unbiased"/"conflicting", column the method
    table 6        row the method, metric "accuracy", column the class name or "average"
    table 7        row "train"/"test", metric "count", column the class name or "total"
    tables 8, 9    row the difficulty ("1" ... "4"), metric "unbiased" (8) / "conflicting" (9)
    table 10       row the ratio, metric "unbiased"/"conflicting", column the method

Values are percent (counts for Table 7); std is None where the paper gives none.
"""

from __future__ import annotations

import pandas as pd

from debiasbench.benchmark.paper.axes import BAR_CLASSES, BASELINES

PaperKey = tuple[int, str, str, str, str]


# Rows are copied from the paper in its order; each row holds mean, std pairs in column order.
_T1 = """
cmnist   color/digit       99.97 0.04  100.0 0.00  -0.03
cmnist   digit/color       50.34 0.16  96.41 0.07  -47.79
ccifar1  corruption/object 98.34 0.26  99.62 0.03  -1.28
ccifar1  object/corruption 22.72 0.87  80.00 0.01  -71.60
ccifar2  corruption/object 98.64 0.20  99.80 0.01  -1.16
ccifar2  object/corruption 21.07 0.29  79.65 0.11  -73.56
"""
# Tables 2, 3, 8, 9: columns Vanilla, LfF (Ours), HEX, REPAIR, Group DRO.
_T2 = """
cmnist  95.0 77.63 .44  85.39 .94  70.44 1.41  82.51 .59  84.50 .46
cmnist  98.0 62.29 1.47 80.48 .45  62.03 .24   72.86 1.47 76.30 1.53
cmnist  99.0 50.34 .16  74.01 2.21 51.99 1.09  67.28 1.69 71.33 1.76
cmnist  99.5 35.34 .13  63.39 1.97 41.38 1.31  56.40 3.74 59.67 2.73
ccifar1 95.0 45.24 .22  59.95 .16  21.74 .27   48.74 .71  53.15 .53
ccifar1 98.0 30.21 .82  49.43 .78  17.81 .29   37.89 .22  40.19 .23
ccifar1 99.0 22.72 .87  41.37 2.34 16.62 .80   32.42 .35  32.11 .83
ccifar1 99.5 17.93 .66  31.66 1.18 15.39 .13   26.26 1.06 29.26 .11
ccifar2 95.0 41.27 .98  58.57 1.18 19.25 .81   54.05 1.01 57.92 .31
ccifar2 98.0 28.29 .62  48.75 1.68 15.55 .84   44.22 .84  46.12 1.11
ccifar2 99.0 20.71 .29  41.29 2.08 14.42 .51   38.40 .26  39.57 1.04
ccifar2 99.5 17.37 .31  34.11 2.39 13.63 .42   31.03 .42  34.25 .74
"""
_T3 = """
cmnist  95.0 75.17 .51  85.77 .66  67.75 1.49  83.26 .42  83.11 .41
cmnist  98.0 58.13 1.63 80.67 .56  58.80 .28   73.42 1.42 74.28 1.93
cmnist  99.0 44.83 .18  74.19 1.94 46.96 1.20  68.26 1.52 69.58 1.66
cmnist  99.5 28.15 1.44 63.49 1.94 35.05 1.46  57.27 3.92 57.07 3.60
ccifar1 95.0 39.42 .20  59.62 .03  14.09 .31   49.99 .92  49.00 .45
ccifar1 98.0 22.65 .95  48.69 .70  9.34 .41    38.94 .20  35.10 .49
ccifar1 99.0 14.24 1.03 39.55 2.56 8.37 .56    33.05 .36  28.04 1.18
ccifar1 99.5 10.50 .71  28.61 1.25 6.38 .08    26.52 .94  24.40 .28
ccifar2 95.0 34.97 1.06 58.64 1.04 10.79 .90   54.46 1.02 54.60 .11
ccifar2 98.0 20.52 .73  48.99 1.61 6.60 7.23   44.63 .75  42.71 1.24
ccifar2 99.0 12.11 .29  40.84 2.06 5.11 .59    38.81 .20  37.07 1.02
ccifar2 99.5 10.01 .01  32.03 2.51 4.22 .43    31.45 .28  30.92 .86
"""
# Table 4: unbiased Vanilla, LfF-CE (Ours†), LfF; then bias-conflicting in the same order.
_T4 = """
cmnist  99.0 50.34 .16 49.90 1.67 74.01 2.21  44.83 .18  44.44 1.83 74.19 1.94
ccifar1 99.0 22.72 .87 25.15 .63  41.37 2.34  14.24 1.03 17.21 .69  39.55 2.56
ccifar2 99.0 20.71 .29 22.90 .47  41.29 2.08  12.11 .29  14.89 .66  40.84 2.06
"""
# Table 5: unbiased Vanilla, LfF, Group DRO; then bias-conflicting. HairColor is BlondHair.
_T5 = """
celeba Blond_Hair/Male   70.25 .35 84.24 .37  85.43 .53  52.52 .19 81.24 1.38 83.40 .67
celeba Heavy_Makeup/Male 62.00 .02 66.20 1.21 64.88 .42  33.75 .28 45.48 4.33 50.24 .68
"""
# Table 6: columns climbing, diving, fishing, racing, throwing, vaulting, average.
_T6 = """
bar vanilla 59.05 17.48 16.56 1.58 62.69 3.64 77.27 2.62 28.62 2.95 66.92 7.25 51.85 5.92
bar rebias  77.78 8.32  51.57 4.54 54.76 2.38 80.56 2.19 28.63 2.71 65.14 7.21 59.74 1.49
bar lff     79.36 4.79  34.59 2.26 75.39 3.63 83.08 1.90 33.72 .68  71.75 3.32 62.98 2.76
"""
# Table 7: counts per class, then the total.
_T7 = """
bar train 326 520 163 336 317 279 1941
bar test  105 159 42  132 85  131 654
"""
_T8 = """
cmnist  1 50.97 .59  75.91 1.25 51.38 .59  69.60 .97  70.34 1.98
cmnist  2 50.92 1.16 74.05 2.21 51.38 .59  64.14 .38  70.80 1.82
cmnist  3 49.66 .42  72.50 1.79 52.88 1.24 69.20 2.03 71.03 2.24
cmnist  4 50.34 .16  74.01 2.21 51.99 1.09 67.28 1.69 71.33 1.76
ccifar1 1 35.37 .58  52.12 1.99 23.92 .80  37.73 .73  49.62 1.49
ccifar1 2 29.30 3.11 47.19 2.26 21.23 .38  36.22 .88  44.54 1.70
ccifar1 3 26.44 .98  44.12 1.53 18.66 1.16 34.59 1.88 38.43 1.44
ccifar1 4 22.72 .87  41.37 2.34 16.62 .80  32.42 .35  32.11 .83
ccifar2 1 32.00 .87  46.89 3.02 20.12 .44  41.00 .39  44.85 .04
ccifar2 2 27.62 1.31 43.56 2.10 16.82 .38  39.57 .61  43.21 1.54
ccifar2 3 22.14 .03  41.46 .30  15.22 .47  38.16 .52  42.12 .52
ccifar2 4 20.71 .29  41.29 2.08 14.42 .51  38.40 .26  39.57 1.04
"""
_T9 = """
cmnist  1 51.32 .45  68.03 1.11 50.54 .88  67.70 1.02 68.77 1.26
cmnist  2 45.54 .65  75.56 1.22 46.84 .44  63.71 .29  69.28 1.13
cmnist  3 45.48 1.29 74.29 1.78 47.88 1.37 70.05 2.10 68.68 1.26
cmnist  4 44.83 .18  74.19 1.94 46.96 1.20 68.26 1.52 69.58 1.66
ccifar1 1 44.23 2.61 43.76 1.16 35.50 2.82 38.11 .68  57.34 1.33
ccifar1 2 28.47 .63  49.04 2.08 16.82 1.01 36.81 .93  45.03 1.66
ccifar1 3 21.71 3.37 44.22 2.69 13.46 .41  35.15 1.88 39.64 1.91
ccifar1 4 14.24 1.03 39.55 2.56 8.37 .56   33.05 .36  28.04 1.18
ccifar2 1 30.56 .39  46.27 2.66 22.51 .45  41.19 .32  43.64 1.45
ccifar2 2 24.70 1.03 44.74 3.01 19.37 .41  39.99 .57  40.94 .34
ccifar2 3 19.77 1.44 41.72 1.90 16.14 .28  38.41 .48  40.61 2.01
ccifar2 4 12.11 .29  40.84 2.06 5.11 .59   38.81 .20  37.07 1.02
"""
# Table 10: unbiased Vanilla, LfF, LfF with the RUBi rule; then bias-conflicting.
_T10 = """
cmnist 95.0 77.63 .44  85.39 .94  78.22 .34  75.17 .51  85.77 .66  75.84 .36
cmnist 98.0 62.29 1.47 80.48 .45  64.92 .78  58.13 1.63 80.67 .56  61.04 .83
cmnist 99.0 50.34 .16  74.01 2.21 52.41 .42  44.83 .18  74.19 1.94 46.85 .46
cmnist 99.5 35.34 .13  63.39 1.97 36.42 .37  28.15 1.44 63.49 1.94 29.36 .43
"""


def _rows(text: str) -> list[tuple[str, str, list[float]]]:
    out = []
    for line in text.strip().splitlines():
        dataset, row, *numbers = line.split()
        out.append((dataset, row, [float(x) for x in numbers]))
    return out


def _pairs(numbers: list[float]) -> list[tuple[float, float]]:
    return list(zip(numbers[0::2], numbers[1::2]))


def _build() -> dict[PaperKey, tuple[float, float | None]]:
    cells: dict[PaperKey, tuple[float, float | None]] = {}
    for dataset, row, numbers in _rows(_T1):
        (biased, unbiased), drop = _pairs(numbers[:4]), numbers[4]
        cells[(1, dataset, row, "unbiased", "biased_train")] = biased
        cells[(1, dataset, row, "unbiased", "unbiased_train")] = unbiased
        cells[(1, dataset, row, "relative_drop", "relative_drop")] = (drop, None)
    for table, text, metric in (
        (2, _T2, "unbiased"),
        (3, _T3, "conflicting"),
        (8, _T8, "unbiased"),
        (9, _T9, "conflicting"),
    ):
        for dataset, row, numbers in _rows(text):
            for method, pair in zip(BASELINES, _pairs(numbers)):
                cells[(table, dataset, row, metric, method)] = pair
    for table, text, methods in (
        (4, _T4, ("vanilla", "lff_ce", "lff")),
        (5, _T5, ("vanilla", "lff", "group_dro")),
        (10, _T10, ("vanilla", "lff", "lff_rubi")),
    ):
        for dataset, row, numbers in _rows(text):
            pairs = _pairs(numbers)
            for metric, block in (("unbiased", pairs[:3]), ("conflicting", pairs[3:])):
                for method, pair in zip(methods, block):
                    cells[(table, dataset, row, metric, method)] = pair
    for dataset, method, numbers in _rows(_T6):
        for column, pair in zip((*BAR_CLASSES, "average"), _pairs(numbers)):
            cells[(6, dataset, method, "accuracy", column)] = pair
    for dataset, split, numbers in _rows(_T7):
        for column, count in zip((*BAR_CLASSES, "total"), numbers):
            cells[(7, dataset, split, "count", column)] = (count, None)
    return cells


PAPER: dict[PaperKey, tuple[float, float | None]] = _build()


def paper_cell(table: int, dataset: str, row: str, metric: str, column: str) -> tuple[float, float | None] | None:
    """The paper's (mean, std) of one cell, or None where the paper has no such cell."""
    return PAPER.get((int(table), dataset, str(row), metric, column))


def paper_frame() -> pd.DataFrame:
    """Every reference cell as a tidy frame (table, dataset, row, metric, column, mean, std)."""
    rows = [
        dict(zip(("table", "dataset", "row", "metric", "column"), key), mean=mean, std=std)
        for key, (mean, std) in PAPER.items()
    ]
    return pd.DataFrame(rows)


def paper_value(
    metric: str, dataset: str, ratio: float, difficulty: int, method: str
) -> tuple[float, float | None] | None:
    """The paper's (mean, std) for unbiased or bias-conflicting accuracy of a controlled-dataset
    configuration, from whichever of Tables 2/3, 4, 8/9 and 10 reports it."""
    row_ratio, row_difficulty = f"{float(ratio):.1f}", str(int(difficulty))
    tables = {"unbiased": (2, 8), "conflicting": (3, 9)}[metric]
    candidates = []
    if row_difficulty == "4":
        candidates += [(tables[0], row_ratio), (4, row_ratio), (10, row_ratio)]
    if row_ratio == "99.0":
        candidates.append((tables[1], row_difficulty))
    for table, row in candidates:
        hit = paper_cell(table, dataset, row, metric, method)
        if hit is not None:
            return hit
    return None
