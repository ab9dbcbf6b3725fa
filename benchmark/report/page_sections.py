"""The report page's other sections, read from the report directory: failed trials, group
matrices with their heatmaps, method diagnostics and the store's provenance (torch-free)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from debiasbench.benchmark.paper.axes import METHOD_LABELS
from debiasbench.benchmark.report.page_format import finite, fmt_value

PROVENANCE_LABELS = {
    "results": "Result store",
    "code_version": "Code version",
    "torch_version": "torch",
    "cuda_version": "CUDA",
    "device": "Devices",
    "hostname": "Hosts",
    "cpu": "CPUs (model, torch kernels)",
    "selection_protocol": "Selection protocols",
    "status": "Trials per status",
    "trials": "Trials",
    "finished_at": "Finished (first, last)",
}


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def failed_view(report_dir: Path) -> list[dict[str, str]]:
    path = report_dir / "failed_trials.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = []
    for record in frame.to_dict("records"):
        error = str(record.get("error", "")).strip()
        lines = [line for line in error.splitlines() if line.strip()]
        out.append(
            {
                **{k: str(v) for k, v in record.items()},
                "last_error": lines[-1] if lines else "no error text",
                "error": error,
            }
        )
    return out


def groups_view(report_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(report_dir.glob("groups_*_matrix.csv")):
        name = path.name[: -len("_matrix.csv")]
        matrix = pd.read_csv(path, index_col=0)
        heatmap = report_dir / f"{name}.png"
        summary = report_dir / f"{name}.md"
        text = summary.read_text(encoding="utf-8") if summary.is_file() else ""
        description = next(
            (line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "|"))), ""
        )
        out.append(
            {
                "name": name,
                "file": path.name,
                "columns": [str(c) for c in matrix.columns],
                "index_name": str(matrix.index.name or "target"),
                "rows": [
                    {"label": str(index), "values": [fmt_value(v) for v in values]}
                    for index, values in zip(matrix.index, matrix.to_numpy())
                ],
                "image": data_uri(heatmap) if heatmap.is_file() else "",
                "summary": text,
                "description": description,
            }
        )
    return out


def diagnostics_view(report_dir: Path) -> dict[str, Any] | None:
    path = report_dir / "diagnostics.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(
        path,
        dtype={
            "dataset_params": str,
            "method_hparams": str,
            "trial_key": str,
            "method": str,
            "dataset": str,
            "metric": str,
        },
        keep_default_na=False,
    )
    if frame.empty:
        return None
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    last = frame[frame["epoch"] == frame.groupby("trial_key")["epoch"].transform("max")]
    keys = ["dataset", "dataset_params", "method", "method_hparams", "metric"]
    summary = last.groupby(keys, sort=True)["value"].agg(mean="mean", std="std", n="count").reset_index()
    rows = [
        {
            "cells": [
                r["dataset"],
                r["dataset_params"],
                METHOD_LABELS.get(r["method"], r["method"]),
                r["method_hparams"],
                r["metric"],
            ],
            "mean": f"{r['mean']:.4g}" if finite(r["mean"]) else "",
            "std": f"{r['std']:.4g}" if finite(r["std"]) else "",
            "n": int(r["n"]),
        }
        for r in summary.to_dict("records")
    ]
    return {
        "rows": rows,
        "file": path.name,
        "trials": int(frame["trial_key"].nunique()),
        "epochs": int(frame["epoch"].max()) if len(frame) else 0,
    }


def provenance_view(provenance: Mapping[str, Any] | None) -> list[dict[str, str]]:
    if not provenance:
        return []
    out = []
    for key, value in provenance.items():
        if isinstance(value, Mapping):
            text = ", ".join(f"{k} ({v})" if not isinstance(v, str) else f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple, set)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        out.append({"label": PROVENANCE_LABELS.get(key, key), "text": text or "unknown"})
    return out
