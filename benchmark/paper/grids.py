"""Named grids: declarative lists of trials (docs/protocol.md#grids). Torch-free.

`paper` is the union of every trial Tables 1-10 need, deduplicated (a trial shared by Tables 2, 3
and 8 runs once and remembers every table that uses it). `quick` is a CPU-sized subset that shows
LfF's effect on Colored MNIST in minutes; `smoke` is what the tests drive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from debiasbench.benchmark.paper.axes import (
    CELEBA_BIAS,
    CELEBA_TARGETS,
    DEFAULT_SEEDS,
    EXTENDED_TABLE,
    MALIGNANT,
    REPAIR_VARIANTS,
    REPORT_TABLES,
    TABLES,
)
from debiasbench.benchmark.paper.tables import paper_table
from debiasbench.benchmark.trial import TrialConfig


def _method_entries(method: str) -> list[dict]:
    """Hyper-parameter variants a table runs for one method name."""
    if method == "repair":
        return [{"variant": v} for v in REPAIR_VARIANTS]
    return [{}]


def table_trials(number: int) -> list[TrialConfig]:
    """The trials one paper table needs (one seed; seeds are expanded by `build_grid`), derived
    from the table's specification in `benchmark.paper.tables`."""
    table = paper_table(number)
    tables = (number,)
    if not table.trains:
        return []  # e.g. Table 7: BAR's per-class counts come from the dataset itself
    if table.rows == "direction":  # Table 1: both directions, biased and unbiased training sets
        return [
            TrialConfig(
                ds, method, {"ratio": r, "difficulty": d, "target": target, "unbiased_train": unbiased}, tables=tables
            )
            for ds in table.datasets
            for target in MALIGNANT[ds]
            for unbiased in (False, True)
            for r in table.ratios
            for d in table.difficulties
            for method in table.methods
        ]
    if table.rows == "attribute":  # Table 5: CelebA target attributes against the bias
        return [
            TrialConfig(ds, m, {"target": t, "bias": CELEBA_BIAS}, tables=tables)
            for ds in table.datasets
            for t in CELEBA_TARGETS
            for m in table.methods
        ]
    if table.rows == "method":  # Table 6: BAR, one row per method, the dataset's own protocol
        return [TrialConfig(ds, m, tables=tables) for ds in table.datasets for m in table.methods]
    return [
        TrialConfig(dataset=ds, method=m, dataset_params={"ratio": r, "difficulty": d}, method_hparams=h, tables=tables)
        for ds in table.datasets
        for r in table.ratios
        for d in table.difficulties
        for m in table.methods
        for h in _method_entries(m)
    ]


def paper_grid() -> list[TrialConfig]:
    return [t for table in TABLES for t in table_trials(table)]


def extended_grid() -> list[TrialConfig]:
    """The Table 2/3 protocol on Colored MNIST (every ratio, difficulty 4) for the paper's baselines
    and the methods beyond the paper (the extended table)."""
    return table_trials(EXTENDED_TABLE)


def quick_grid() -> list[TrialConfig]:
    """Colored MNIST at 99% and 99.5%, Vanilla vs LfF and Group DRO, one seed, 40 epochs. The two
    most skewed ratios, where LfF's gain is large from early on; at 95% LfF needs most of its 100
    epochs to pass Vanilla, so a 40-epoch run there would not show the paper's effect."""
    return [
        TrialConfig("cmnist", m, {"ratio": r, "difficulty": 4}, epochs=QUICK_EPOCHS, tables=(2, 3))
        for r in QUICK_RATIOS
        for m in ("vanilla", "lff", "group_dro")
    ]


QUICK_EPOCHS = 40
QUICK_RATIOS = (99.0, 99.5)


def smoke_grid() -> list[TrialConfig]:
    return [
        TrialConfig("cmnist", m, {"ratio": 99.0, "difficulty": 4}, epochs=1, tables=(2, 3)) for m in ("vanilla", "lff")
    ]


USER_GRID = "user"  # any datasets x methods from the command line, on the datasets' own protocols
GRIDS: dict[str, Callable[[], list[TrialConfig]]] = {
    "paper": paper_grid,
    "extended": extended_grid,
    "quick": quick_grid,
    "smoke": smoke_grid,
    USER_GRID: list,  # built from --datasets and --methods by build_grid
}
DEFAULT_GRID_SEEDS = {"paper": DEFAULT_SEEDS, "extended": DEFAULT_SEEDS, "quick": (0,), "smoke": (0,), USER_GRID: (0,)}


def _identity(trial: TrialConfig) -> str:
    return json.dumps({**trial.__dict__, "tables": None}, sort_keys=True, default=str)


def deduplicate(trials: Iterable[TrialConfig]) -> list[TrialConfig]:
    """Merge trials that differ only in which tables use them (order kept)."""
    merged: dict[str, TrialConfig] = {}
    for trial in trials:
        identity = _identity(trial)
        if identity in merged:
            previous = merged[identity]
            merged[identity] = replace(previous, tables=tuple(sorted(set(previous.tables) | set(trial.tables))))
        else:
            merged[identity] = trial
    return list(merged.values())


def build_grid(
    name: str,
    tables: Sequence[int] | None = None,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    ratios: Sequence[float] | None = None,
    difficulties: Sequence[int] | None = None,
) -> list[TrialConfig]:
    """A named grid, filtered and with seeds expanded. Filters are validated by the caller
    against the registries; unknown tables and grids are rejected here."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; valid grids: {', '.join(GRIDS)}")
    if tables is not None:
        bad = [t for t in tables if t not in REPORT_TABLES]
        if bad:
            raise ValueError(
                f"unknown table(s) {bad}; the paper has tables {TABLES[0]}-{TABLES[-1]}, and {EXTENDED_TABLE} is the "
                "extended comparison"
            )
    if name == USER_GRID:
        if not datasets or not methods:
            raise ValueError(
                "the user grid is every --datasets x --methods pair: name both, e.g. --grid user "
                "--datasets image_table --methods vanilla,lff --dataset-param root=DIR ..."
            )
        trials = [TrialConfig(d, m) for d in datasets for m in methods]
    else:
        trials = GRIDS[name]()
    if tables is not None:
        trials = [
            replace(t, tables=tuple(x for x in t.tables if x in tables)) for t in trials if set(t.tables) & set(tables)
        ]
    if datasets is not None:
        trials = [t for t in trials if t.dataset in datasets]
    if methods is not None:
        trials = [t for t in trials if t.method in methods]
    if ratios is not None:
        trials = [t for t in trials if float(t.dataset_params.get("ratio", -1)) in {float(r) for r in ratios}]
    if difficulties is not None:
        trials = [t for t in trials if t.dataset_params.get("difficulty") in set(difficulties)]
    if epochs is not None:
        trials = [replace(t, epochs=epochs) for t in trials]
    seed_list = tuple(seeds) if seeds is not None else DEFAULT_GRID_SEEDS[name]
    expanded = [replace(t, trial_seed=s) for t in trials for s in seed_list]
    return deduplicate(expanded)
