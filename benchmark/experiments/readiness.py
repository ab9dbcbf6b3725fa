"""What a run lacks, said at once before anything is scheduled (docs/faults.md#pre-flight): the
ImageNet weights, raw data that is absent and cannot be downloaded (CelebA, BAR, an image_table
folder), with a note on raw data that is present but partial (a CIFAR-10 subset); how many of the
trials can run as they are, and the --datasets filter that runs them. The fix it offers never
changes the paper's protocol (no `pretrained=false` unless that is the only thing anyone asked for)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from debiasbench.benchmark.experiments.preflight import PreflightError, check_imagenet_weights, needs_imagenet_weights
from debiasbench.benchmark.trial import ResolvedTrial
from debiasbench.datasets.base import DATASETS, DataPaths


def _weights_problem(trials: Sequence[ResolvedTrial]) -> Exception | None:
    try:
        check_imagenet_weights(trials)
    except (OSError, ValueError, RuntimeError) as error:  # missing, download failed, damaged
        return error
    return None


def check_ready(trials: Sequence[ResolvedTrial], paths: DataPaths) -> None:
    """Raise one PreflightError listing everything the trials lack; return when nothing is lacking.
    A run lacking one thing only, with no trial runnable, keeps that thing's own message."""
    from debiasbench.models.resnet18 import imagenet_weights_path

    lacks: dict[int, list[str]] = {}  # trial index -> what it lacks
    described: dict[str, str] = {}  # what is lacking -> the words for it, with its fix
    notes: list[str] = []
    weights = _weights_problem(trials) if any(needs_imagenet_weights(t) for t in trials) else None
    if weights is not None:
        path = imagenet_weights_path()
        described["weights"] = (
            f"the ImageNet ResNet-18 weights ({path} is missing or damaged: copy the published {path.name} there)"
        )
    seen: dict[tuple, tuple[str | None, str | None]] = {}
    for i, trial in enumerate(trials):
        dataset_cls = DATASETS.get(trial.dataset)
        params = dataset_cls.Params(**trial.dataset_params)
        ident = (trial.dataset, json.dumps(trial.dataset_params, sort_keys=True, default=str))
        if ident not in seen:
            seen[ident] = (dataset_cls.missing_raw_data(params, paths), dataset_cls.raw_data_note(params, paths))
            if seen[ident][1] and seen[ident][1] not in notes:
                notes.append(seen[ident][1])
        missing = seen[ident][0]
        if missing is not None:
            described.setdefault(
                f"data:{trial.dataset}", f"the raw data of {trial.dataset} ({missing}; see docs/data.md)"
            )
            lacks.setdefault(i, []).append(f"data:{trial.dataset}")
        if weights is not None and needs_imagenet_weights(trial):
            lacks.setdefault(i, []).append("weights")
    if not lacks:
        return
    kinds = {kind for kinds in lacks.values() for kind in kinds}
    if len(kinds) == 1 and len(lacks) == len(trials):
        # One thing lacking and no trial runnable without it: its own message, with all its fixes (the
        # weights' here; a dataset's from its loader, when the data is prepared next).
        if kinds == {"weights"}:
            raise weights
        return
    needed = Counter(kind for kinds in lacks.values() for kind in kinds)
    by_kind = {kind: sorted({trials[i].dataset for i, kinds in lacks.items() if kind in kinds}) for kind in described}
    lacking = "; ".join(
        f"{described[kind]}, needed by {needed[kind]} trial(s) of {', '.join(by_kind[kind])}"
        for kind in described
        if needed[kind]
    )
    blocked = {trials[i].dataset for i in lacks}
    ready = [d for d in dict.fromkeys(t.dataset for t in trials) if d not in blocked]  # the grid's order
    runnable = sum(1 for t in trials if t.dataset in ready)
    if ready:
        run = (
            f"{runnable} of its {len(trials)} trial(s) can run as they are: add --datasets {','.join(ready)} "
            "(the others need what is missing)"
        )
    else:
        run = f"none of its {len(trials)} trial(s) can run without it"
    caveat = f" Note: {'; '.join(notes)}." if notes else ""
    raise PreflightError(f"this run lacks {lacking}. {run}.{caveat}")
