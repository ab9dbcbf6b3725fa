"""The bias diagnosis (docs/diagnose.md): the paper's Section 2 test for one attribute pair, in
both directions, as pure functions of the result store (pandas, no torch).

For each direction (target, bias) the experiments layer trains Vanilla on the biased training set
and on a bias-balanced one and hands over their trial keys (`DiagnosisSpec`). This module reads
those trials back and decides:

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

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from benchmark.report.loading import load_store, scan
from benchmark.report.selection import select
from benchmark.store import ResultStore

THRESHOLD = 5.0  # points: a smaller drop is benign, a larger one malignant once it exceeds the noise
SINGLE_SEED_BENIGN = 2.0  # points: with one seed, only a drop this small is called benign
STRONG_RATIO = 10.0  # conflicting / aligned early loss at or above this: the bias is learned first anyway
# Runs too short for a halving epoch inside the first quarter (fewer than 5 epochs) go by the ratio alone:
SHORT_BIAS_RATIO = 2.0  # at or above: the bias is learned first
SHORT_TARGET_RATIO = 1.5  # below: the target is learned first
ARMS = ("biased", "balanced")
LOSS_RULE = (
    f"Learned first, from the biased trials' training loss (Q = the first quarter of the epochs): the bias when the "
    f"aligned loss halves within Q and the conflicting loss does not, or the conflicting/aligned mean loss over Q is "
    f">= {STRONG_RATIO:g}; the target when both halve within Q with a smaller ratio; unclear otherwise. Runs shorter "
    f"than 5 epochs go by the ratio alone (bias >= {SHORT_BIAS_RATIO:g}, target < {SHORT_TARGET_RATIO:g}). The "
    "verdict rests on the accuracy drop; the loss curves are the supporting evidence."
)
RULE = (
    f"drop = balanced - biased mean unbiased test accuracy (points); noise = 2*sqrt(se_b^2 + se_u^2), "
    f"se = std/sqrt(n) over seeds; malignant if drop > max(noise, {THRESHOLD:g}); benign if drop <= "
    f"{THRESHOLD:g} and (n >= 2 or drop <= {SINGLE_SEED_BENIGN:g}); inconclusive otherwise. " + LOSS_RULE
)


@dataclass(frozen=True)
class DirectionSpec:
    """One direction: its attribute names and the trial keys (one per seed) of each arm."""

    target: str
    bias: str
    biased: tuple[str, ...]
    balanced: tuple[str, ...]
    target_values: tuple[str, ...] = ()
    bias_values: tuple[str, ...] = ()
    balanced_how: str = ""


@dataclass(frozen=True)
class DiagnosisSpec:
    dataset: str
    directions: tuple[DirectionSpec, ...]
    seeds: tuple[int, ...] = ()
    setting: str = ""  # what the trials share, for the heading ("ratio=99.0, difficulty=4; 100 epochs")
    protocol: str = "paper"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DiagnosisSpec:
        data = json.loads(text)
        directions = tuple(
            DirectionSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
            for d in data.pop("directions")
        )
        return cls(directions=directions, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# -- the verdict ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: str  # malignant, benign or inconclusive
    drop: float  # points
    noise: float  # points; NaN when an arm has a single seed
    n: int  # seeds of the smaller arm
    reason: str
    settle: str = ""  # what would settle an inconclusive verdict (or confirm a single-seed one)


def _spread(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, std, n) with the sample std (NaN for one value)."""
    series = pd.Series(list(values), dtype=float).dropna()
    n = len(series)
    return (float(series.mean()) if n else math.nan, float(series.std(ddof=1)) if n > 1 else math.nan, n)


def _more_seeds(seeds: Sequence[int], total: int) -> str:
    have = sorted(set(int(s) for s in seeds))
    extra, candidate = [], (max(have) + 1 if have else 0)
    while len(have) + len(extra) < total:
        extra.append(candidate)
        candidate += 1
    return ",".join(str(s) for s in have + extra)


def verdict_of(biased: Sequence[float], balanced: Sequence[float], seeds: Sequence[int] = ()) -> Verdict:
    """The verdict from the unbiased test accuracies (percent) of the biased and the balanced arm,
    one value per seed; `seeds` are the seeds run (for the hint naming more)."""
    mean_b, std_b, n_b = _spread(biased)
    mean_u, std_u, n_u = _spread(balanced)
    if not n_b or not n_u:
        missing = " and ".join(a for a, n in zip(ARMS, (n_b, n_u)) if not n)
        return Verdict(
            "inconclusive",
            math.nan,
            math.nan,
            min(n_b, n_u),
            f"no completed trial on the {missing} training set",
            "rerun the command to run the missing trials",
        )
    drop = mean_u - mean_b
    n = min(n_b, n_u)
    noise = 2 * math.sqrt(std_b**2 / n_b + std_u**2 / n_u) if n >= 2 else math.nan
    level = max(0.0 if math.isnan(noise) else noise, THRESHOLD)
    noise_text = f"noise {noise:.2f}" if n >= 2 else "noise unknown with one seed"
    if drop > level:
        settle = "" if n >= 2 else f"one seed: confirm with --seeds {_more_seeds(seeds, 3)}"
        return Verdict(
            "malignant",
            drop,
            noise,
            n,
            f"the biased training set costs {drop:.2f} points of unbiased accuracy, more than "
            f"max({noise_text}, {THRESHOLD:g})",
            settle,
        )
    if drop <= THRESHOLD and (n >= 2 or drop <= SINGLE_SEED_BENIGN):
        limit = THRESHOLD if n >= 2 else SINGLE_SEED_BENIGN
        return Verdict(
            "benign",
            drop,
            noise,
            n,
            f"a drop of {drop:.2f} points is at most {limit:g}" + ("" if n >= 2 else " (one seed)"),
        )
    if drop > THRESHOLD:  # above the threshold but within the seed noise
        needed = max(n + 1, math.floor(n * (noise / drop) ** 2) + 1)
        return Verdict(
            "inconclusive",
            drop,
            noise,
            n,
            f"a drop of {drop:.2f} points is within the seed noise ({noise:.2f})",
            f"about {needed} seeds would bring the noise below the drop if the spread stays as it is: "
            f"--seeds {_more_seeds(seeds, needed)}",
        )
    return Verdict(
        "inconclusive",
        drop,
        noise,
        n,
        f"a drop of {drop:.2f} points with one seed: between {SINGLE_SEED_BENIGN:g} and {THRESHOLD:g}, "
        "too close to call without a spread",
        f"a second seed settles it (benign if the drop stays at most {THRESHOLD:g} points and above the "
        f"noise otherwise): --seeds {_more_seeds(seeds, max(2, n + 1))}",
    )


# -- the loss curves --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossEvidence:
    epochs: int
    quarter: int  # epochs 1..quarter are "the first quarter"
    ratio: float  # conflicting / aligned mean training loss over the first quarter
    aligned_half: int | None  # first epoch whose loss is below half its epoch-1 value (None: never)
    conflicting_half: int | None
    learned_first: str  # "bias", "target", "unclear" or "n/a" (no curves)


def loss_evidence(curves: pd.DataFrame) -> LossEvidence:
    """From per-epoch training loss rows (epoch, subset aligned/conflicting, loss), pooled over
    seeds by the mean."""
    if curves.empty:
        return LossEvidence(0, 0, math.nan, None, None, "n/a")
    mean = curves.groupby(["subset", "epoch"])["loss"].mean()
    epochs = int(curves["epoch"].max())
    quarter = max(1, math.ceil(epochs / 4))

    def series(subset: str) -> pd.Series:
        return mean[subset].sort_index() if subset in mean.index.get_level_values(0) else pd.Series(dtype=float)

    def half(values: pd.Series) -> int | None:
        if values.empty or 1 not in values.index or not values[1] > 0:
            return None
        below = values[(values.index > 1) & (values < values[1] / 2)]
        return int(below.index[0]) if len(below) else None

    aligned, conflicting = series("aligned"), series("conflicting")
    early_a = aligned[aligned.index <= quarter].mean() if len(aligned) else math.nan
    early_c = conflicting[conflicting.index <= quarter].mean() if len(conflicting) else math.nan
    ratio = float(early_c / early_a) if early_a and not math.isnan(early_a) and not math.isnan(early_c) else math.nan
    aligned_half, conflicting_half = half(aligned), half(conflicting)
    if math.isnan(ratio):
        first = "n/a"
    elif quarter < 2:  # no epoch after the first inside the quarter: the ratio alone
        first = "bias" if ratio >= SHORT_BIAS_RATIO else "target" if ratio < SHORT_TARGET_RATIO else "unclear"
    elif aligned_half is None or aligned_half > quarter:
        first = "unclear"  # nothing is clearly fitted early
    elif conflicting_half is None or conflicting_half > quarter or ratio >= STRONG_RATIO:
        first = "bias"
    else:
        first = "target"
    return LossEvidence(epochs, quarter, ratio, aligned_half, conflicting_half, first)


def _loss_text(evidence: LossEvidence, target: str, bias: str) -> str:
    if evidence.learned_first == "n/a":
        return "no training-loss curves of aligned and conflicting samples in the biased trials"
    if evidence.epochs < 2:
        halves = "one epoch, so no halving epochs"
    else:
        halves = ", ".join(
            f"{name} loss halves at epoch {epoch if epoch is not None else f'> {evidence.epochs}'}"
            for name, epoch in (("aligned", evidence.aligned_half), ("conflicting", evidence.conflicting_half))
        )
    verdict = {
        "bias": f"the bias ({bias}) is learned first: aligned samples are fitted much faster",
        "target": f"the target ({target}) is learned first: conflicting samples are fitted early too",
        "unclear": "neither attribute is clearly learned first",
    }[evidence.learned_first]
    span = "epoch 1" if evidence.quarter == 1 else f"epochs 1-{evidence.quarter}"
    return f"{verdict} (conflicting/aligned loss {evidence.ratio:.2f}x over {span}; {halves})"


# -- reading the store ------------------------------------------------------------------------------


@dataclass
class DiagnosisResult:
    spec: DiagnosisSpec
    table: pd.DataFrame  # one row per direction: the numbers, the verdict, the loss evidence
    curves: pd.DataFrame  # direction, trial_key, epoch, subset, loss (the biased trials' training loss)
    groups: dict[tuple[int, str], tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # lines naming trials not (yet) completed


def direction_label(direction: DirectionSpec) -> str:
    return f"{direction.target} with bias {direction.bias}"


def _named(matrix: pd.DataFrame, direction: DirectionSpec) -> pd.DataFrame:
    """The matrix with value names (rows target value, columns bias value) where the spec has them."""

    def name(values: tuple[str, ...], index: Any) -> str:
        return values[int(index)] if isinstance(index, (int, float)) and 0 <= int(index) < len(values) else str(index)

    named = matrix.copy()
    named.index = [name(direction.target_values, i) for i in matrix.index]
    named.columns = [name(direction.bias_values, c) for c in matrix.columns]
    named.index.name, named.columns.name = direction.target, direction.bias
    return named


def diagnose(results: str, spec: DiagnosisSpec) -> DiagnosisResult:
    """Read the spec's trials from the store and compute every direction's numbers and verdict."""
    from benchmark.report.groups import group_matrix

    data = load_store(results)
    sel = select(data, spec.protocol, "last")
    summaries = sel.summaries.set_index("trial_key") if len(sel.summaries) else pd.DataFrame()
    statuses = dict(zip(data.trials["trial_key"], data.trials["status"])) if len(data.trials) else {}
    rows, curve_frames, groups, missing = [], [], {}, []
    for number, direction in enumerate(spec.directions, start=1):
        accuracy, present = {}, {}
        for arm in ARMS:
            keys = [k for k in getattr(direction, arm)]
            present[arm] = [k for k in keys if k in summaries.index]
            accuracy[arm] = [100.0 * float(summaries.loc[k, "unbiased"]) for k in present[arm]]
            for key in keys:
                if key not in summaries.index:
                    missing.append(
                        f"{direction_label(direction)}, {arm}: trial {key} {statuses.get(key, 'not in the store')}"
                    )
            if present[arm]:
                epochs = {k: int(summaries.loc[k, "epoch"]) for k in present[arm]}
                roles = {k: str(summaries.loc[k, "predictor_role"]) for k in present[arm]}
                long, matrix = group_matrix(results, epochs, roles)
                if not long.empty:
                    groups[(number, arm)] = (long, _named(matrix, direction))
        seeds = [int(summaries.loc[k, "trial_seed"]) for k in present["biased"] + present["balanced"]]
        verdict = verdict_of(accuracy["biased"], accuracy["balanced"], sorted(set(seeds)) or spec.seeds)
        curves = _train_loss(results, summaries, present["biased"])
        curve_frames.append(curves.assign(direction=number))
        evidence = loss_evidence(curves)
        mean_b, std_b, n_b = _spread(accuracy["biased"])
        mean_u, std_u, n_u = _spread(accuracy["balanced"])
        rows.append(
            {
                "dataset": spec.dataset,
                "direction": number,
                "target": direction.target,
                "bias": direction.bias,
                "setting": spec.setting,
                "biased_mean": mean_b,
                "biased_std": std_b,
                "n_biased": n_b,
                "balanced_mean": mean_u,
                "balanced_std": std_u,
                "n_balanced": n_u,
                "drop": verdict.drop,
                "noise": verdict.noise,
                "threshold": THRESHOLD,
                "verdict": verdict.verdict,
                "reason": verdict.reason,
                "settle": verdict.settle,
                "learned_first": evidence.learned_first,
                "learned_first_attribute": {"bias": direction.bias, "target": direction.target}.get(
                    evidence.learned_first, ""
                ),
                "early_loss_ratio": evidence.ratio,
                "loss_epochs": evidence.epochs,
                "loss_quarter": evidence.quarter,
                "aligned_half_epoch": evidence.aligned_half,
                "conflicting_half_epoch": evidence.conflicting_half,
                "loss_evidence": _loss_text(evidence, direction.target, direction.bias),
                "balanced_how": direction.balanced_how,
                "biased_keys": ";".join(present["biased"]),
                "balanced_keys": ";".join(present["balanced"]),
            }
        )
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    return DiagnosisResult(spec, pd.DataFrame(rows), curves, groups, missing)


def _train_loss(results: str, summaries: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = ["trial_key", "epoch", "subset", "loss"]
    if not keys:
        return pd.DataFrame(columns=columns)
    expression = (
        pc.field("trial_key").isin(keys)
        & (pc.field("split") == "train")
        & (pc.field("metric") == "loss")
        & pc.field("subset").isin(["aligned", "conflicting"])
    )
    rows = scan(ResultStore(results), ["trial_key", "epoch", "role", "subset", "value"], expression)
    roles = summaries["predictor_role"]
    rows = rows[rows["role"].to_numpy() == rows["trial_key"].map(roles).to_numpy()]
    return rows.rename(columns={"value": "loss"})[columns].dropna(subset=["loss"]).reset_index(drop=True)


# -- output -----------------------------------------------------------------------------------------


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
    from benchmark.report.figures import _lineplot, _new_figure, _save, _sns

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
    from benchmark.report.figures import group_heatmap

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
