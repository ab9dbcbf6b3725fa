"""Honest model selection, measured (torch-free): for the validation-protocol trials of a store, each
method's number and rank per cell under four epoch selectors side by side (selection.csv, selection.md):

    last             the paper's final epoch
    val_accuracy     best validation accuracy of the biased hold-out (needs no bias labels)
    val_worst_group  best worst-group validation accuracy (reads validation bias labels)
    test_oracle      best unbiased test epoch: an UPPER BOUND (the test set chooses), never a protocol

and, per cell, Kendall's tau between each selector's ranking and the final epoch's."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats

from debiasbench.benchmark.report.comparison import comparison_tables
from debiasbench.benchmark.report.loading import StoreData
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.statistics import t_interval
from debiasbench.benchmark.report.stats_report import cell_values
from debiasbench.benchmark.supervision import SUPERVISION_SYMBOLS

SELECTOR_ORDER = ("last", "val_accuracy", "val_worst_group", "test_oracle")
SELECTOR_HEADERS = {
    "last": "final epoch",
    "val_accuracy": "val. accuracy (no bias labels)",
    "val_worst_group": "val. worst group (bias labels)",
    "test_oracle": "test oracle (upper bound)",
}
CAPTION = (
    "Selection: each method's {metric} test accuracy (%, mean [95% t interval] over seeds, rank in the cell) "
    "with the epoch chosen by the final epoch (the paper's rule), the biased hold-out's accuracy (no bias "
    "labels), its worst-group accuracy (uses validation bias labels) and the TEST ORACLE, the best test "
    "epoch: an optimistic upper bound, not a protocol. tau: Kendall's rank correlation of a selector's "
    "ranking with the final epoch's in the cell. Supervision: ○ none, ◐ bias-tailored, ● bias labels (in training). "
    "REPAIR is the best of its variants: on the test mean under the final epoch and the oracle (the paper's "
    "choice, so optimistic), on the selector's validation score under the two validation selectors."
)


def selection_frame(data: StoreData, metric: str = "unbiased") -> pd.DataFrame:
    """One row per (cell, method, selector): mean, std, ci_low, ci_high, n, rank (1 = best) and the
    method's supervision symbol, so "best without bias labels" can be read off the table."""
    symbols = {
        method: SUPERVISION_SYMBOLS.get(supervision, "")
        for method, supervision in zip(data.trials["method"], data.trials["supervision"])
    }
    rows = []
    for selector in SELECTOR_ORDER:
        sel = select(data, "validation", selector)
        values = cell_values([t for _, t in comparison_tables(sel)], sel.summaries)
        for (dataset, setting, condition, cell_metric), per in values.cells.items():
            if cell_metric != metric:
                continue
            means = {m: sum(v) / len(v) for m, v in per.items()}
            ranks = dict(zip(means, stats.rankdata([-x for x in means.values()])))
            for method, seeds in per.items():
                low, high = t_interval(seeds)
                std = float(pd.Series(seeds).std(ddof=1)) if len(seeds) > 1 else math.nan
                rows.append(
                    {
                        "dataset": dataset,
                        "setting": setting,
                        "condition": condition,
                        "metric": metric,
                        "method": method,
                        "supervision": symbols.get(values.methods[method], ""),
                        "selector": selector,
                        "mean": means[method],
                        "std": std,
                        "ci_low": low,
                        "ci_high": high,
                        "n": len(seeds),
                        "rank": float(ranks[method]),
                    }
                )
    return pd.DataFrame(rows)


def kendall_taus(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell and selector, Kendall's tau of its ranks with the final epoch's (methods in both)."""
    out = []
    for cell, part in frame.groupby(["dataset", "setting", "condition", "metric"], sort=False):
        final = part[part["selector"] == "last"].set_index("method")["rank"]
        for selector in SELECTOR_ORDER[1:]:
            other = part[part["selector"] == selector].set_index("method")["rank"]
            shared = sorted(set(final.index) & set(other.index))
            tau = stats.kendalltau(final[shared], other[shared]).statistic if len(shared) > 1 else math.nan
            out.append(
                {**dict(zip(["dataset", "setting", "condition", "metric"], cell)), "selector": selector, "tau": tau}
            )
    return pd.DataFrame(out)


def selection_comparison(data: StoreData, metric: str = "unbiased") -> tuple[pd.DataFrame, str] | None:
    """The selection frame of the store's validation-protocol trials and selection.md's text (heading,
    caption, one table per cell); None when the store holds no such trials. Writes nothing."""
    if not len(data.trials) or not (data.trials["selection_protocol"] == "validation").any():
        return None
    frame = selection_frame(data, metric)
    if frame.empty:
        return None
    taus = kendall_taus(frame)
    lines = ["### Selection: final epoch, validation selectors and the test oracle", "", CAPTION.format(metric=metric)]
    for cell, part in frame.groupby(["dataset", "setting", "condition"], sort=False):
        lines += ["", f"{' / '.join(x for x in cell if x)}:", ""]
        lines += ["| method | " + " | ".join(SELECTOR_HEADERS[s] for s in SELECTOR_ORDER) + " |"]
        lines += ["|---|" + "---:|" * len(SELECTOR_ORDER)]
        for method in part[part["selector"] == "last"].sort_values("rank")["method"].tolist() or sorted(
            set(part["method"])
        ):
            cells = []
            for selector in SELECTOR_ORDER:
                hit = part[(part["method"] == method) & (part["selector"] == selector)]
                cells.append(_cell(hit.iloc[0]) if len(hit) else "—")
            symbol = part.loc[part["method"] == method, "supervision"].iloc[0]
            lines.append(f"| {f'{method} {symbol}'.strip()} | " + " | ".join(cells) + " |")
        tau = taus[(taus["dataset"] == cell[0]) & (taus["setting"] == cell[1]) & (taus["condition"] == cell[2])]
        lines.append(
            "| tau with final epoch | — | "
            + " | ".join(
                "—" if math.isnan(t) else f"{t:.2f}"
                for t in tau.set_index("selector")["tau"].reindex(list(SELECTOR_ORDER[1:]))
            )
            + " |"
        )
    return frame, "\n".join(lines)


def write_selection_comparison(data: StoreData, out: Path, metric: str = "unbiased") -> list[str]:
    """selection.csv and selection.md for the store's validation-protocol trials; report.md's lines."""
    comparison = selection_comparison(data, metric)
    if comparison is None:
        return []
    frame, text = comparison
    frame.to_csv(out / "selection.csv", index=False)
    (out / "selection.md").write_text(text + "\n", encoding="utf-8")
    return ["", text]


def _cell(row: pd.Series) -> str:
    interval = "" if math.isnan(row["ci_low"]) else f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return f"{row['mean']:.2f}{interval} (#{row['rank']:g})"
