"""Tables from the result store: a pure function of stored results (pandas only, no torch).

`python -m benchmark.report RESULTS_DIR [--out DIR]` writes a comparison of unbiased and
bias-conflicting accuracy per (dataset, ratio, difficulty, method) as CSV, Markdown and LaTeX.
Numbers are from the final epoch of the predictor role, as in the paper; mean ± std over seeds
with n; missing cells are shown as "—" and listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from benchmark.paper_values import paper_value
from benchmark.store import ResultStore

METRICS = {"unbiased": ("all", "accuracy"), "conflicting": ("conflicting", "accuracy"),
           "aligned": ("aligned", "accuracy"), "worst_group": ("all", "worst_group_accuracy")}
METHOD_ORDER = ["vanilla", "lff_ce", "lff", "lff_rubi", "hex", "repair", "group_dro", "rebias"]


def final_metrics(frame: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per completed trial: configuration columns plus the final-epoch predictor metrics
    (unbiased, conflicting, aligned, worst_group) as fractions."""
    done = frame[(frame["status"] == "completed") & (frame["split"] == split)
                 & (frame["role"] == frame["predictor_role"])]
    if done.empty:
        return pd.DataFrame()
    last = done["epoch"] == done.groupby("trial_key")["epoch"].transform("max")
    done = done[last]
    rows = []
    for key, group in done.groupby("trial_key", sort=False):
        first = group.iloc[0]
        row = {"trial_key": key, "dataset": first["dataset"], "method": first["method"],
               "trial_seed": first["trial_seed"], "epochs": first["epochs"],
               "selection_protocol": first["selection_protocol"]}
        row.update({f"param.{k}": v for k, v in json.loads(first["dataset_params"]).items()})
        row.update({f"hparam.{k}": v for k, v in json.loads(first["method_hparams"]).items()})
        for name, (subset, metric) in METRICS.items():
            hit = group[(group["subset"] == subset) & (group["metric"] == metric)]
            row[name] = float(hit["value"].iloc[0]) if len(hit) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def comparison(final: pd.DataFrame) -> pd.DataFrame:
    """Tidy table: mean/std/n over seeds per (dataset, ratio, difficulty, method, metric), in
    percent, with the paper's value and the difference where the paper reports the cell."""
    if final.empty:
        return pd.DataFrame()
    keys = ["dataset", "param.ratio", "param.difficulty", "method"]
    extra = [c for c in final.columns if c.startswith("param.") and c not in keys
             and final[c].nunique(dropna=False) > 1] + [c for c in ("epochs",) if final[c].nunique() > 1]
    out = []
    for group_key, group in final.groupby(keys + extra, dropna=False, sort=False):
        labels = dict(zip(keys + extra, group_key if isinstance(group_key, tuple) else (group_key,)))
        for metric in ("unbiased", "conflicting"):
            values = group[metric].dropna() * 100
            paper = paper_value(metric, labels["dataset"], labels["param.ratio"], labels["param.difficulty"], labels["method"])
            mean = values.mean() if len(values) else float("nan")
            out.append({**{k.replace("param.", ""): v for k, v in labels.items()}, "metric": metric,
                        "mean": mean, "std": values.std(ddof=1) if len(values) > 1 else 0.0, "n": len(values),
                        "paper_mean": paper[0] if paper else float("nan"),
                        "paper_std": paper[1] if paper else float("nan"),
                        "difference": mean - paper[0] if paper else float("nan")})
    return pd.DataFrame(out)


def _cell(row: pd.Series) -> str:
    if row is None or pd.isna(row["mean"]):
        return "—"
    text = f"{row['mean']:.2f} ± {row['std']:.2f} (n={row['n']})"
    if not pd.isna(row["paper_mean"]):
        text += f" [paper {row['paper_mean']:.2f}]"
    return text


def wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """Rows (dataset, ratio, difficulty, ...), columns metric/method, cells 'mean ± std (n) [paper]'."""
    index = [c for c in tidy.columns if c not in ("method", "metric", "mean", "std", "n", "paper_mean", "paper_std", "difference")]
    methods = sorted(tidy["method"].unique(), key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))
    rows = []
    for key, group in tidy.groupby(index, dropna=False, sort=True):
        row = dict(zip(index, key if isinstance(key, tuple) else (key,)))
        for metric in ("unbiased", "conflicting"):
            for method in methods:
                hit = group[(group["metric"] == metric) & (group["method"] == method)]
                row[f"{metric}: {method}"] = _cell(hit.iloc[0] if len(hit) else None)
        rows.append(row)
    return pd.DataFrame(rows)


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("±", r"$\pm$"), ("—", "--")):
        text = text.replace(char, repl)
    return text


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *lines])


def to_latex(table: pd.DataFrame, caption: str) -> str:
    columns = "l" * len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}",
             rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
             " & ".join(_latex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def write_report(results: str, out: Path | None = None) -> str:
    """Write comparison.{csv,md,tex} under `out` (default RESULTS/tables); return the Markdown."""
    store = ResultStore(results)
    frame = store.read()
    out = Path(out) if out else Path(store.root) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    trials = frame.drop_duplicates("trial_key") if not frame.empty else frame
    failed = trials[trials["status"] == "failed"] if not trials.empty else trials
    tidy = comparison(final_metrics(frame))
    if tidy.empty:
        markdown = "No completed trials in the store."
    else:
        tidy.to_csv(out / "comparison.csv", index=False)
        table = wide(tidy)
        caption = ("Final-epoch accuracy (%) of the predictor on the unbiased test set, mean ± std over seeds "
                   "(n seeds); selection protocol: paper (last epoch).")
        markdown = caption + "\n\n" + to_markdown(table)
        (out / "comparison.md").write_text(markdown + "\n")
        (out / "comparison.tex").write_text(to_latex(table, caption) + "\n")
    if len(failed):
        markdown += f"\n\nFailed trials ({len(failed)}): " + ", ".join(
            f"{r.dataset}/{r.method} ({r.trial_key})" for r in failed.itertuples())
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tables from a DebiasBench result store.")
    parser.add_argument("results", help="result store directory or URI")
    parser.add_argument("--out", type=Path, help="output directory (default: RESULTS/tables)")
    args = parser.parse_args(argv)
    print(write_report(args.results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
