"""The report's command line (torch-free).

python -m debiasbench.benchmark.report RESULTS [--out DIR] [--tables 1,2,...] [--protocol paper|validation]
    [--selector last|val_accuracy|val_worst_group|test_oracle] [--data-root DIR] [--no-figures]
python -m debiasbench.benchmark.report RESULTS --groups TRIAL_KEY            # per-group view of one trial
python -m debiasbench.benchmark.report RESULTS --groups table=2,dataset=cmnist,row=99.0,column=lff   # of a cell
python -m debiasbench.benchmark.report MY_STORE --compare results/reference/cmnist  # my run against the reference
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa

from debiasbench.benchmark.integrity import os_errno
from debiasbench.benchmark.paper.axes import REPORT_TABLES
from debiasbench.benchmark.report.build import ReportOptions, build_report
from debiasbench.benchmark.report.comparison import COMPARISON_METRICS
from debiasbench.benchmark.report.groups import group_view
from debiasbench.benchmark.report.loading import ReportError
from debiasbench.benchmark.report.output import WRITE_ERRNOS, write_error
from debiasbench.benchmark.report.selectors import DEFAULT_SELECTOR, SELECTORS, SelectorError
from debiasbench.benchmark.report.stats_report import RANK_METRICS, StatsOptions
from debiasbench.benchmark.store import ResultStore, StoreError


def _tables_arg(text: str) -> list[int]:
    try:
        numbers = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected table numbers like 1,2,10, got {text!r}") from None
    bad = [n for n in numbers if n not in REPORT_TABLES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown table(s) {bad}; the paper has tables 1-10, and 11 is the extended comparison"
        )
    return numbers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m debiasbench.benchmark.report",
        description="Tables 1-10 and Figures 2 and 4 of the LfF paper from a result store.",
    )
    p.add_argument("results", help="result store directory or URI")
    p.add_argument("--out", type=Path, help="output directory (default: RESULTS/report)")
    p.add_argument("--tables", type=_tables_arg, help="only these tables, e.g. 1,2,3 (written even if empty)")
    p.add_argument(
        "--protocol",
        choices=("paper", "validation"),
        help="selection protocol of the trials (default: paper, unless the store holds only validation trials)",
    )
    p.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        choices=tuple(SELECTORS),
        help="epoch per trial: last (the paper's), val_accuracy, val_worst_group, test_oracle",
    )
    p.add_argument(
        "--data-root", help="raw data directory holding BAR/ for Table 7 (default: $DEBIAS_DATA_ROOT, else ./data)"
    )
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument(
        "--figure-ratio", type=float, help="ratio of the figures' trials (default: 99, else the highest stored)"
    )
    p.add_argument("--figure-difficulty", type=int, default=4, help="difficulty of the figures' trials (default: 4)")
    p.add_argument("--latex-paper-values", action="store_true", help="print the paper's value beside each LaTeX cell")
    p.add_argument(
        "--groups",
        metavar="SPEC",
        help="per-group view: a trial key (or unique prefix), or a table cell "
        "table=N,dataset=...,row=...,column=...[,metric=...]",
    )
    p.add_argument("--role", help="model role for --groups (default: the trial's predictor, e.g. debiased)")
    p.add_argument(
        "--compare",
        metavar="REFERENCE",
        help="compare RESULTS with a reference store cell by cell "
        "(e.g. results/reference/cmnist); flags cells more than 2 standard errors apart",
    )
    stats = p.add_argument_group("statistics (pairwise.csv, ranking.csv, critical_difference.png)")
    stats.add_argument(
        "--rank-metrics",
        type=_list_arg,
        default=list(RANK_METRICS),
        help="metrics whose cells are ranked and compared: unbiased,aligned,conflicting,worst_group "
        "(default: unbiased,conflicting)",
    )
    stats.add_argument("--rank-datasets", type=_list_arg, help="only these datasets' cells (default: all)")
    stats.add_argument(
        "--rank-conditions", type=_list_arg, help="only cells whose condition contains one of these, e.g. ratio=99.5"
    )
    stats.add_argument("--rank-methods", type=_list_arg, help="only these methods, e.g. vanilla,lff,group_dro")
    stats.add_argument(
        "--resolve",
        type=float,
        metavar="POINTS",
        help="a comparison also counts as resolved when its 95%% interval lies within +-POINTS",
    )
    stats.add_argument(
        "--pair",
        type=_pair_arg,
        help="the leading comparison of every cell, e.g. lff,group_dro (default: best vs runner-up)",
    )
    return p


def _list_arg(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _pair_arg(text: str) -> tuple[str, str]:
    names = _list_arg(text)
    if len(names) != 2:
        raise argparse.ArgumentTypeError(f"--pair takes two method names like lff,group_dro, got {text!r}")
    return names[0], names[1]


def stats_options(args: argparse.Namespace) -> StatsOptions:
    unknown = sorted(set(args.rank_metrics) - set(COMPARISON_METRICS))
    if unknown:
        raise ReportError(f"unknown --rank-metrics {unknown}; choose from {', '.join(COMPARISON_METRICS)}")
    return StatsOptions(
        metrics=tuple(args.rank_metrics),
        datasets=args.rank_datasets,
        conditions=args.rank_conditions,
        methods=args.rank_methods,
        precision=args.resolve,
        pair=args.pair,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ResultStore(args.results).require_exists()  # a mistyped path is an error, not an empty report
        if args.compare:
            from debiasbench.benchmark.report.build import default_out
            from debiasbench.benchmark.report.compare import write_comparison

            out = args.out or default_out(args.results)
            print(
                write_comparison(
                    args.results,
                    args.compare,
                    out,
                    tables=args.tables,
                    protocol=args.protocol,
                    selector=args.selector,
                    data_root=args.data_root,
                )
            )
            print(f"\nwritten: {out / 'compare.csv'}, {out / 'compare.md'}")
            return 0
        if args.groups:
            print(
                group_view(args.results, args.groups, args.out, args.protocol, args.selector, args.role, args.data_root)
            )
            return 0
        options = ReportOptions(
            tables=args.tables,
            protocol=args.protocol,
            selector=args.selector,
            data_root=args.data_root,
            figures=not args.no_figures,
            figure_ratio=args.figure_ratio,
            figure_difficulty=args.figure_difficulty,
            latex_paper_values=args.latex_paper_values,
            stats=stats_options(args),
        )
        print(build_report(args.results, args.out, options))
        return 0
    except (ReportError, SelectorError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, pa.ArrowException) as error:
        if isinstance(error, OSError) and os_errno(error) in WRITE_ERRNOS and getattr(error, "filename", None):
            # A write the report's own writers (output.py) do not cover: still a write, not a read.
            print(f"error: {write_error(error, Path(error.filename))}", file=sys.stderr)
        else:  # a file damaged after the store's scan verified it
            print(f"error: {ResultStore(args.results).explain_read_failure(error)}", file=sys.stderr)
        return 2
