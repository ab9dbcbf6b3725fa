"""Figures 2 and 4 of the paper and the per-group heatmap, from a result store (seaborn, no torch).

Figure 2: mean training loss of bias-aligned vs bias-conflicting samples over epochs, for the malignant
(target Digit/Object) and the benign (target Color/Corruption) direction, Vanilla trials of Table 1.
Figure 4: test accuracy on bias-aligned and bias-conflicting samples over epochs for Vanilla and for
LfF's biased and debiased models. Lines are the mean over seeds, bands one standard deviation.
Matplotlib's object API is used (no pyplot), so no GUI backend or global state is touched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from debiasbench.benchmark.paper.axes import CONTROLLED, DATASET_LABELS, MALIGNANT
from debiasbench.benchmark.report.labels import _difficulty, _ratio, _target
from debiasbench.benchmark.report.loading import scan
from debiasbench.benchmark.report.output import atomic_path, ensure_dir
from debiasbench.benchmark.report.selection import Selection
from debiasbench.benchmark.store import ResultStore

FORMATS = ("png", "pdf")


class FigureDataError(ValueError):
    """The store has no trials for a figure (the message names what to run)."""


@dataclass(frozen=True)
class FigureOptions:
    ratio: float | None = None  # None: 99% where stored, else the dataset's highest stored ratio
    difficulty: int = 4
    # Other dataset parameters a curve must have, e.g. {"input_scaling": "unit"}. Trials that differ
    # in anything but the seed are never pooled: without this, each dataset's most common setting
    # (dataset parameters, epochs, hparams_seed) is drawn.
    params: tuple[tuple[str, object], ...] = ()
    datasets: tuple[str, ...] = CONTROLLED
    formats: tuple[str, ...] = FORMATS


def _sns():
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return sns


def _new_figure(nrows: int, ncols: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.6 * ncols, 2.8 * nrows), constrained_layout=True)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def _save(figure, out: Path, name: str, formats: Sequence[str]) -> list[Path]:
    ensure_dir(out)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=150, format=fmt)
        paths.append(path)
    return paths


_PANEL_PARAMS = ("ratio", "difficulty", "target", "unbiased_train")  # what the figures' panels vary


def _pick_ratio(trials: pd.DataFrame, requested: float | None) -> str | None:
    ratios = sorted({_ratio(p) for p in trials["params"]} - {""}, key=float)
    if requested is not None:
        wanted = f"{float(requested):.1f}"
        return wanted if wanted in ratios else None
    if not ratios:
        return None
    return "99.0" if "99.0" in ratios else ratios[-1]


def _curves(location: str, keys: list[str], split: str, metric: str) -> pd.DataFrame:
    store = ResultStore(location)
    expression = (
        pc.field("trial_key").isin(keys)
        & (pc.field("split") == split)
        & (pc.field("metric") == metric)
        & pc.field("subset").isin(["aligned", "conflicting"])
    )
    return scan(store, ["trial_key", "epoch", "role", "subset", "value"], expression)


def _controlled_trials(sel: Selection, methods: Sequence[str], options: FigureOptions) -> pd.DataFrame:
    s = sel.summaries
    if s.empty:
        return s
    keep = s["dataset"].isin(options.datasets) & s["dataset"].isin(list(MALIGNANT)) & s["method"].isin(list(methods))
    s = s[keep]
    keep = [
        (_difficulty(p) == str(options.difficulty))
        and not p.get("unbiased_train", False)
        and all(p.get(k) == v for k, v in options.params)
        for p in s["params"]
    ]
    s = s[keep]
    if s.empty:
        return s
    # One setting per dataset: the most common one among the remaining trials.
    setting = [
        json.dumps([{k: v for k, v in p.items() if k not in _PANEL_PARAMS}, e, h], sort_keys=True, default=str)
        for p, e, h in zip(s["params"], s["epochs"], s["hparams_seed"])
    ]
    s = s.assign(_setting=setting)
    modal = s.groupby("dataset")["_setting"].agg(lambda v: v.value_counts().index[0])
    return s[s["_setting"].to_numpy() == s["dataset"].map(modal).to_numpy()].drop(columns="_setting")


def figure2_data(sel: Selection, options: FigureOptions = FigureOptions()) -> pd.DataFrame:
    """Long frame: dataset, direction, ratio, trial_key, trial_seed, epoch, samples, loss."""
    trials = _controlled_trials(sel, ["vanilla"], options)
    frames = []
    for dataset, part in trials.groupby("dataset", sort=False) if len(trials) else []:
        ratio = _pick_ratio(part, options.ratio)
        part = part[[_ratio(p) == ratio for p in part["params"]]]
        direction = {MALIGNANT[dataset][0]: "malignant", MALIGNANT[dataset][1]: "benign"}
        part = part.assign(direction=[direction.get(_target(dataset, p), "") for p in part["params"]])
        part = part[part["direction"] != ""]
        if len(part):
            frames.append(part.assign(ratio=ratio))
    if not frames:
        raise FigureDataError(
            "Figure 2 needs completed Vanilla trials on Colored MNIST or Corrupted CIFAR-10 at difficulty "
            f"{options.difficulty} (ratio {options.ratio or 'any'}); run the grid with --tables 1"
        )
    trials = pd.concat(frames)
    curves = _curves(sel.location, list(trials["trial_key"]), "train", "loss")
    curves = curves[
        curves["role"].to_numpy() == curves["trial_key"].map(trials.set_index("trial_key")["predictor_role"]).to_numpy()
    ]
    data = curves.merge(trials[["trial_key", "dataset", "direction", "ratio", "trial_seed"]], on="trial_key")
    data["samples"] = data["subset"].map({"aligned": "bias-aligned", "conflicting": "bias-conflicting"})
    return data.rename(columns={"value": "loss"})[
        ["dataset", "direction", "ratio", "trial_key", "trial_seed", "epoch", "samples", "loss"]
    ]


def figure4_data(sel: Selection, options: FigureOptions = FigureOptions()) -> pd.DataFrame:
    """Long frame: dataset, ratio, trial_key, trial_seed, model, epoch, samples, accuracy (percent)."""
    trials = _controlled_trials(sel, ["vanilla", "lff"], options)
    if len(trials):
        trials = trials[[_target(d, p) == MALIGNANT[d][0] for d, p in zip(trials["dataset"], trials["params"])]]
    frames = []
    for _dataset, part in trials.groupby("dataset", sort=False) if len(trials) else []:
        ratio = _pick_ratio(part, options.ratio)
        part = part[[_ratio(p) == ratio for p in part["params"]]]
        if len(part):
            frames.append(part.assign(ratio=ratio))
    if not frames:
        raise FigureDataError(
            "Figure 4 needs completed Vanilla or LfF trials on Colored MNIST or Corrupted CIFAR-10 at difficulty "
            f"{options.difficulty} (ratio {options.ratio or 'any'}); run e.g. --methods vanilla,lff --tables 2"
        )
    trials = pd.concat(frames)
    curves = _curves(sel.location, list(trials["trial_key"]), "test", "accuracy")
    data = curves.merge(trials[["trial_key", "dataset", "method", "ratio", "trial_seed"]], on="trial_key")
    names = {("vanilla", "main"): "Vanilla", ("lff", "biased"): "LfF biased", ("lff", "debiased"): "LfF debiased"}
    data["model"] = [names.get((m, r), "") for m, r in zip(data["method"], data["role"])]
    data = data[data["model"] != ""]
    data["samples"] = data["subset"].map({"aligned": "bias-aligned", "conflicting": "bias-conflicting"})
    data["accuracy"] = 100.0 * data["value"]
    return data[["dataset", "ratio", "trial_key", "trial_seed", "model", "epoch", "samples", "accuracy"]]


def _direction_title(dataset: str, direction: str) -> str:
    target, bias = MALIGNANT[dataset] if direction == "malignant" else MALIGNANT[dataset][::-1]
    return f"{direction.title()} ({target.title()}, {bias.title()})"


def _lineplot(sns, data: pd.DataFrame, ax, y: str, hue: str, palette=None, hue_order=None, legend: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    few = data["epoch"].nunique() <= 3  # a line needs points to be seen
    sns.lineplot(
        data=data,
        x="epoch",
        y=y,
        hue=hue,
        hue_order=hue_order,
        estimator="mean",
        errorbar="sd",
        marker="o" if few else None,
        palette=palette,
        ax=ax,
        legend=legend,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend and ax.get_legend() is not None:
        ax.get_legend().set_title(None)


def figure2(sel: Selection, out: Path, options: FigureOptions = FigureOptions()) -> list[Path]:
    data = figure2_data(sel, options)
    sns = _sns()
    datasets = [d for d in options.datasets if d in set(data["dataset"])]
    figure, axes = _new_figure(len(datasets), 2)
    for i, dataset in enumerate(datasets):
        for j, direction in enumerate(("malignant", "benign")):
            ax = axes[i][j]
            part = data[(data["dataset"] == dataset) & (data["direction"] == direction)]
            seeds = part["trial_seed"].nunique()
            ratio = part["ratio"].iloc[0] if len(part) else data[data["dataset"] == dataset]["ratio"].iloc[0]
            ax.set_title(
                f"{DATASET_LABELS.get(dataset, dataset)}, {ratio}%\n{_direction_title(dataset, direction)}"
                f"{'' if len(part) else ': no trials'} (n={seeds})",
                fontsize=8,
            )
            if len(part):
                _lineplot(
                    sns,
                    part,
                    ax,
                    "loss",
                    "samples",
                    hue_order=["bias-aligned", "bias-conflicting"],
                    palette=dict(zip(["bias-aligned", "bias-conflicting"], sns.color_palette("deep", 2))),
                )
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no trials in the store\n(run the grid with --tables 1)",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=8,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss (CE)")
    figure.suptitle("Figure 2: training loss of bias-aligned vs bias-conflicting samples (Vanilla)", fontsize=9)
    return _save(figure, out, "figure2", options.formats)


def figure4(sel: Selection, out: Path, options: FigureOptions = FigureOptions()) -> list[Path]:
    data = figure4_data(sel, options)
    sns = _sns()
    datasets = [d for d in options.datasets if d in set(data["dataset"])]
    figure, axes = _new_figure(len(datasets), 2)
    order = ["Vanilla", "LfF biased", "LfF debiased"]
    palette = dict(zip(order, sns.color_palette("deep", 3)))
    for i, dataset in enumerate(datasets):
        for j, samples in enumerate(("bias-aligned", "bias-conflicting")):
            ax = axes[i][j]
            part = data[(data["dataset"] == dataset) & (data["samples"] == samples)]
            ratio = data[data["dataset"] == dataset]["ratio"].iloc[0]
            ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}, {ratio}%: {samples} test samples", fontsize=8)
            if len(part):
                present = [m for m in order if m in set(part["model"])]
                _lineplot(sns, part, ax, "accuracy", "model", palette=palette, hue_order=present)
            ax.set_ylim(-2, 102)
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy (%)")
    figure.suptitle("Figure 4: accuracy over training, Vanilla and LfF's biased and debiased models", fontsize=9)
    return _save(figure, out, "figure4", options.formats)


def group_heatmap(
    matrix: pd.DataFrame, out: Path, name: str, title: str, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Heatmap of a (target x bias) accuracy matrix in percent (NaN cells left blank)."""
    sns = _sns()
    rows, cols = matrix.shape
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(3.5, 0.55 * cols + 2), max(2.5, 0.45 * rows + 1.5)), constrained_layout=True)
    ax = figure.subplots()
    annotate = rows * cols <= 400
    sns.heatmap(
        matrix.astype(float),
        annot=annotate,
        fmt=".0f",
        vmin=0,
        vmax=100,
        cmap="viridis",
        ax=ax,
        cbar_kws={"label": "accuracy (%)"},
        annot_kws={"fontsize": 6},
    )
    ax.set_xlabel(str(matrix.columns.name or "bias"))
    ax.set_ylabel(str(matrix.index.name or "target"))
    if max((len(str(c)) for c in matrix.columns), default=0) > 4:  # named values (the diagnosis) need room
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_title(title, fontsize=8)
    return _save(figure, out, name, formats)
