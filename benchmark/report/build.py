"""The whole report of a store: every table it can fill (CSV, LaTeX, Markdown), Figures 2 and 4,
method diagnostics and report.md listing missing cells, failed trials and other protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from debiasbench.benchmark.paper.axes import EXTENDED_METHODS, EXTENDED_TABLE, TABLES, table_label, table_stem
from debiasbench.benchmark.report.loading import load_store, scan
from debiasbench.benchmark.report.output import ensure_dir, write_csv, write_text
from debiasbench.benchmark.report.page import PAGE, write_index_html
from debiasbench.benchmark.report.provenance import provenance_from_store
from debiasbench.benchmark.report.render import render_csv, render_latex, render_markdown
from debiasbench.benchmark.report.selection import Selection, select
from debiasbench.benchmark.report.selectors import DEFAULT_SELECTOR
from debiasbench.benchmark.report.stats_report import StatsOptions
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore, verified_once


@dataclass
class ReportOptions:
    tables: Sequence[int] | None = None  # None: every table the store can fill
    protocol: str | None = None  # None: "paper", unless the store holds another protocol only
    selector: str = DEFAULT_SELECTOR
    data_root: str | None = None
    figures: bool = True
    figure_ratio: float | None = None
    figure_difficulty: int = 4
    latex_paper_values: bool = False
    markdown_paper_values: bool = True
    stats: StatsOptions | None = None  # cells, methods and pair of the statistics (None: defaults)


def default_out(results: str) -> Path:
    store = ResultStore(results)
    return Path(store.root) / "report" if store.is_local else Path("report")


def _trial_lines(frame: pd.DataFrame, with_error: bool) -> list[str]:
    out = []
    for _, t in frame.iterrows():
        params = ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))
        text = f"- {t['dataset']}/{t['method']} ({params}) seed {t['trial_seed']} [{t['trial_key']}]"
        if with_error:
            error = str(t.get("error") or "").strip().splitlines()
            text += f": {error[-1] if error else 'no error text'}"
        out.append(text)
    return out


def build_report(results: str, out: Path | None = None, options: ReportOptions | None = None) -> str:
    """Write the tables, figures and report.md under `out`; return report.md's Markdown."""
    with verified_once():  # tables, diagnostics and provenance each scan the store: verify each file once
        return _build_report(results, out, options)


def _build_report(results: str, out: Path | None, options: ReportOptions | None) -> str:
    options = options or ReportOptions()
    out = Path(out) if out else default_out(results)
    data = load_store(results)
    sel = select(data, options.protocol, options.selector)
    ensure_dir(out)
    requested = list(options.tables) if options.tables else list(TABLES)
    beyond = bool(len(data.trials)) and bool(set(data.trials["method"]) & set(EXTENDED_METHODS))
    if options.tables is None and beyond:
        requested.append(EXTENDED_TABLE)  # only when the store holds methods beyond the paper
    has_bar = bool(len(data.trials)) and (data.trials["dataset"] == "bar").any()
    lines = [
        f"# DebiasBench report: {results}",
        "",
        f"Protocol {sel.protocol}, selector {sel.selector.name} ({sel.selector.description}). "
        f"{len(sel.summaries)} completed trial(s) evaluated, {len(sel.failed)} failed, "
        f"{len(sel.stopped)} stopped early by a scheduler (never tabulated), "
        f"{len(sel.excluded)} stored under another protocol.",
    ]
    if len(sel.unfinished):
        lines.append(
            f"{len(sel.unfinished)} trial(s) were interrupted mid-run (partial records, never tabulated): "
            "rerun the same grid command to resume them."
        )
    if len(sel.excluded):
        others = ", ".join(sorted(set(sel.excluded["selection_protocol"].astype(str))))
        lines.append(
            f"Trials of protocol(s) {others} are not in these tables: rerun with --protocol {others.split(',')[0]}."
        )
    if len(sel.unevaluated):
        lines.append(
            f"{len(sel.unevaluated)} completed trial(s) have no evaluation rows and are left out: "
            + ", ".join(sel.unevaluated["trial_key"])
            + "."
        )
    written, skipped = [], []
    for number in requested:
        if number == 7 and options.tables is None and not has_bar and options.data_root is None:
            continue  # BAR counts only when BAR is in play (or asked for)
        result = build_table(number, sel, options.data_root)
        if not result.fillable and options.tables is None:
            skipped.append(table_label(number) + (f" ({result.missing_reason})" if result.missing_reason else ""))
            continue
        markdown = render_markdown(result, sel, options.markdown_paper_values)
        stem = table_stem(number)
        write_text(out / f"{stem}.md", markdown + "\n")
        write_text(out / f"{stem}.tex", render_latex(result, sel, options.latex_paper_values))
        write_text(out / f"{stem}.csv", render_csv(result))
        written.append(number)
        lines += ["", markdown]
    if skipped:
        lines += ["", "Not filled by this store: " + ", ".join(skipped) + "."]
    from debiasbench.benchmark.report.stats_files import write_statistics

    lines += write_statistics(sel, out, options.stats or StatsOptions(), options.data_root)
    from debiasbench.benchmark.report.selection_compare import write_selection_comparison

    lines += write_selection_comparison(data, out)  # only for a store holding validation-protocol trials
    if options.figures:
        lines += ["", "### Figures", ""] + _figures(sel, out / "figures", options)
    failed_all = data.trials[data.trials["status"] == "failed"] if len(data.trials) else data.trials
    if len(failed_all):
        lines += ["", f"### Failed trials ({len(failed_all)})", ""] + _trial_lines(failed_all, with_error=True)
        columns = [
            "trial_key",
            "dataset",
            "method",
            "dataset_params",
            "method_hparams",
            "trial_seed",
            "selection_protocol",
            "error",
        ]
        write_csv(failed_all[columns], out / "failed_trials.csv", index=False)
    diagnostics = method_diagnostics(results)
    if len(diagnostics):
        write_csv(diagnostics, out / "diagnostics.csv", index=False)
        lines += [
            "",
            "### Method diagnostics at the last epoch (mean over trials; every epoch in diagnostics.csv)",
            "",
            *_markdown_frame(_last_epoch_diagnostics(diagnostics)),
        ]
    lines += [
        "",
        f"Files under {out}: "
        + (", ".join([f"{table_stem(n)}.{{csv,tex,md}}" for n in written] + _statistics_files(out)) or "no tables"),
    ]
    lines += [
        "",
        f"Open {out / PAGE} in a browser: every table with the paper beside it, the figures and the provenance.",
    ]
    markdown = "\n".join(lines)
    write_text(out / "report.md", markdown + "\n")
    write_index_html(out, provenance_from_store(results))  # reads what was just written
    return markdown


def _statistics_files(out: Path) -> list[str]:
    names = sorted({p.stem for p in out.glob("comparison_*.csv")})
    names = [f"{n}.{{csv,tex,md}}" for n in names]
    for name in ("pairwise.csv", "ranking.csv", "resolution.csv", "critical_difference.png", "selection.csv"):
        if (out / name).is_file():
            names.append(name)
    return names


def method_diagnostics(results: str) -> pd.DataFrame:
    """Every method-diagnostic row (subset "method", see Method.epoch_diagnostics) of the store's
    completed trials, with the trial's identity."""
    store = ResultStore(results)
    expression = (pc.field("subset") == "method") & (pc.field("status") == "completed")
    columns = [
        "trial_key",
        "dataset",
        "method",
        "dataset_params",
        "method_hparams",
        "trial_seed",
        "selection_protocol",
        "epoch",
        "metric",
        "value",
    ]
    return scan(store, columns, expression).sort_values(
        ["dataset", "method", "trial_key", "epoch", "metric"], ignore_index=True
    )


def _last_epoch_diagnostics(diagnostics: pd.DataFrame) -> pd.DataFrame:
    last = diagnostics[diagnostics["epoch"] == diagnostics.groupby("trial_key")["epoch"].transform("max")]
    keys = ["dataset", "dataset_params", "method", "method_hparams", "metric"]
    return last.groupby(keys, sort=True)["value"].agg(mean="mean", n="count").reset_index()


def _markdown_frame(frame: pd.DataFrame) -> list[str]:
    """A small DataFrame as Markdown table lines (pandas' to_markdown needs the tabulate package)."""

    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _figures(sel: Selection, out: Path, options: ReportOptions) -> list[str]:
    from debiasbench.benchmark.report.figures import FigureDataError, FigureOptions, figure2, figure4

    figure_options = FigureOptions(ratio=options.figure_ratio, difficulty=options.figure_difficulty)
    lines = []
    for name, draw in (("Figure 2", figure2), ("Figure 4", figure4)):
        try:
            paths = draw(sel, out, figure_options)
            lines.append(f"- {name}: " + ", ".join(str(p) for p in paths))
        except FigureDataError as error:
            lines.append(f"- {name} not drawn: {error}")
    return lines


def write_report(results: str, out: Path | None = None, **options) -> str:
    """Entry point of run_all.py: every table the store can fill, the figures and report.md under
    `out` (default RESULTS/report); returns the Markdown. Keyword options as in ReportOptions."""
    return build_report(results, out, ReportOptions(**options))
