"""The paper's reported numbers (Nam et al., 2020), mean and std in percent, as reference data
for the report. Keys: (table, dataset, ratio, difficulty, method) -> (mean, std)."""

from __future__ import annotations

_METHODS_2 = ("vanilla", "lff", "hex", "repair", "group_dro")

# Table 2 (unbiased) and Table 3 (bias-conflicting), difficulty 4, rows = ratios 95, 98, 99, 99.5.
_TABLE2 = {
    "cmnist": [(77.63, .44, 85.39, .94, 70.44, 1.41, 82.51, .59, 84.50, .46),
               (62.29, 1.47, 80.48, .45, 62.03, .24, 72.86, 1.47, 76.30, 1.53),
               (50.34, .16, 74.01, 2.21, 51.99, 1.09, 67.28, 1.69, 71.33, 1.76),
               (35.34, .13, 63.39, 1.97, 41.38, 1.31, 56.40, 3.74, 59.67, 2.73)],
    "ccifar1": [(45.24, .22, 59.95, .16, 21.74, .27, 48.74, .71, 53.15, .53),
                (30.21, .82, 49.43, .78, 17.81, .29, 37.89, .22, 40.19, .23),
                (22.72, .87, 41.37, 2.34, 16.62, .80, 32.42, .35, 32.11, .83),
                (17.93, .66, 31.66, 1.18, 15.39, .13, 26.26, 1.06, 29.26, .11)],
    "ccifar2": [(41.27, .98, 58.57, 1.18, 19.25, .81, 54.05, 1.01, 57.92, .31),
                (28.29, .62, 48.75, 1.68, 15.55, .84, 44.22, .84, 46.12, 1.11),
                (20.71, .29, 41.29, 2.08, 14.42, .51, 38.40, .26, 39.57, 1.04),
                (17.37, .31, 34.11, 2.39, 13.63, .42, 31.03, .42, 34.25, .74)],
}
_TABLE3 = {
    "cmnist": [(75.17, .51, 85.77, .66, 67.75, 1.49, 83.26, .42, 83.11, .41),
               (58.13, 1.63, 80.67, .56, 58.80, .28, 73.42, 1.42, 74.28, 1.93),
               (44.83, .18, 74.19, 1.94, 46.96, 1.20, 68.26, 1.52, 69.58, 1.66),
               (28.15, 1.44, 63.49, 1.94, 35.05, 1.46, 57.27, 3.92, 57.07, 3.60)],
    "ccifar1": [(39.42, .20, 59.62, .03, 14.09, .31, 49.99, .92, 49.00, .45),
                (22.65, .95, 48.69, .70, 9.34, .41, 38.94, .20, 35.10, .49),
                (14.24, 1.03, 39.55, 2.56, 8.37, .56, 33.05, .36, 28.04, 1.18),
                (10.50, .71, 28.61, 1.25, 6.38, .08, 26.52, .94, 24.40, .28)],
    "ccifar2": [(34.97, 1.06, 58.64, 1.04, 10.79, .90, 54.46, 1.02, 54.60, .11),
                (20.52, .73, 48.99, 1.61, 6.60, 7.23, 44.63, .75, 42.71, 1.24),
                (12.11, .29, 40.84, 2.06, 5.11, .59, 38.81, .20, 37.07, 1.02),
                (10.01, .01, 32.03, 2.51, 4.22, .43, 31.45, .28, 30.92, .86)],
}
RATIOS = (95.0, 98.0, 99.0, 99.5)


def _expand(table: int, source: dict) -> dict:
    out = {}
    for dataset, rows in source.items():
        for ratio, row in zip(RATIOS, rows):
            for i, method in enumerate(_METHODS_2):
                out[(table, dataset, ratio, 4, method)] = (row[2 * i], row[2 * i + 1])
    return out


PAPER: dict[tuple, tuple[float, float]] = {**_expand(2, _TABLE2), **_expand(3, _TABLE3)}
# Table 4 (ratio 99, difficulty 4): LfF-CE (Ours†); unbiased as table 4, conflicting as table 4.3
for _ds, (_u, _us, _c, _cs) in {"cmnist": (49.90, 1.67, 44.44, 1.83), "ccifar1": (25.15, .63, 17.21, .69),
                                 "ccifar2": (22.90, .47, 14.89, .66)}.items():
    PAPER[(2, _ds, 99.0, 4, "lff_ce")] = (_u, _us)
    PAPER[(3, _ds, 99.0, 4, "lff_ce")] = (_c, _cs)
# Table 10: LfF with the RUBi combination rule on Colored MNIST.
for _r, (_u, _us, _c, _cs) in zip(RATIOS, [(78.22, .34, 75.84, .36), (64.92, .78, 61.04, .83),
                                            (52.41, .42, 46.85, .46), (36.42, .37, 29.36, .43)]):
    PAPER[(2, "cmnist", _r, 4, "lff_rubi")] = (_u, _us)
    PAPER[(3, "cmnist", _r, 4, "lff_rubi")] = (_c, _cs)


def paper_value(metric: str, dataset: str, ratio: float, difficulty: int, method: str) -> tuple[float, float] | None:
    """The paper's (mean, std) for unbiased (`unbiased`) or bias-conflicting (`conflicting`) accuracy."""
    table = {"unbiased": 2, "conflicting": 3}[metric]
    return PAPER.get((table, dataset, float(ratio), int(difficulty), method))
