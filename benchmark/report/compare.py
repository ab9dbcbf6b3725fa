"""Two sets of numbers side by side, cell by cell: a user's store against a reference store (did I
reproduce it?) or our numbers against the paper's. The rule, used everywhere a difference is
flagged: a difference counts when it exceeds 2 standard errors, with SE the larger of the two
sides' standard errors (std/sqrt(n) over seeds; the paper's ± is read as a std over its 3 seeds).
A side without a std (n = 1) drops out; a cell where neither side has one is not tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.paper.axes import REPORT_TABLES, table_label
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.report.output import ensure_dir, write_csv, write_text
from debiasbench.benchmark.report.selection import select
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore

SE_FACTOR = 2.0
PAPER_SEEDS = 3  # the paper reports mean ± std over three runs


def standard_error(std: float, n: float) -> float:
    """std/sqrt(n); NaN without a std or with fewer than two values."""
    try:
        std, n = float(std), float(n)
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(std) or not math.isfinite(n) or n < 2:
        return math.nan
    return std / math.sqrt(n)


def beyond_standard_errors(difference: float, *standard_errors: float) -> tuple[bool | None, float]:
    """(|difference| > 2 SE with SE the largest known one, that SE); None when nothing is known."""
    known = [se for se in standard_errors if se is not None and math.isfinite(se)]
    if not known or difference is None or not math.isfinite(difference):
        return None, math.nan
    se = max(known)
    return abs(difference) > SE_FACTOR * se, se


_KEYS = ["table", "row_id", "col_id", "dataset", "row", "setting", "metric", "column"]


def _numbers(cells: pd.DataFrame) -> pd.DataFrame:
    columns = [*_KEYS, "mean", "std", "n"]
    return cells[columns] if len(cells) else pd.DataFrame(columns=columns)


def compare_stores(
    mine: str,
    reference: str,
    tables: Sequence[int] | None = None,
    protocol: str | None = None,
    selector: str = "last",
    data_root: str | None = None,
) -> pd.DataFrame:
    """One row per table cell filled in either store: both means, stds and ns, the difference,
    the SE used and whether the cell differs by more than 2 SE."""
    for location in (mine, reference):
        ResultStore(location).require_exists()  # a mistyped path is an error, not an empty comparison
    selections = [select(load_store(location), protocol, selector) for location in (mine, reference)]
    frames = []
    for number in tables or REPORT_TABLES:
        if number == 7:
            continue  # counts of the dataset itself, not results
        ours, theirs = (build_table(number, sel, data_root).cells for sel in selections)
        if not len(ours) and not len(theirs):
            continue
        merged = _numbers(ours).merge(_numbers(theirs), on=_KEYS, how="outer", suffixes=("_mine", "_reference"))
        frames.append(merged[(merged["n_mine"].fillna(0) > 0) | (merged["n_reference"].fillna(0) > 0)])
    sides = {
        name: (sorted(set(sel.summaries["dataset"])) if len(sel.summaries) else [], sel.protocol)
        for name, sel in zip(("mine", "reference"), selections)
    }
    if not frames or sides["mine"][1] != sides["reference"][1]:  # other protocols: nothing is comparable
        empty = pd.DataFrame()
        empty.attrs["sides"] = sides
        return empty
    out = pd.concat(frames, ignore_index=True)
    out.attrs["sides"] = sides  # what each store holds, for saying why nothing could be compared
    out["difference"] = out["mean_mine"] - out["mean_reference"]
    flags, ses = [], []
    for row in out.itertuples(index=False):
        flag, se = beyond_standard_errors(
            row.difference, standard_error(row.std_mine, row.n_mine), standard_error(row.std_reference, row.n_reference)
        )
        flags.append(flag)
        ses.append(se)
    out["se"] = ses
    out["difference_in_se"] = out["difference"] / out["se"]
    out["beyond_2se"] = flags
    return out.drop(columns=["row_id", "col_id"])


def comparison_markdown(frame: pd.DataFrame, mine: str, reference: str) -> str:
    """A per-table Markdown comparison; flagged cells are marked ⚠."""
    if frame.empty:
        why = _why_nothing_in_common(frame, mine, reference)
        return f"# {mine} against {reference}\n\nNothing could be compared: {why}."
    flagged = frame[frame["beyond_2se"] == True]  # noqa: E712 (None means untested)
    both = int(((frame["n_mine"].fillna(0) > 0) & (frame["n_reference"].fillna(0) > 0)).sum())
    only = {side: int((frame[f"n_{side}"].fillna(0) > 0).sum()) - both for side in ("mine", "reference")}
    head = (
        f"{both} cell(s) filled in both stores compared ({only['mine']} only in {mine}, "
        f"{only['reference']} only in {reference})"
    )
    head += (
        f"; {len(flagged)} differ by more than {SE_FACTOR:g} standard errors "
        "(SE: the larger of the two stores' std/√n; cells with n = 1 on both sides are not tested)."
    )
    if not both:  # "0 differ" would read like agreement
        head = f"Nothing could be compared: {_why_nothing_in_common(frame, mine, reference)}."
    lines = [f"# {mine} against {reference}", "", head, ""]
    fmt = lambda mean, std, n: (
        "—"
        if not n or n != n
        # noqa: E731
        else (f"{mean:.2f}" + (f" ± {std:.2f}" if std == std else "") + f" (n={int(n)})")
    )
    for number, part in frame.groupby("table", sort=True):
        lines += [
            f"## {table_label(int(number))}",
            "",
            "| dataset | row | metric | column | mine | reference | Δ | Δ/SE |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in part.itertuples(index=False):
            mark = " ⚠" if r.beyond_2se is True else ""
            delta = "" if r.difference != r.difference else f"{r.difference:+.2f}{mark}"
            in_se = "" if r.difference_in_se != r.difference_in_se else f"{r.difference_in_se:+.1f}"
            setting = f" [{r.setting}]" if r.setting else ""
            lines.append(
                f"| {r.dataset} | {r.row}{setting} | {r.metric} | {r.column} | "
                f"{fmt(r.mean_mine, r.std_mine, r.n_mine)} | {fmt(r.mean_reference, r.std_reference, r.n_reference)}"
                f" | {delta} | {in_se} |"
            )
        lines.append("")
    return "\n".join(lines)


def _why_nothing_in_common(frame: pd.DataFrame, mine: str, reference: str) -> str:
    """Why two stores share no filled cell: no common dataset, protocol, or cells."""
    sides = frame.attrs.get("sides") or {}
    (ours, our_protocol), (theirs, their_protocol) = sides.get("mine", ([], "?")), sides.get("reference", ([], "?"))
    if our_protocol != their_protocol:
        return (
            f"{mine} is read under protocol {our_protocol} and {reference} under {their_protocol} "
            "(pass --protocol to choose one)"
        )
    if not ours and not theirs:
        return f"no table cell is filled in {mine} or {reference}"
    if not set(ours) & set(theirs):
        return f"no dataset in common ({mine}: {', '.join(ours) or 'none'}; {reference}: {', '.join(theirs) or 'none'})"
    return (
        f"no table cell is filled in both (common dataset(s) {', '.join(sorted(set(ours) & set(theirs)))}, but other "
        "ratios, methods, settings or tables); the cells of each are listed below"
    )


def write_comparison(mine: str, reference: str, out: Path, **options) -> str:
    frame = compare_stores(mine, reference, **options)
    ensure_dir(out)
    write_csv(frame, out / "compare.csv", index=False)
    markdown = comparison_markdown(frame, mine, reference)
    write_text(out / "compare.md", markdown + "\n")
    return markdown
