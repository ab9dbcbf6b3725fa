"""The bias diagnosis (docs/diagnose.md): the paper's Section 2 test for one attribute pair, in
both directions, as pure functions of the result store (pandas, no torch).

For each direction (target, bias) the experiments layer trains Vanilla on the biased training set
and on a bias-balanced one and hands over their trial keys (`DiagnosisSpec`). Three modules read
those trials back and decide (diagnosis_reading: the store; diagnosis_verdict: the rules; this one:
the outputs):

* the accuracy drop: drop = balanced - biased mean unbiased test accuracy (points, last epoch);
  noise = 2 sqrt(se_b^2 + se_u^2), se = std / sqrt(n) over seeds;
  malignant if drop > max(noise, 5); benign if drop <= 5 and (n >= 2 or drop <= 2);
  inconclusive otherwise, with the seeds that would settle it;
* what the loss curves show being learned first (Figure 2): from the biased trials' per-epoch
  training loss of aligned and conflicting samples, the epoch each falls below half its epoch-1
  value and the conflicting / aligned mean loss ratio over the first quarter Q of the epochs; the
  bias is learned first when the aligned loss halves within Q and the conflicting loss does not
  (or the ratio is at least 10), the target when both halve within Q (`LOSS_RULE`);
* the per-group accuracy matrices (rows target value, columns bias value) of every arm.

`write_diagnosis` writes diagnosis.md, diagnosis.csv, diagnosis.json (the spec),
diagnosis_loss.png/.pdf and groups_<direction>_<arm>[_matrix].csv/.png/.pdf.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from debiasbench.benchmark.report.diagnosis_reading import DiagnosisResult, DiagnosisSpec, DirectionSpec, diagnose
from debiasbench.benchmark.report.diagnosis_verdict import ARMS, RULE, loss_evidence, verdict_of
from debiasbench.benchmark.store import ResultStore

# The spec, the reading and the rules are re-exported: benchmark/experiments/diagnose.py and the
# tests import them from here.
__all__ = [
    "DiagnosisResult",
    "DiagnosisSpec",
    "DirectionSpec",
    "compact_table",
    "default_diagnosis_out",
    "diagnose",
    "group_stem",
    "loss_evidence",
    "loss_figure",
    "markdown",
    "verdict_of",
    "write_diagnosis",
]


def _number(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _accuracy(mean: float, std: float, n: int) -> str:
    if not n:
        return "missing"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if n > 1 else "") + f" (n={n})"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def group_stem(direction: DirectionSpec, arm: str) -> str:
    return f"groups_{_slug(direction.target)}_{_slug(direction.bias)}_{arm}"


def compact_table(result: DiagnosisResult) -> str:
    """The console summary: one line per direction."""
    header = ("target", "bias", "biased acc", "balanced acc", "drop", "noise", "verdict", "learned first")
    lines = []
    for row in result.table.itertuples(index=False):
        first = {"bias": f"{row.bias} (bias)", "target": f"{row.target} (target)"}.get(
            row.learned_first, row.learned_first
        )
        lines.append(
            (
                row.target,
                row.bias,
                _accuracy(row.biased_mean, row.biased_std, row.n_biased),
                _accuracy(row.balanced_mean, row.balanced_std, row.n_balanced),
                _number(row.drop),
                _number(row.noise),
                row.verdict,
                first,
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*r) for r in lines)])


def _markdown_matrix(matrix: pd.DataFrame) -> list[str]:
    columns = [f"{matrix.columns.name} = {c}" for c in matrix.columns]
    lines = ["| " + " | ".join([f"{matrix.index.name}", *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for index, values in matrix.iterrows():
        lines.append("| " + " | ".join([str(index), *(_number(v, 1) for v in values)]) + " |")
    return lines


def _heading(spec: DiagnosisSpec) -> str:
    seeds = ",".join(str(s) for s in spec.seeds)
    return (
        f"Bias diagnosis of {spec.dataset}"
        + (f" ({spec.setting})" if spec.setting else "")
        + (f"; seeds {seeds}" if seeds else "")
    )


def markdown(result: DiagnosisResult, figure: Path | None, group_files: dict[tuple[int, str], list[Path]]) -> str:
    spec, table = result.spec, result.table
    lines = [
        f"# {_heading(spec)}",
        "",
        "Vanilla trained on the biased training set and on a bias-balanced one, both evaluated on the unbiased "
        "evaluation set (mean accuracy over (target, bias) groups, last epoch), in both directions "
        "(docs/diagnose.md).",
        "",
        "| target | bias | verdict | biased acc (%) | balanced acc (%) | drop (points) | noise (points) "
        "| learned first (loss) |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in table.itertuples(index=False):
        first = row.learned_first_attribute or row.learned_first
        lines.append(
            f"| {row.target} | {row.bias} | **{row.verdict}** | "
            f"{_accuracy(row.biased_mean, row.biased_std, row.n_biased)} | "
            f"{_accuracy(row.balanced_mean, row.balanced_std, row.n_balanced)} | {_number(row.drop)} | "
            f"{_number(row.noise)} | {first} |"
        )
    lines.append("")
    for number, (direction, row) in enumerate(zip(spec.directions, table.itertuples(index=False)), start=1):
        lines += [
            f"## {number}. Target {direction.target}, bias {direction.bias}: {row.verdict}",
            "",
            f"- Accuracy: {row.reason}.",
            *([f"- To settle it: {row.settle}."] if row.settle else []),
            f"- Loss curves: {row.loss_evidence}.",
            f"- Balanced training set: {direction.balanced_how or 'the dataset’s bias-balanced training set'}.",
            f"- Trials: biased {row.biased_keys or '(none completed)'}; balanced "
            f"{row.balanced_keys or '(none completed)'}.",
            "",
        ]
        for arm in ARMS:
            if (number, arm) in result.groups:
                _, matrix = result.groups[(number, arm)]
                n = row.n_biased if arm == "biased" else row.n_balanced
                lines += [
                    f"Per-group test accuracy (%), Vanilla on the {arm} training set, mean over {n} seed(s): "
                    f"rows {direction.target}, columns {direction.bias}.",
                    "",
                    *_markdown_matrix(matrix),
                    "",
                    "Files: " + ", ".join(p.name for p in group_files.get((number, arm), [])),
                    "",
                ]
    if result.missing:
        lines += ["## Trials not completed", "", *(f"- {m}" for m in result.missing), ""]
    lines += ["## Rule", "", RULE, ""]
    if figure is not None:
        lines += [f"![training loss of aligned and conflicting samples]({figure.name})", ""]
    return "\n".join(lines)


def loss_figure(result: DiagnosisResult, out: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """One panel per direction: mean training loss of aligned vs conflicting samples over epochs
    (band: one standard deviation over seeds), the biased trials (Figure 2's view)."""
    from debiasbench.benchmark.report.figures import _lineplot, _new_figure, _save, _sns

    sns = _sns()
    directions = result.spec.directions
    figure, axes = _new_figure(1, len(directions))
    order = ["bias-aligned", "bias-conflicting"]
    palette = dict(zip(order, sns.color_palette("deep", 2)))
    curves = result.curves
    for i, (direction, row) in enumerate(zip(directions, result.table.itertuples(index=False))):
        ax = axes[0][i]
        part = curves[curves["direction"] == i + 1] if len(curves) else curves
        ax.set_title(
            f"target {direction.target}, bias {direction.bias}: {row.verdict}\n"
            f"(Vanilla, biased training set, n={row.n_biased})",
            fontsize=8,
        )
        if len(part):
            part = part.assign(samples=part["subset"].map({"aligned": order[0], "conflicting": order[1]}))
            _lineplot(sns, part, ax, "loss", "samples", palette=palette, hue_order=order)
            if part["epoch"].nunique() <= 3:
                ax.set_xticks(sorted(part["epoch"].unique()))
        else:
            ax.text(0.5, 0.5, "no training-loss curves", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (CE)")
    figure.suptitle(f"{result.spec.dataset}: training loss of bias-aligned vs bias-conflicting samples", fontsize=9)
    return _save(figure, out, "diagnosis_loss", formats)


def default_diagnosis_out(results: str) -> Path:
    store = ResultStore(results)
    return Path(store.root) / "diagnosis" if store.is_local else Path("diagnosis")


def write_diagnosis(
    results: str, spec: DiagnosisSpec, out: Path | None = None, figures: bool = True
) -> tuple[DiagnosisResult, str]:
    """Compute the diagnosis and write every file; returns the result and the console text."""
    from debiasbench.benchmark.report.figures import group_heatmap

    out = Path(out) if out else default_diagnosis_out(results)
    out.mkdir(parents=True, exist_ok=True)
    result = diagnose(results, spec)
    group_files: dict[tuple[int, str], list[Path]] = {}
    for (number, arm), (long, matrix) in result.groups.items():
        direction = spec.directions[number - 1]
        stem = group_stem(direction, arm)
        long.to_csv(out / f"{stem}.csv", index=False)
        matrix.to_csv(out / f"{stem}_matrix.csv")
        files = [out / f"{stem}.csv", out / f"{stem}_matrix.csv"]
        if figures:
            title = f"{spec.dataset}, Vanilla, {arm} training set\ntarget {direction.target}, bias {direction.bias}"
            files += group_heatmap(matrix, out, stem, title)
        group_files[(number, arm)] = files
    figure_paths = loss_figure(result, out) if figures else []
    result.table.to_csv(out / "diagnosis.csv", index=False)
    (out / "diagnosis.json").write_text(spec.to_json() + "\n", encoding="utf-8")
    text = markdown(result, figure_paths[0] if figure_paths else None, group_files)
    (out / "diagnosis.md").write_text(text, encoding="utf-8")
    console = [_heading(spec), compact_table(result), ""]
    for row in result.table.itertuples(index=False):
        console.append(
            f"{row.target} with bias {row.bias}: {row.verdict}: {row.reason}"
            + (f"; {row.settle}" if row.settle else "")
            + f". Loss: {row.loss_evidence}."
        )
    if result.missing:
        console.append(f"{len(result.missing)} trial(s) not completed (listed in diagnosis.md)")
    console += [
        "",
        f"Rule: {RULE}",
        "",
        f"written to {out}: diagnosis.md, diagnosis.csv, diagnosis.json"
        + (", diagnosis_loss.png/.pdf" if figure_paths else "")
        + (f", {len(group_files)} per-group matrices (groups_*.csv/.png)" if group_files else ""),
    ]
    return result, "\n".join(console)
