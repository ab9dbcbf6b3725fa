"""One static, self-contained HTML page of a written report: RESULTS/report/index.html (torch-free).

    python -m debiasbench.benchmark.report.provenance REPORT_DIR [--results RESULTS]

`write_index_html(report_dir, provenance)` reads only what the report already wrote into its
directory (tableN.csv and tableN.md, figures/figure{2,4}.png, groups_*_matrix.csv with their heatmap
PNGs, diagnostics.csv, failed_trials.csv) and renders templates/index.html.j2 with Jinja2
(autoescaping on). The page needs no server and no network: PNGs are embedded as data URIs, the
few lines of table-sorting JavaScript are inline, and a Content-Security-Policy forbids any fetch.

Per table cell it shows our mean ± std and n, the paper's mean ± std and the difference. The best
value is marked per row (per column for Table 6; Tables 1 and 7 have no best), as the report's
bold does. A cell is flagged when |ours - paper| > 2 SE with SE = max(std/sqrt(n), paper std/sqrt(3)):
the paper's ± is read as its std over its 3 seeds; a side without a std drops out, a cell with
neither is not tested. Missing cells are those with n = 0 in tableN.csv ("failed" when a failed
trial is why). `provenance_from_store(results)` gathers the page's provenance from a result store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from debiasbench.benchmark.report.compare import PAPER_SEEDS, SE_FACTOR
from debiasbench.benchmark.report.output import write_text
from debiasbench.benchmark.report.page_format import beyond_2se
from debiasbench.benchmark.report.page_sections import (
    data_uri,
    diagnostics_view,
    failed_view,
    groups_view,
    provenance_view,
)
from debiasbench.benchmark.report.page_stats import comparison_views, statistics_view
from debiasbench.benchmark.report.page_tables import table_files, table_view

# beyond_2se is re-exported: tools/results_page.py and the page tests read it from here.
__all__ = ["PAGE", "beyond_2se", "page_context", "render_page", "write_index_html"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "index.html.j2"
PAGE = "index.html"
SE_RULE = (
    f"A cell is highlighted when |ours − paper| > {SE_FACTOR:g} SE, with SE the larger of our standard "
    f"error (std/√n over our seeds) and the paper's (its ± read as the std over its {PAPER_SEEDS} seeds, "
    f"so ±/√{PAPER_SEEDS}). A side without a std (n = 1, or no ± in the paper) drops out; a cell where "
    "neither has one is not tested."
)


def page_context(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the template shows, read from the report directory."""
    report_dir = Path(report_dir)
    tables = [table_view(report_dir, number, path) for number, path in table_files(report_dir)]
    tables += comparison_views(report_dir)
    figures = []
    for number in (2, 4):
        png = report_dir / "figures" / f"figure{number}.png"
        figures.append(
            {"number": number, "image": data_uri(png) if png.is_file() else "", "file": f"figures/figure{number}.png"}
        )
    files = sorted(
        p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*") if p.is_file() and p.name != PAGE
    )
    return {
        "title": "DebiasBench report",
        "report_dir": str(report_dir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tables": tables,
        "missing_total": sum(len(t["missing"]) for t in tables),
        "failed": failed_view(report_dir),
        "figures": figures,
        "groups": groups_view(report_dir),
        "diagnostics": diagnostics_view(report_dir),
        "provenance": provenance_view(provenance),
        "se_rule": SE_RULE,
        "statistics": statistics_view(report_dir),
        "files": files,
    }


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> str:
    return _environment().get_template(TEMPLATE).render(**page_context(Path(report_dir), provenance))


def write_index_html(report_dir: Path, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write report_dir/index.html from the files the report wrote there; returns its path.
    `provenance`: e.g. provenance_from_store(RESULTS); None leaves that section saying so."""
    report_dir = Path(report_dir)
    page = report_dir / PAGE
    text = render_page(report_dir, provenance)
    write_text(page, text)  # atomically; a full disk or read-only folder: one line naming --out
    return page
