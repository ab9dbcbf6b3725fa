"""Checks made in the driver before Ray schedules anything, so a run that cannot work fails at
once with one line naming the numbers and the fix, instead of waiting forever or failing in
every worker: run options, resources per trial against what the machine or cluster has, the
training device, grid filters that match nothing, dataset parameters by name and type, and the
ImageNet weights file of trials that need it."""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from debiasbench.benchmark.trial import ResolvedTrial, TrialConfig


class PreflightError(ValueError):
    """A run that cannot work as asked; the message gives the numbers and the fix."""


def _number(value: float) -> str:
    return f"{value:g}"


# -- options -----------------------------------------------------------------------------------


def check_options(options: Any) -> None:
    """Values of RunOptions that no machine could satisfy (the CLI's flags by name)."""
    if not options.cpus_per_trial > 0:
        raise PreflightError(f"--cpus-per-trial must be positive, got {_number(options.cpus_per_trial)}")
    gpus = options.gpus_per_trial
    if gpus is not None:
        if gpus < 0:
            raise PreflightError(f"--gpus-per-trial must be 0 or more, got {_number(gpus)}")
        if gpus > 1 and not float(gpus).is_integer():
            raise PreflightError(
                f"--gpus-per-trial {_number(gpus)}: Ray shares a GPU only in fractions below 1; "
                f"ask for {math.floor(gpus)} or {math.ceil(gpus)}"
            )
    for name, flag, value in (("cpus", "--cpus-per-trial", options.cpus_per_trial),):
        if value > 1 and not float(value).is_integer():
            raise PreflightError(
                f"{flag} {_number(value)}: Ray needs a whole number of {name} above 1; "
                f"ask for {math.floor(value)} or {math.ceil(value)}"
            )
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise PreflightError(
            f"--max-concurrent must be at least 1, got {options.max_concurrent}; "
            "leave it out to run as many trials at once as the resources allow"
        )
    if options.max_failures < 0:
        raise PreflightError(f"--max-failures must be 0 or more, got {options.max_failures}")
    if options.num_cpus is not None and options.num_cpus < 1:
        raise PreflightError(f"num_cpus must be at least 1, got {options.num_cpus}")
    device_kind(options.device)


def device_kind(device: str) -> str:
    """ "auto", "cpu" or "cuda" for a --device value (an error naming the valid ones otherwise)."""
    if device in ("auto", "cpu", "cuda"):
        return device
    kind, _, index = device.partition(":")
    if kind == "cuda" and index.isdigit():
        return "cuda"
    raise PreflightError(f"unknown --device {device!r}; use auto, cpu, cuda or cuda:N")


# -- resources ---------------------------------------------------------------------------------


def local_resources(num_cpus: int | None) -> dict[str, float]:
    """What the embedded Ray instance will have (ray_backend.ray_init gives it exactly this)."""
    import torch

    return {"CPU": float(num_cpus or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def cluster_nodes() -> list[dict[str, float]]:
    """Resources of every live node of the Ray cluster this process joined."""
    import ray

    return [dict(node.get("Resources", {})) for node in ray.nodes() if node.get("Alive")]


def check_resources(
    cpus_per_trial: float, gpus_per_trial: float, nodes: Sequence[Mapping[str, float]], where: str
) -> None:
    """A trial runs on one node: it must fit on the largest one, or it would wait forever."""
    cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
    if cpus_per_trial > cpus:
        raise PreflightError(
            f"--cpus-per-trial {_number(cpus_per_trial)} asks for more CPUs than {where} has ({_number(cpus)}), so no "
            f"trial could ever start; use --cpus-per-trial {_number(max(1.0, math.floor(cpus)))} or less, or join a "
            "larger Ray cluster with --address"
        )
    if gpus_per_trial > gpus:
        have = "no GPU" if gpus == 0 else f"{_number(gpus)} GPU(s)"
        fix = (
            (
                "drop --gpus-per-trial (without a GPU the default is 0) to train on the CPU, or join a cluster with "
                "GPUs with --address"
            )
            if gpus == 0
            else f"use --gpus-per-trial {_number(gpus)} or less"
        )
        raise PreflightError(
            f"--gpus-per-trial {_number(gpus_per_trial)} asks for more GPUs than {where} has ({have}), so no trial "
            f"could ever start; {fix}"
        )


def check_device(device: str, gpus_per_trial: float, cuda_available: bool, where: str) -> None:
    """--device against what a trial will see: Ray hides every GPU it did not reserve for it."""
    if device_kind(device) != "cuda":
        return
    if not cuda_available:
        raise PreflightError(f"--device {device} but {where} has no CUDA GPU; use --device cpu (or auto)")
    if gpus_per_trial <= 0:
        raise PreflightError(
            f"--device {device} with --gpus-per-trial 0: Ray hides the GPUs from trials that reserve "
            "none; pass --gpus-per-trial 1 (or a fraction such as 0.5)"
        )
    index = int(device.partition(":")[2] or 0)
    visible = max(1, math.floor(gpus_per_trial))
    if index >= visible:
        raise PreflightError(
            f"--device {device}: inside a trial Ray shows only the {visible} GPU(s) it reserved, "
            "numbered from 0; use --device cuda"
        )


# -- grid filters ------------------------------------------------------------------------------

_FILTERS = (
    ("tables", "--tables", "tables"),
    ("datasets", "--datasets", "datasets"),
    ("methods", "--methods", "methods"),
    ("ratios", "--ratios", "ratios"),
    ("difficulties", "--difficulties", "difficulties"),
)


def _values(configs: Iterable[TrialConfig], axis: str) -> set:
    out: set = set()
    for config in configs:
        if axis == "tables":
            out |= set(config.tables)
        elif axis == "datasets":
            out.add(config.dataset)
        elif axis == "methods":
            out.add(config.method)
        elif axis == "ratios" and "ratio" in config.dataset_params:
            out.add(float(config.dataset_params["ratio"]))
        elif axis == "difficulties" and "difficulty" in config.dataset_params:
            out.add(config.dataset_params["difficulty"])
    return out


def _show(values: Iterable) -> str:
    shown = sorted(values, key=lambda v: (isinstance(v, str), v))
    return ", ".join(_number(v) if isinstance(v, float) else str(v) for v in shown) or "none"


def check_filters(grid: str, **filters: Sequence | None) -> None:
    """Filters (tables, datasets, methods, ratios, difficulties) that match no trial of the grid
    are an error listing the values the grid has, instead of a silent empty run."""
    from debiasbench.benchmark.paper.grids import USER_GRID, build_grid

    given = {axis: list(values) for axis, values in filters.items() if values is not None}
    if grid == USER_GRID:  # made of --datasets x --methods; its dataset parameters come from --dataset-param
        for axis, param in (("ratios", "ratio"), ("difficulties", "difficulty")):
            if axis in given:
                raise PreflightError(
                    f"--{axis} filters the trials of a named grid, but the user grid's trials take their dataset "
                    f"parameters from --dataset-param: use --dataset-param {param}=VALUE instead of --{axis}"
                )
        return
    if not given:
        return
    everything = build_grid(grid)
    for axis, flag, noun in _FILTERS:
        if axis not in given:
            continue
        have = _values(everything, axis)
        wanted = {float(v) for v in given[axis]} if axis == "ratios" else set(given[axis])
        missing = wanted - have
        if missing:
            raise PreflightError(
                f"{flag} {_show(missing)} matches no trial of grid {grid!r}; its {noun}: {_show(have)}"
            )
    if build_grid(grid, **given):
        return
    hints = []
    for axis, flag, _ in _FILTERS:
        if axis in given:
            others = {a: v for a, v in given.items() if a != axis}
            hints.append(f"{flag} could be {_show(_values(build_grid(grid, **others), axis))}")
    raise PreflightError(
        f"the filters together match no trial of grid {grid!r}; given the other filters, " + " and ".join(hints)
    )


# -- dataset parameters --------------------------------------------------------------------------

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _accepts(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return True


def _kinds(annotation: Any) -> tuple[list[type], bool] | None:
    """The plain types a field accepts and whether None is one of them (None: not checked)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    kinds = [a for a in args if a in _KINDS]
    optional = type(None) in args
    if len(kinds) + optional != len(args) or not kinds:
        return None
    return kinds, optional


_PROBES = {bool: None, int: -987654321, float: float("nan"), str: "\x00"}


def _valid_range(dataset_cls: type, name: str, kind: type) -> str:
    """What the dataset accepts for one parameter, from its own validation message for a value
    that is surely invalid (so the range is stated once, in the dataset)."""
    if kind is bool:
        return "true or false"
    try:
        probe = dataclasses.replace(dataset_cls.Params(), **{name: _PROBES[kind]})
        dataset_cls.canonical(probe)
    except Exception as error:  # noqa: BLE001 - any message of the dataset's own check will do
        text = str(error)
        if name in text:
            return text.split(": ", 1)[1] if ": " in text else text
    default = next((f.default for f in dataclasses.fields(dataset_cls.Params) if f.name == name), None)
    return f"e.g. {default!r} (the default)"


def check_dataset_params(dataset: str, values: Mapping[str, Any]) -> None:
    """Every given dataset parameter must be a field of the dataset's Params with a value of the
    field's type; the error names the parameter, the expected type and the valid values."""
    from debiasbench.datasets.base import DATASETS

    dataset_cls = DATASETS.get(dataset)
    params_cls = getattr(dataset_cls, "Params", None)
    if params_cls is None or not dataclasses.is_dataclass(params_cls):
        return
    try:
        hints = typing.get_type_hints(params_cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: leave the checks to the dataset
        return
    for name, value in values.items():
        if name not in hints:
            continue  # unknown names: make_params lists the valid ones
        accepted = _kinds(hints[name])
        if accepted is None:
            continue
        kinds, optional = accepted
        if (value is None and optional) or any(_accepts(kind, value) for kind in kinds):
            continue
        expected = " or ".join(_KINDS[kind] for kind in kinds) + (" (or null)" if optional else "")
        raise PreflightError(
            f"dataset parameter {name}={value!r} of {dataset!r} must be {expected}, got {type(value).__name__}; "
            f"valid values: {_valid_range(dataset_cls, name, kinds[0])}"
        )


# -- ImageNet weights ------------------------------------------------------------------------------


def needs_imagenet_weights(trial: ResolvedTrial) -> bool:
    params = trial.dataset_params
    return params.get("pretrained") is True and params.get("model", "resnet18") == "resnet18"


def check_imagenet_weights(trials: Iterable[ResolvedTrial]) -> None:
    """Trials that start from ImageNet weights need a sound weights file: checked once here
    (downloaded if absent and online) instead of failing in every worker."""
    if any(needs_imagenet_weights(t) for t in trials):
        from debiasbench.models.resnet18 import ensure_imagenet_weights, verify_imagenet_weights

        verify_imagenet_weights(ensure_imagenet_weights())


# -- the whole run ---------------------------------------------------------------------------------


def _gpus_per_trial(options: Any, cuda_available: bool) -> float:
    """The driver's rule: --gpus-per-trial, else 1 when this machine sees a GPU, else 0."""
    return options.gpus_per_trial if options.gpus_per_trial is not None else (1.0 if cuda_available else 0.0)


def check_run(options: Any, trials: Sequence[ResolvedTrial]) -> None:
    """Everything checkable before Ray starts: resources and device against this machine (for an
    embedded Ray), and the ImageNet weights and raw data the trials need (readiness.py: all that
    is lacking at once, and which trials can run as they are)."""
    import torch

    from debiasbench.benchmark.experiments.readiness import check_ready
    from debiasbench.datasets.base import DataPaths

    cuda = torch.cuda.is_available()
    if not options.address:
        where = "this machine" if options.num_cpus is None else f"the embedded Ray (num_cpus={options.num_cpus})"
        check_resources(
            options.cpus_per_trial, _gpus_per_trial(options, cuda), [local_resources(options.num_cpus)], where
        )
        check_device(options.device, _gpus_per_trial(options, cuda), cuda, "this machine")
    check_ready(trials, DataPaths.resolve(options.data_root, options.cache_dir))


def check_cluster_run(options: Any) -> None:
    """After joining a cluster (--address), before anything is scheduled: a trial must fit on one
    of its nodes. Leaves Ray shut down when it fails."""
    import ray
    import torch

    try:
        nodes = cluster_nodes()
        gpus = _gpus_per_trial(options, torch.cuda.is_available())
        where = f"any node of the Ray cluster at {options.address}"
        check_resources(options.cpus_per_trial, gpus, nodes, where)
        check_device(options.device, gpus, any(node.get("GPU", 0) > 0 for node in nodes), "the Ray cluster")
    except PreflightError:
        ray.shutdown()
        raise
