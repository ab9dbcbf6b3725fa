"""The per-group view of one trial or one table cell: the (target, bias) accuracy matrix, a heatmap
and the unbiased, aligned, conflicting and worst-group accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from debiasbench.benchmark.paper.axes import table_stem
from debiasbench.benchmark.report.build import default_out
from debiasbench.benchmark.report.comparison import read_class_names
from debiasbench.benchmark.report.latex import markdown_escape, mathtext_escape
from debiasbench.benchmark.report.loading import ReportError, load_store, scan
from debiasbench.benchmark.report.selection import Selection, select
from debiasbench.benchmark.report.selectors import DEFAULT_SELECTOR
from debiasbench.benchmark.report.tables import build_table
from debiasbench.benchmark.store import ResultStore


def _resolve_group_keys(spec: str, sel: Selection, data_root: str | None) -> tuple[list[str], str]:
    if "=" not in spec:
        keys = [k for k in sel.summaries["trial_key"] if k.startswith(spec)] if len(sel.summaries) else []
        if len(keys) != 1:
            problem = "matches no completed trial" if not keys else f"matches {len(keys)} trials"
            raise ReportError(
                f"--groups {spec!r} {problem} of protocol {sel.protocol!r}; pass a full trial key "
                "(see tableN.csv, column trial_keys) or table=N,dataset=...,row=...,column=..."
            )
        return keys, f"trial_{keys[0]}"
    fields = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
    if "table" not in fields:
        raise ReportError("a cell for --groups needs table=N, e.g. table=2,dataset=cmnist,row=99.0,column=lff")
    result = build_table(int(fields.pop("table")), sel, data_root)
    cells = result.cells
    for name, value in fields.items():
        if name not in cells.columns:
            raise ReportError(f"unknown cell field {name!r}; use any of: dataset, row, setting, metric, column, method")
        cells = cells[cells[name].astype(str) == value]
    keys = sorted({k for text in cells.get("trial_keys", []) for k in str(text).split(";") if k})
    if not keys:
        raise ReportError(
            f"--groups {spec!r} matches no table cell with trials; see {table_stem(result.number)}.csv "
            "for the cells (columns dataset, row, metric, column)"
        )
    name = "cell_" + "_".join(f"{v}" for v in [result.number, *fields.values()])
    return keys, re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def group_matrix(results: str, epochs: dict[str, int], roles: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-group test accuracy of trials (key -> the epoch and the role to read), pooled over
    them: a long frame (target, bias, accuracy_mean and accuracy_std in percent, n, count) and the
    matrix of mean accuracies (rows target, columns bias). Both empty when no group rows are stored."""
    keys = list(epochs)
    expression = (
        pc.field("trial_key").isin(keys) & (pc.field("split") == "test") & pc.field("subset").isin(["group", "class"])
    )
    rows = scan(
        ResultStore(results), ["trial_key", "epoch", "role", "subset", "target", "bias", "metric", "value"], expression
    )
    rows = rows[
        (rows["epoch"].to_numpy() == rows["trial_key"].map(epochs).to_numpy())
        & (rows["role"].to_numpy() == rows["trial_key"].map(roles).to_numpy())
    ]
    if rows.empty:
        return pd.DataFrame(columns=["target", "bias", "accuracy_mean", "accuracy_std", "n", "count"]), pd.DataFrame()
    rows = rows.assign(bias=rows["bias"].astype("Float64"))
    accuracy = rows[rows["metric"] == "accuracy"].groupby(["target", "bias"], dropna=False)["value"]
    long = pd.DataFrame(
        {"accuracy_mean": accuracy.mean() * 100, "accuracy_std": accuracy.std(ddof=1) * 100, "n": accuracy.count()}
    )
    counts = rows[rows["metric"] == "count"].groupby(["target", "bias"], dropna=False)["value"].mean()
    long["count"] = counts
    long = long.reset_index()
    long["bias"] = [
        int(b) if pd.notna(b) else "all" for b in long["bias"]
    ]  # "all": a class of a dataset without bias labels
    matrix = long.pivot(index="target", columns="bias", values="accuracy_mean")
    matrix.index.name, matrix.columns.name = "target", "bias"
    return long, matrix


def group_view(
    results: str,
    spec: str,
    out: Path | None = None,
    protocol: str | None = None,
    selector: str = DEFAULT_SELECTOR,
    role: str | None = None,
    data_root: str | None = None,
) -> str:
    """The (target, bias) accuracy matrix (percent, mean over the trials) at the selected epoch as
    CSV and heatmap, plus unbiased/aligned/conflicting/worst-group accuracy and the worst groups."""
    from debiasbench.benchmark.report.figures import group_heatmap

    out = Path(out) if out else default_out(results)
    data = load_store(results)
    sel = select(data, protocol, selector)
    keys, name = _resolve_group_keys(spec, sel, data_root)
    trials = sel.summaries.set_index("trial_key").loc[keys]
    roles = {k: role or trials.loc[k, "predictor_role"] for k in keys}
    epochs = trials["epoch"].to_dict()
    long, matrix = group_matrix(results, epochs, roles)
    if long.empty:
        raise ReportError(
            f"no per-group rows for role(s) {sorted(set(roles.values()))} in trial(s) {', '.join(keys)}"
            "; the roles stored are in tableN.csv's trials (e.g. main, debiased, biased)"
        )
    out.mkdir(parents=True, exist_ok=True)
    first = trials.iloc[0]
    # Own data: the table's class names instead of indices (untrusted text: escaped where rendered).
    class_names = read_class_names(first["dataset"], first["params"], data_root)
    if class_names:
        long.insert(1, "target_name", [class_names.get(int(t), f"class {int(t)}") for t in long["target"]])
        matrix.index = [class_names.get(int(t), f"class {int(t)}") for t in matrix.index]
        matrix.index.name = "target"
    long.to_csv(out / f"groups_{name}.csv", index=False)
    matrix.to_csv(out / f"groups_{name}_matrix.csv")
    title = f"{first['dataset']}/{first['method']} role {'/'.join(sorted(set(roles.values())))}, n={len(keys)}"
    shown = matrix.rename(index=lambda t: mathtext_escape(str(t)))
    figure_paths = group_heatmap(shown, out, f"groups_{name}", title)

    metrics = data.metrics[data.metrics["trial_key"].isin(keys) & (data.metrics["split"] == "test")]
    metrics = metrics[
        (metrics["epoch"].to_numpy() == metrics["trial_key"].map(epochs).to_numpy())
        & (metrics["role"].to_numpy() == metrics["trial_key"].map(roles).to_numpy())
    ]
    summary = []
    for label, subset, metric in (
        ("unbiased", "all", "accuracy"),
        ("bias-aligned", "aligned", "accuracy"),
        ("bias-conflicting", "conflicting", "accuracy"),
        ("worst-group", "all", "worst_group_accuracy"),
        ("sample accuracy", "all", "sample_accuracy"),
    ):
        values = metrics[(metrics["subset"] == subset) & (metrics["metric"] == metric)]["value"] * 100
        if len(values):
            std = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
            summary.append(f"| {label} | {values.mean():.2f}{std} |")
    worst = long.sort_values("accuracy_mean").head(5)
    lines = [
        f"### Groups of {spec}",
        "",
        f"{title}; selector {sel.selector.name}; epochs "
        + ", ".join(str(int(epochs[k])) for k in keys)
        + "; trials "
        + ", ".join(keys)
        + ".",
        "",
        "| accuracy (%) | value |",
        "|---|---:|",
        *summary,
        "",
        "Worst groups (target, bias: accuracy %, test samples): "
        + "; ".join(
            f"({markdown_escape(class_names.get(int(t), str(int(t))))}, {b}): {a:.1f} on {c:.0f}"
            for t, b, a, c in worst[["target", "bias", "accuracy_mean", "count"]].itertuples(index=False)
        )
        + ".",
        "",
        f"Files: {out / f'groups_{name}.csv'}, {out / f'groups_{name}_matrix.csv'}, "
        + ", ".join(str(p) for p in figure_paths),
    ]
    markdown = "\n".join(lines)
    (out / f"groups_{name}.md").write_text(markdown + "\n", encoding="utf-8")
    return markdown
