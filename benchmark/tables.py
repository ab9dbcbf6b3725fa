"""Tables 1-10 of the paper (SPEC 4) as pure functions of a result store. Torch-free.

Flow: `load_store` reads one row per trial and the evaluation rows (no per-group rows, so a paper-sized
store stays small in memory); `select` applies the selection protocol and an epoch selector and
summarises every completed trial at its selected epoch; each `table_N` turns those summaries into a
`TableResult`: a tidy frame with one row per cell (mean, std, n over seeds, the paper's value and the
difference) plus the layout that `benchmark.report` renders as CSV, LaTeX and Markdown.

Trials that differ in more than the seed are never averaged together: configuration fields that vary
within a dataset (epochs, input scaling, ...) become a "setting" label on the row, and hyper-parameters
that vary within a method become a variant label on its column. REPAIR's cell is the best of its
variants (T/R/C/S), chosen per cell on the test set as the paper did (on the validation score under a
validation selector); every variant's own numbers stay in the tidy frame (kind "repair_variant").
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from benchmark.paper_values import BAR_CLASSES, BASELINES, DIFFICULTIES, PAPER, RATIOS, paper_cell
from benchmark.selectors import Selector, get_selector, select_epochs
from benchmark.store import METRIC_FIELDS, SCHEMA, TRIAL_FIELDS, ResultStore

TABLES = tuple(range(1, 11))
CONTROLLED = ("cmnist", "ccifar1", "ccifar2")
# (target, bias) of the malignant direction; the benign direction is the reverse (Table 1, Figure 2).
MALIGNANT = {"cmnist": ("digit", "color"), "ccifar1": ("object", "corruption"), "ccifar2": ("object", "corruption")}
PAPER_METHODS = ("vanilla", "lff_ce", "lff", "lff_rubi", "hex", "repair", "group_dro", "rebias")
METHOD_LABELS = {"vanilla": "Vanilla", "lff": "LfF", "lff_ce": "LfF-CE", "lff_rubi": "LfF-RUBi", "hex": "HEX",
                 "repair": "REPAIR", "group_dro": "Group DRO", "rebias": "ReBias"}
DEFAULT_SUPERVISION = {"vanilla": "none", "lff": "none", "lff_ce": "none", "lff_rubi": "none",
                       "hex": "bias-tailored", "rebias": "bias-tailored", "repair": "bias-labels",
                       "group_dro": "bias-labels"}
SUPERVISION_SYMBOLS = {"none": "○", "bias-tailored": "◐", "bias-labels": "●"}
DATASET_LABELS = {"cmnist": "Colored MNIST", "ccifar1": "Corrupted CIFAR-10¹", "ccifar2": "Corrupted CIFAR-10²",
                  "celeba": "CelebA", "bar": "BAR"}
DATASET_LATEX = {"ccifar1": r"Corrupted CIFAR-10$^1$", "ccifar2": r"Corrupted CIFAR-10$^2$"}
CELEBA_LABELS = {"Blond_Hair": "HairColor", "Heavy_Makeup": "HeavyMakeup", "Male": "Gender"}
METRIC_LABELS = {"unbiased": "Unbiased", "conflicting": "Bias-conflicting", "accuracy": "Accuracy",
                 "count": "Count", "relative_drop": "Relative drop"}
# Summary field -> (subset, metric) of the stored "test" rows at the selected epoch.
SUMMARY_METRICS = {"unbiased": ("all", "accuracy"), "conflicting": ("conflicting", "accuracy"),
                   "aligned": ("aligned", "accuracy"), "worst_group": ("all", "worst_group_accuracy"),
                   "sample_accuracy": ("all", "sample_accuracy")}
# Configuration fields that identify a cell (or are the seed) rather than a setting.
_CELL_FIELDS = {"dataset", "method", "method_hparams", "dataset_params", "trial_seed", "tables", "supervision",
                "predictor_role", "roles", "protocol", "hparams_seed"}
_TABLE_PARAMS = {"ratio", "difficulty", "target", "bias", "unbiased_train"}
_EVAL_SUBSETS = ["all", "aligned", "conflicting", "class"]
MISSING = "—"


class ReportError(ValueError):
    """A report request the store cannot satisfy (the message names the fix)."""


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------
@dataclass
class StoreData:
    location: str
    trials: pd.DataFrame  # one row per trial (all protocols), with parsed params/hparams/config dicts
    metrics: pd.DataFrame  # evaluation rows (test/valid, non-group subsets) of completed trials


def _valid_files(store: ResultStore) -> list[str]:
    # The store's own file check (schema version, foreign/corrupt files) applies to the report too.
    return list(store.valid_files())


def _first_row(store: ResultStore, path: str) -> dict[str, Any]:
    with store.fs.open_input_file(path) as handle:
        batch = next(pq.ParquetFile(handle).iter_batches(batch_size=1, columns=list(TRIAL_FIELDS)))
        return batch.to_pylist()[0]


def scan(store: ResultStore, columns: list[str], expression: Any = None, files: list[str] | None = None) -> pd.DataFrame:
    """Selected columns of the stored rows matching a pyarrow filter expression."""
    files = _valid_files(store) if files is None else files
    if not files:
        return SCHEMA.empty_table().select(columns).to_pandas()
    dataset = pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=store.fs)
    return dataset.to_table(columns=columns, filter=expression).to_pandas()


def _parse_trials(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=[*TRIAL_FIELDS, "params", "hparams", "cfg"])
    trials = pd.DataFrame(rows)
    trials["params"] = [json.loads(t) if t else {} for t in trials["dataset_params"]]
    trials["hparams"] = [json.loads(t) if t else {} for t in trials["method_hparams"]]
    trials["cfg"] = [json.loads(t) if t else {} for t in trials["config"]]
    return trials.sort_values("trial_key").reset_index(drop=True)


def load_store(results: str | os.PathLike) -> StoreData:
    """Trials and evaluation rows of a result store (local directory or pyarrow URI)."""
    store = ResultStore(results)
    files = _valid_files(store)
    trials = _parse_trials([_first_row(store, path) for path in files])
    expression = (pc.field("split").isin(["test", "valid"]) & pc.field("subset").isin(_EVAL_SUBSETS)
                  & (pc.field("status") == "completed"))
    metrics = scan(store, ["trial_key", *METRIC_FIELDS], expression, files)
    return StoreData(str(results), trials, metrics)


# --------------------------------------------------------------------------------------------
# Selection: protocol filter, epoch selector, one summary row per completed trial
# --------------------------------------------------------------------------------------------
@dataclass
class Selection:
    protocol: str
    selector: Selector
    summaries: pd.DataFrame  # completed trials of the protocol at their selected epoch
    failed: pd.DataFrame  # failed trials of the protocol
    excluded: pd.DataFrame  # trials stored under another protocol
    unevaluated: pd.DataFrame  # completed trials without any evaluation row
    location: str = ""
    stopped: pd.DataFrame = field(default_factory=pd.DataFrame)  # ended early by a scheduler: not tabulated
    unfinished: pd.DataFrame = field(default_factory=pd.DataFrame)  # partial records of an interrupted run


def resolve_protocol(data: StoreData, requested: str | None) -> str:
    """The requested protocol, else "paper" unless the store holds trials of another protocol only
    (so a report after a validation-protocol run shows that run)."""
    if requested:
        return requested
    present = set(data.trials["selection_protocol"].dropna()) if len(data.trials) else set()
    return "paper" if "paper" in present or not present else sorted(present)[0]


def select(data: StoreData, protocol: str | None = "paper", selector: str = "last") -> Selection:
    """Trials of `protocol` (None: see resolve_protocol), each summarised at the epoch `selector` picks."""
    rule = get_selector(selector)
    protocol = resolve_protocol(data, protocol)
    trials = data.trials
    mine = trials[trials["selection_protocol"] == protocol] if len(trials) else trials
    excluded = trials[trials["selection_protocol"] != protocol] if len(trials) else trials
    completed = mine[mine["status"] == "completed"]
    failed = mine[mine["status"] == "failed"]
    # Trials an early-stopping scheduler ended ("stopped") are finished but never in the tables.
    stopped = mine[mine["status"] == "stopped"]
    unfinished = mine[mine["status"] == "partial"]
    metrics = data.metrics[data.metrics["trial_key"].isin(set(completed["trial_key"]))]
    roles = completed.set_index("trial_key")["predictor_role"]
    chosen = select_epochs(metrics, roles, rule.name)
    summaries = _summaries(completed, metrics, chosen)
    unevaluated = completed[~completed["trial_key"].isin(set(chosen["trial_key"]))]
    return Selection(protocol, rule, summaries, failed.reset_index(drop=True), excluded.reset_index(drop=True),
                     unevaluated.reset_index(drop=True), data.location, stopped.reset_index(drop=True),
                     unfinished.reset_index(drop=True))


def _summaries(completed: pd.DataFrame, metrics: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    base = completed.merge(chosen, on="trial_key", how="inner")
    if base.empty:
        return base.assign(**{name: pd.Series(dtype=float) for name in SUMMARY_METRICS}, classes=pd.Series(dtype=object))
    at = metrics.merge(chosen[["trial_key", "epoch"]], on=["trial_key", "epoch"], how="inner")
    at = at[(at["split"] == "test") & (at["role"].to_numpy() == at["trial_key"].map(
        completed.set_index("trial_key")["predictor_role"]).to_numpy())]
    plain = at[at["subset"] != "class"]
    values = {(k, s, m): v for k, s, m, v in plain[["trial_key", "subset", "metric", "value"]].itertuples(index=False)}
    for name, (subset, metric) in SUMMARY_METRICS.items():
        base[name] = [values.get((key, subset, metric), math.nan) for key in base["trial_key"]]
    classes: dict[str, dict[int, dict[str, float]]] = {}
    for key, target, metric, value in at[at["subset"] == "class"][["trial_key", "target", "metric", "value"]].itertuples(index=False):
        classes.setdefault(key, {}).setdefault(int(target), {})[metric] = float(value)
    base["classes"] = [classes.get(key, {}) for key in base["trial_key"]]
    return base


# --------------------------------------------------------------------------------------------
# Table results and the generic cell machinery
# --------------------------------------------------------------------------------------------
@dataclass
class RowSpec:
    row_id: str
    dataset: str
    row: str  # the paper's row address (see benchmark.paper_values)
    setting: str
    labels: tuple[str, ...]
    latex_labels: tuple[str, ...]


@dataclass
class ColumnSpec:
    col_id: str
    metric: str
    column: str  # the paper's column address
    group: str | None  # which located trials fill it (a method, a train-set kind; None: all in the row)
    value_key: str  # summary field, or "class:<name>"
    block: str  # header group (e.g. "Unbiased"); "" for none
    label: str
    latex_label: str
    marker: str = ""  # supervision symbol
    method: str | None = None
    method_variant: str = ""
    derived: bool = False  # computed from other cells of the row (Table 1's relative drop)


@dataclass
class TableResult:
    number: int
    title: str
    tidy: pd.DataFrame
    row_headers: tuple[str, ...]
    rows: list[RowSpec]
    columns: list[ColumnSpec]
    bold: str | None  # "row": best within a row and block; "column": best within a column; None
    value_kind: str = "percent"  # "percent", "count" or "drop"
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    trials_used: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing_reason: str = ""  # why a table has no data at all

    @property
    def cells(self) -> pd.DataFrame:
        return self.tidy[self.tidy["kind"] != "repair_variant"] if len(self.tidy) else self.tidy

    @property
    def fillable(self) -> bool:
        return bool(len(self.tidy)) and bool((self.cells["n"] > 0).any())

    @property
    def missing_cells(self) -> list[tuple[str, str, bool]]:
        """(row text, column text, whether a failed trial is why) of every cell without data."""
        cells = self.cells
        if not len(cells):
            return []
        row_text = {r.row_id: " / ".join(x for x in r.labels if x) for r in self.rows}
        col_text = {c.col_id: (f"{c.block}: " if c.block else "") + c.label for c in self.columns}
        return [(row_text.get(r, r), col_text.get(c, c), bool(f))
                for r, c, f in cells[cells["n"] == 0][["row_id", "col_id", "n_failed"]].itertuples(index=False)]


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ratio(params: dict) -> str:
    value = _num(params.get("ratio"))
    return "" if math.isnan(value) else f"{value:.1f}"


def _difficulty(params: dict) -> str:
    value = _num(params.get("difficulty"))
    return "" if math.isnan(value) else str(int(value))


def _target(dataset: str, params: dict) -> str:
    return str(params.get("target") or MALIGNANT.get(dataset, ("",))[0])


def _is_main_direction(dataset: str, params: dict) -> bool:
    """The (Digit, Color)/(Object, Corruption) task on the biased training set."""
    return _target(dataset, params) == MALIGNANT[dataset][0] and not params.get("unbiased_train", False)


def _json_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(
        value, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def _varying_label(records: list[dict[str, Any]]) -> list[str]:
    """For dicts describing trials, 'k=v, ...' of the keys whose values differ between them."""
    keys = sorted({k for r in records for k in r})
    varying = [k for k in keys if len({_json_value(r.get(k)) for r in records}) > 1]
    return [", ".join(f"{k}={_json_value(r.get(k))}" for k in varying) for r in records]


def _settings(frame: pd.DataFrame) -> list[str]:
    """Per trial, the dataset-level configuration that varies among trials of its dataset."""
    out = [""] * len(frame)
    for _, index in frame.groupby("dataset").indices.items():
        records = []
        for i in index:
            row = frame.iloc[i]
            config = {k: v for k, v in row["cfg"].items() if k not in _CELL_FIELDS}
            if row["selection_protocol"] != "validation":
                config.pop("validation_fraction", None)  # no validation split: the fraction has no effect
            config.update({k: v for k, v in row["params"].items() if k not in _TABLE_PARAMS})
            records.append(config)
        for i, label in zip(index, _varying_label(records)):
            out[i] = label
    return out


def _method_variants(frame: pd.DataFrame) -> list[str]:
    """Per trial, the hyper-parameters that vary among trials of its method (REPAIR's variant aside)."""
    out = [""] * len(frame)
    for method, index in frame.groupby("method").indices.items():
        records = []
        for i in index:
            row = frame.iloc[i]
            hparams = {k: v for k, v in row["hparams"].items() if not (method == "repair" and k == "variant")}
            records.append({**hparams, "hparams_seed": row["hparams_seed"]})
        for i, label in zip(index, _varying_label(records)):
            out[i] = label
    return out


def _supervision(frame: pd.DataFrame, method: str) -> str:
    stored = frame.loc[frame["method"] == method, "supervision"].dropna() if len(frame) else pd.Series(dtype=str)
    if len(stored):
        return Counter(stored).most_common(1)[0][0]
    return DEFAULT_SUPERVISION.get(method, "")


_LATEX_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "±": r"\ensuremath{\pm}", "—": "--", "–": "--", "Δ": r"\ensuremath{\Delta}",
    "○": r"\SupNone{}", "◐": r"\SupTailored{}", "●": r"\SupLabels{}", "‡": r"\ensuremath{^\ddagger}",
    "†": r"\ensuremath{^\dagger}", "×": r"\ensuremath{\times}", "…": r"\ldots{}", "¹": r"\textsuperscript{1}",
    "²": r"\textsuperscript{2}", "*": r"\textsuperscript{*}",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table or caption (one pass, so replacements never re-escape)."""
    return "".join(_LATEX_CHARS.get(char, char) for char in str(text))


_latex_escape = latex_escape


def _method_order(methods: Iterable[str], paper: tuple[str, ...]) -> list[str]:
    methods = set(methods)
    return [m for m in paper] + sorted(m for m in methods - set(paper))


@dataclass
class _Spec:
    number: int
    title: str
    row_headers: tuple[str, ...]
    paper_rows: list[tuple[str, str]]  # (dataset, row) in the paper's order
    row_labels: Callable[[str, str], tuple[str, ...]]
    locate: Callable[[pd.Series], tuple[str, str] | None]  # trial -> (row, group) for its dataset
    metrics: tuple[str, ...] = ("unbiased",)
    methods: tuple[str, ...] = ()  # method columns (method_axis "column") or rows ("row")
    method_axis: str | None = "column"
    extra_methods: bool = False
    bold: str | None = "row"
    columns: list[ColumnSpec] | None = None  # fixed columns (tables 1 and 6)
    value_kind: str = "percent"
    row_latex: Callable[[str, str], tuple[str, ...]] | None = None


def _dataset_latex(dataset: str) -> str:
    return DATASET_LATEX.get(dataset) or _latex_escape(DATASET_LABELS.get(dataset, dataset))


def _aggregate(values: list[float]) -> tuple[float, float, int]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan, 0
    array = np.asarray(clean, dtype=float)
    std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    return float(array.mean()), std, len(array)


def _value_of(trial: pd.Series, key: str, class_names: dict[int, str]) -> float:
    if key.startswith("class:"):
        name = key.split(":", 1)[1]
        for index, stats in trial["classes"].items():
            if class_names.get(index) == name:
                return 100.0 * stats.get("accuracy", math.nan)
        return math.nan
    return 100.0 * _num(trial[key])


def _build(spec: _Spec, sel: Selection, class_names: dict[int, str] | None = None) -> TableResult:
    class_names = class_names or {}
    completed = sel.summaries.assign(_status="completed")
    candidates = pd.concat([completed, sel.failed.assign(_status="failed")], ignore_index=True)
    located = []
    for _, trial in candidates.iterrows():
        hit = spec.locate(trial)
        if hit is not None:
            located.append((trial, hit))
    frame = pd.DataFrame([t for t, _ in located]).reset_index(drop=True) if located else candidates.iloc[0:0].copy()
    frame["_row"] = [h[0] for _, h in located]
    frame["_group"] = [h[1] for _, h in located]
    frame["_setting"] = _settings(frame) if len(frame) else []
    frame["_variant"] = _method_variants(frame) if len(frame) else []
    if len(frame) and spec.method_axis == "row":
        frame["_row"] = [r + (f" [{v}]" if v else "") for r, v in zip(frame["_row"], frame["_variant"])]
    if len(frame) and spec.method_axis == "column":
        frame["_group"] = [g + (f" [{v}]" if v else "") for g, v in zip(frame["_group"], frame["_variant"])]

    # Rows: the paper's, once per setting seen for their dataset, then rows found only in the store.
    settings_by_dataset: dict[str, list[str]] = {}
    for dataset, setting in zip(frame.get("dataset", []), frame.get("_setting", [])):
        settings_by_dataset.setdefault(dataset, [])
        if setting not in settings_by_dataset[dataset]:
            settings_by_dataset[dataset].append(setting)
    row_keys: list[tuple[str, str, str]] = []
    for dataset, row in spec.paper_rows:
        for setting in sorted(settings_by_dataset.get(dataset, [""])):
            row_keys.append((dataset, row, setting))
    known = set(row_keys)
    extra = sorted({(d, r, s) for d, r, s in zip(frame.get("dataset", []), frame.get("_row", []), frame.get("_setting", []))}
                   - known, key=lambda k: (k[0], _natural(k[1]), k[2]))
    datasets_order = [d for d, _ in spec.paper_rows]
    for key in extra:  # keep a dataset's extra rows right after its paper rows
        positions = [i for i, k in enumerate(row_keys) if k[0] == key[0]]
        row_keys.insert(positions[-1] + 1 if positions else len(row_keys), key)
        if key[0] not in datasets_order:
            datasets_order.append(key[0])
    any_setting = any(s for _, _, s in row_keys)
    rows = []
    for dataset, row, setting in row_keys:
        labels = spec.row_labels(dataset, row)
        latex = spec.row_latex(dataset, row) if spec.row_latex else tuple(_latex_escape(x) for x in labels)
        if any_setting:
            labels, latex = (*labels, setting), (*latex, _latex_escape(setting))
        rows.append(RowSpec("|".join((dataset, row, setting)), dataset, row, setting, labels, latex))

    columns = spec.columns if spec.columns is not None else _method_columns(spec, frame, sel)
    tidy = _cells(spec, rows, columns, frame, sel, class_names)
    used = frame[frame["_status"] == "completed"] if len(frame) else frame
    failed = [_describe(t) for _, t in frame[frame["_status"] == "failed"].iterrows()] if len(frame) else []
    row_headers = (*spec.row_headers, "Setting") if any_setting else spec.row_headers
    return TableResult(spec.number, spec.title, tidy, row_headers, rows, columns, spec.bold, spec.value_kind,
                       failed=failed, trials_used=used)


def _natural(text: str) -> tuple:
    value = _num(text)
    return (0, value, "") if not math.isnan(value) else (1, 0.0, text)


def _method_columns(spec: _Spec, frame: pd.DataFrame, sel: Selection) -> list[ColumnSpec]:
    groups = sorted(set(frame["_group"])) if len(frame) else []
    found = {g.split(" [", 1)[0] for g in groups}
    methods = _method_order(found if spec.extra_methods else set(), spec.methods)
    columns = []
    for metric in spec.metrics:
        block = METRIC_LABELS[metric] if len(spec.metrics) > 1 else ""
        for method in methods:
            variants = sorted({g for g in groups if g.split(" [", 1)[0] == method}, key=lambda g: (g != method, g))
            for group in variants or [method]:
                variant = group[len(method) + 2:-1] if group != method else ""
                label = METHOD_LABELS.get(method, method) + (f" [{variant}]" if variant else "")
                supervision = _supervision(sel.summaries if len(sel.summaries) else sel.failed, method)
                columns.append(ColumnSpec(
                    col_id=f"{metric}|{group}", metric=metric, column=method, group=group, value_key=metric,
                    block=block, label=label, latex_label=_latex_escape(label),
                    marker=SUPERVISION_SYMBOLS.get(supervision, ""), method=method, method_variant=variant))
    return columns


def _cells(spec: _Spec, rows: list[RowSpec], columns: list[ColumnSpec], frame: pd.DataFrame, sel: Selection,
           class_names: dict[int, str]) -> pd.DataFrame:
    out = []
    by_row: dict[tuple[str, str, str], pd.DataFrame] = {}
    if len(frame):
        for key, part in frame.groupby(["dataset", "_row", "_setting"], sort=False):
            by_row[key] = part
    use_validation = sel.selector.split == "valid"
    for row in rows:
        part = by_row.get((row.dataset, row.row, row.setting), frame.iloc[0:0])
        computed: dict[str, dict] = {}
        for col in columns:
            if col.derived:
                continue
            trials = part if col.group is None else part[part["_group"] == col.group]
            done = trials[trials["_status"] == "completed"]
            n_failed = int((trials["_status"] == "failed").sum())
            base = {"table": spec.number, "row_id": row.row_id, "col_id": col.col_id, "dataset": row.dataset,
                    "row": row.row, "setting": row.setting, "metric": col.metric, "column": col.column,
                    "method": col.method or "", "method_variant": col.method_variant}
            if col.method == "repair" and "hparams" in done and len(done):
                cell, variant_rows = _repair_cell(done, col, class_names, use_validation)
                out.extend({**base, **v, "kind": "repair_variant", "n_failed": 0} for v in variant_rows)
            else:
                cell = _cell_stats(done, col, class_names)
            cell = {**base, **cell, "kind": "cell", "n_failed": n_failed}
            computed[col.col_id] = cell
            out.append(cell)
        for col in columns:
            if col.derived:
                cell = _relative_drop(row, col, computed)
                out.append(cell)
    tidy = pd.DataFrame(out)
    if tidy.empty:
        return tidy
    paper = [paper_cell(spec.number, d, r, m, c) for d, r, m, c in tidy[["dataset", "row", "metric", "column"]].itertuples(index=False)]
    tidy["paper_mean"] = [p[0] if p else math.nan for p in paper]
    tidy["paper_std"] = [p[1] if p and p[1] is not None else math.nan for p in paper]
    tidy["difference"] = tidy["mean"] - tidy["paper_mean"]
    tidy["selector"] = sel.selector.name
    tidy["protocol"] = sel.protocol
    order = ["table", "dataset", "row", "setting", "metric", "column", "method", "method_variant", "repair_variant",
             "kind", "mean", "std", "n", "n_failed", "paper_mean", "paper_std", "difference", "seeds", "epochs",
             "selector", "protocol", "trial_keys", "row_id", "col_id"]
    for name in order:
        if name not in tidy:
            tidy[name] = "" if name in ("repair_variant", "seeds", "epochs", "trial_keys") else math.nan
    return tidy[order]


def _cell_stats(done: pd.DataFrame, col: ColumnSpec, class_names: dict[int, str]) -> dict[str, Any]:
    values = [_value_of(t, col.value_key, class_names) for _, t in done.iterrows()]
    mean, std, n = _aggregate(values)
    kept = [t for (_, t), v in zip(done.iterrows(), values) if not math.isnan(v)]
    return {"mean": mean, "std": std, "n": n,
            "seeds": ";".join(str(int(t["trial_seed"])) for t in kept),
            "epochs": ";".join(str(int(t["epoch"])) for t in kept),
            "trial_keys": ";".join(t["trial_key"] for t in kept)}


def _repair_cell(done: pd.DataFrame, col: ColumnSpec, class_names: dict[int, str],
                 use_validation: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """REPAIR's cell: the best variant by the cell's own test mean (the paper's choice) or, under a
    validation selector, by the mean validation score; plus every variant's own numbers."""
    variants = [str(h.get("variant", "")) for h in done["hparams"]]
    stats = []
    for variant in sorted(set(variants)):
        part = done[[v == variant for v in variants]]
        cell = _cell_stats(part, col, class_names)
        score = float(np.nanmean(part["score"])) if use_validation and part["score"].notna().any() else cell["mean"]
        stats.append(({**cell, "repair_variant": variant}, score))
    ranked = [s for s in stats if not math.isnan(s[1])]
    best = max(ranked, key=lambda s: s[1])[0] if ranked else stats[0][0]
    return dict(best), [s[0] for s in stats]


def _relative_drop(row: RowSpec, col: ColumnSpec, computed: dict[str, dict]) -> dict[str, Any]:
    biased = computed.get("unbiased|biased_train", {})
    unbiased = computed.get("unbiased|unbiased_train", {})
    mean = math.nan
    if biased.get("n") and unbiased.get("n") and unbiased["mean"]:
        mean = 100.0 * (biased["mean"] - unbiased["mean"]) / unbiased["mean"]
    n = min(biased.get("n", 0), unbiased.get("n", 0))
    return {"table": 1, "row_id": row.row_id, "col_id": col.col_id, "dataset": row.dataset, "row": row.row,
            "setting": row.setting, "metric": col.metric, "column": col.column, "method": "vanilla",
            "method_variant": "", "kind": "cell", "mean": mean, "std": math.nan, "n": n if not math.isnan(mean) else 0,
            "n_failed": biased.get("n_failed", 0) + unbiased.get("n_failed", 0), "seeds": "", "epochs": "",
            "trial_keys": ";".join(x for x in (biased.get("trial_keys", ""), unbiased.get("trial_keys", "")) if x)}


def _describe(trial: pd.Series) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(trial["params"].items()) if k in _TABLE_PARAMS)
    error = str(trial.get("error") or "").strip().splitlines()
    return (f"{trial['dataset']}/{trial['method']} ({params}) seed {trial['trial_seed']} "
            f"[{trial['trial_key']}]: {error[-1] if error else 'no error text'}")


# --------------------------------------------------------------------------------------------
# The ten tables
# --------------------------------------------------------------------------------------------
def _controlled_labels(dataset: str, row: str) -> tuple[str, ...]:
    return (DATASET_LABELS.get(dataset, dataset), row)


def _controlled_latex(dataset: str, row: str) -> tuple[str, ...]:
    return (_dataset_latex(dataset), _latex_escape(row))


def _locator(datasets: tuple[str, ...], methods: tuple[str, ...], extra: bool,
             keep: Callable[[str, dict], bool], row_of: Callable[[str, dict], str]):
    def locate(trial: pd.Series) -> tuple[str, str] | None:
        dataset, method, params = trial["dataset"], trial["method"], trial["params"]
        if dataset not in datasets or not (method in methods or (extra and method not in PAPER_METHODS)):
            return None
        if not keep(dataset, params):
            return None
        return row_of(dataset, params), method
    return locate


def table_1(sel: Selection) -> TableResult:
    def locate(trial: pd.Series) -> tuple[str, str] | None:
        dataset, params = trial["dataset"], trial["params"]
        if trial["method"] != "vanilla" or dataset not in MALIGNANT:
            return None
        if _ratio(params) != "99.0" or _difficulty(params) != "4":
            return None
        target = _target(dataset, params)
        pair = MALIGNANT[dataset]
        if target not in pair:
            return None
        bias = pair[1] if target == pair[0] else pair[0]
        return f"{target}/{bias}", "unbiased_train" if params.get("unbiased_train", False) else "biased_train"

    rows = [(d, r) for d in CONTROLLED for r in (f"{MALIGNANT[d][1]}/{MALIGNANT[d][0]}", "/".join(MALIGNANT[d]))]
    columns = [
        ColumnSpec("unbiased|biased_train", "unbiased", "biased_train", "biased_train", "unbiased", "",
                   "Accuracy", "Accuracy", method="vanilla"),
        ColumnSpec("unbiased|unbiased_train", "unbiased", "unbiased_train", "unbiased_train", "unbiased", "",
                   "Accuracy*", "Accuracy$^*$", method="vanilla"),
        ColumnSpec("relative_drop|relative_drop", "relative_drop", "relative_drop", None, "", "",
                   "Relative drop", "Relative drop", derived=True),
    ]

    def labels(dataset: str, row: str) -> tuple[str, ...]:
        target, bias = row.split("/")
        return (DATASET_LABELS.get(dataset, dataset), target.title(), bias.title())

    def latex(dataset: str, row: str) -> tuple[str, ...]:
        return (_dataset_latex(dataset), *(_latex_escape(x) for x in labels(dataset, row)[1:]))

    spec = _Spec(1, "Unbiased test accuracy (%) of Vanilla trained on the biased (99% aligned, difficulty 4; "
                    "Accuracy) and on the unbiased training set (Accuracy*), for both (target, bias) directions",
                 ("Dataset", "Target", "Bias"), rows, labels, locate, method_axis=None, bold=None,
                 columns=columns, row_latex=latex)
    return _build(spec, sel)


def _ratio_table(number: int, metric: str, sel: Selection) -> TableResult:
    what = "Unbiased" if metric == "unbiased" else "Bias-conflicting"
    spec = _Spec(
        number, f"{what} test accuracy (%) with varying ratio of bias-aligned training samples (difficulty 4)",
        ("Dataset", "Ratio (%)"), [(d, r) for d in CONTROLLED for r in RATIOS], _controlled_labels,
        _locator(CONTROLLED, BASELINES, True, lambda d, p: _difficulty(p) == "4" and _is_main_direction(d, p),
                 lambda d, p: _ratio(p)),
        metrics=(metric,), methods=BASELINES, extra_methods=True, row_latex=_controlled_latex)
    return _build(spec, sel)


def table_2(sel: Selection) -> TableResult:
    return _ratio_table(2, "unbiased", sel)


def table_3(sel: Selection) -> TableResult:
    return _ratio_table(3, "conflicting", sel)


def table_4(sel: Selection) -> TableResult:
    methods = ("vanilla", "lff_ce", "lff")
    spec = _Spec(
        4, "Ablation at 99% bias-aligned samples (difficulty 4): LfF with a CE-trained biased model (LfF-CE) "
           "against Vanilla and LfF; unbiased and bias-conflicting test accuracy (%)",
        ("Dataset",), [(d, "99.0") for d in CONTROLLED], lambda d, r: (DATASET_LABELS.get(d, d),),
        _locator(CONTROLLED, methods, False,
                 lambda d, p: _ratio(p) == "99.0" and _difficulty(p) == "4" and _is_main_direction(d, p),
                 lambda d, p: "99.0"),
        metrics=("unbiased", "conflicting"), methods=methods, row_latex=lambda d, r: (_dataset_latex(d),))
    return _build(spec, sel)


def _celeba_label(name: str) -> str:
    return CELEBA_LABELS.get(name, name)


def table_5(sel: Selection) -> TableResult:
    methods = ("vanilla", "lff", "group_dro")

    def locate(trial: pd.Series) -> tuple[str, str] | None:
        method, params = trial["method"], trial["params"]
        if trial["dataset"] != "celeba" or not (method in methods or method not in PAPER_METHODS):
            return None
        return f"{params.get('target', 'Blond_Hair')}/{params.get('bias', 'Male')}", method

    spec = _Spec(5, "CelebA (official validation partition): unbiased and bias-conflicting accuracy (%)",
                 ("Target attribute", "Bias"), [("celeba", "Blond_Hair/Male"), ("celeba", "Heavy_Makeup/Male")],
                 lambda d, r: tuple(_celeba_label(x) for x in r.split("/", 1)), locate,
                 metrics=("unbiased", "conflicting"), methods=methods, extra_methods=True)
    return _build(spec, sel)


def table_6(sel: Selection, class_names: dict[int, str], class_note: str = "") -> TableResult:
    methods = ("vanilla", "rebias", "lff")
    names = list(BAR_CLASSES) + sorted(set(class_names.values()) - set(BAR_CLASSES))

    def locate(trial: pd.Series) -> tuple[str, str] | None:
        method = trial["method"]
        if trial["dataset"] != "bar" or not (method in methods or method not in PAPER_METHODS):
            return None
        return method, method

    found = {m for frame in (sel.summaries, sel.failed) if len(frame)
             for m in frame.loc[frame["dataset"] == "bar", "method"] if m not in PAPER_METHODS}
    order = _method_order(found, methods)
    supervision_frame = sel.summaries if len(sel.summaries) else sel.failed

    def labels(dataset: str, row: str) -> tuple[str, ...]:
        method, _, variant = row.partition(" [")
        marker = SUPERVISION_SYMBOLS.get(_supervision(supervision_frame, method), "")
        return (f"{METHOD_LABELS.get(method, method)}{' [' + variant if variant else ''} {marker}".strip(),)

    def latex(dataset: str, row: str) -> tuple[str, ...]:
        method, _, variant = row.partition(" [")
        symbol = _LATEX_MARKERS.get(SUPERVISION_SYMBOLS.get(_supervision(supervision_frame, method), ""), "")
        text = _latex_escape(METHOD_LABELS.get(method, method) + (" [" + variant if variant else ""))
        return (f"{text} {symbol}".strip(),)

    columns = [ColumnSpec(f"accuracy|{name}", "accuracy", name, None, f"class:{name}", "", name.title(),
                          _latex_escape(name.title())) for name in names]
    columns.append(ColumnSpec("accuracy|average", "accuracy", "average", None, "unbiased", "", "Average", "Average"))
    spec = _Spec(6, "BAR: per-class test accuracy (%) and their average (every test image is bias-conflicting)",
                 ("Method",), [("bar", m) for m in order], labels, locate, method_axis="row", bold="column",
                 columns=columns, row_latex=latex)
    result = _build(spec, sel, class_names)
    if class_note:
        result.notes.append(class_note)
    return result


_LATEX_MARKERS = {"○": r"\SupNone", "◐": r"\SupTailored", "●": r"\SupLabels"}


def _difficulty_table(number: int, metric: str, sel: Selection) -> TableResult:
    what = "Unbiased" if metric == "unbiased" else "Bias-conflicting"
    spec = _Spec(
        number, f"{what} test accuracy (%) with varying difficulty of the bias attribute (99% bias-aligned)",
        ("Dataset", "Difficulty"), [(d, x) for d in CONTROLLED for x in DIFFICULTIES], _controlled_labels,
        _locator(CONTROLLED, BASELINES, True, lambda d, p: _ratio(p) == "99.0" and _is_main_direction(d, p),
                 lambda d, p: _difficulty(p)),
        metrics=(metric,), methods=BASELINES, extra_methods=True, row_latex=_controlled_latex)
    return _build(spec, sel)


def table_8(sel: Selection) -> TableResult:
    return _difficulty_table(8, "unbiased", sel)


def table_9(sel: Selection) -> TableResult:
    return _difficulty_table(9, "conflicting", sel)


def table_10(sel: Selection) -> TableResult:
    methods = ("vanilla", "lff", "lff_rubi")
    spec = _Spec(
        10, "Colored MNIST: LfF with the RUBi combination rule (LfF-RUBi) against Vanilla and LfF, unbiased and "
            "bias-conflicting test accuracy (%) with varying ratio of bias-aligned samples (difficulty 4)",
        ("Dataset", "Ratio (%)"), [("cmnist", r) for r in RATIOS], _controlled_labels,
        _locator(("cmnist",), methods, False, lambda d, p: _difficulty(p) == "4" and _is_main_direction(d, p),
                 lambda d, p: _ratio(p)),
        metrics=("unbiased", "conflicting"), methods=methods, row_latex=_controlled_latex)
    return _build(spec, sel)


# --------------------------------------------------------------------------------------------
# BAR: class names of the stored class indices, and Table 7 from the dataset itself
# --------------------------------------------------------------------------------------------
def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """--data-root, else $DEBIAS_DATA_ROOT, else ./data (as the training CLI resolves it)."""
    return Path(data_root or os.environ.get("DEBIAS_DATA_ROOT") or "data").expanduser()


def _class_name(raw: str) -> str:
    # metadata.json spells vaulting "pole vaulting"; the paper's column is "Vaulting".
    return raw.strip().lower().split()[-1]


def bar_counts(data_root: str | os.PathLike | None) -> tuple[dict[str, dict[str, int]], Path]:
    """Per split ("train", "test") and class, the number of BAR images, from BAR/metadata.json."""
    path = resolve_data_root(data_root) / "BAR" / "metadata.json"
    if not path.is_file():
        raise ReportError(f"BAR metadata not found at {path}; pass --data-root DIR (the directory holding BAR/)")
    entries = json.loads(path.read_text())
    counts: dict[str, dict[str, int]] = {"train": {}, "test": {}}
    for entry in (entries.values() if isinstance(entries, dict) else entries):
        split = "train" if entry.get("train") else "test"
        name = _class_name(str(entry["cls"]))
        counts[split][name] = counts[split].get(name, 0) + 1
    return counts, path


def bar_class_names(summaries: pd.DataFrame, test_counts: dict[str, int] | None = None) -> tuple[dict[int, str], str]:
    """Names of the class indices stored for BAR trials. The store keeps indices only, so they are
    matched by their test-set counts (distinct for BAR's six classes) against the dataset's counts
    (or the paper's Table 7); otherwise the paper's class order is assumed, and the note says so."""
    reference = test_counts or {c: int(PAPER[(7, "bar", "test", "count", c)][0]) for c in BAR_CLASSES}
    bar = summaries[summaries["dataset"] == "bar"] if len(summaries) else summaries
    counts: dict[int, float] = {}
    for classes in (bar["classes"] if len(bar) else []):
        for index, stats in classes.items():
            counts.setdefault(index, stats.get("count", math.nan))
    if not counts:
        return {}, ""
    by_count = {v: k for k, v in reference.items()}
    if (len(set(reference.values())) == len(reference) and len(counts) == len(reference)
            and all(c in by_count for c in counts.values())):
        return {i: by_count[c] for i, c in counts.items()}, ""
    names = {i: (BAR_CLASSES[i] if i < len(BAR_CLASSES) else f"class {i}") for i in counts}
    return names, ("class names assumed in the paper's order (climbing, diving, fishing, racing, throwing, "
                   "vaulting): the stored per-class test counts do not match the dataset's")


def table_7(data_root: str | os.PathLike | None) -> TableResult:
    try:
        counts, path = bar_counts(data_root)
    except ReportError as error:
        return TableResult(7, "BAR: number of images per class", pd.DataFrame(), ("Split",), [], [], None,
                           "count", missing_reason=str(error))
    names = list(BAR_CLASSES) + sorted({n for split in counts.values() for n in split} - set(BAR_CLASSES))
    columns = [ColumnSpec(f"count|{n}", "count", n, None, n, "", n.title(), _latex_escape(n.title())) for n in names]
    columns.append(ColumnSpec("count|total", "count", "total", None, "total", "", "Total", "Total"))
    rows = [RowSpec(f"bar|{s}||", "bar", s, "", (label,), (label,))
            for s, label in (("train", "Training"), ("test", "Evaluation"))]
    out = []
    for row in rows:
        split = counts[row.row]
        for col in columns:
            value = float(sum(split.values())) if col.column == "total" else float(split.get(col.column, 0))
            paper = paper_cell(7, "bar", row.row, "count", col.column)
            out.append({"table": 7, "dataset": "bar", "row": row.row, "setting": "", "metric": "count",
                        "column": col.column, "method": "", "method_variant": "", "repair_variant": "",
                        "kind": "cell", "mean": value, "std": math.nan, "n": 1, "n_failed": 0,
                        "paper_mean": paper[0] if paper else math.nan, "paper_std": math.nan,
                        "difference": value - paper[0] if paper else math.nan, "seeds": "", "epochs": "",
                        "selector": "", "protocol": "", "trial_keys": "", "row_id": row.row_id, "col_id": col.col_id})
    result = TableResult(7, "BAR: number of images per class in the training and evaluation sets",
                         pd.DataFrame(out), ("Split",), rows, columns, None, "count")
    result.notes.append(f"computed from {path}")
    return result


def build_table(number: int, sel: Selection, data_root: str | os.PathLike | None = None) -> TableResult:
    """One paper table from a selection (Table 7 reads the BAR metadata under the data root)."""
    if number == 7:
        return table_7(data_root)
    if number == 6:
        test_counts = None
        try:
            test_counts = bar_counts(data_root)[0]["test"]
        except ReportError:
            pass  # the paper's published counts identify the classes just as well
        names, note = bar_class_names(sel.summaries, test_counts)
        return table_6(sel, names, note)
    builders = {1: table_1, 2: table_2, 3: table_3, 4: table_4, 5: table_5, 8: table_8, 9: table_9, 10: table_10}
    if number not in builders:
        raise ReportError(f"unknown table {number}; the paper has tables 1-10")
    return builders[number](sel)
