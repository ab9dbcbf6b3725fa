"""Train the authors' released LfF code (a checkout of github.com/alinlab/LfF) on this suite's data.

    python -m debiasbench.tools.run_reference_lff --checkout ~/LfF --dataset cmnist --ratio 99 --seed 0 --out DIR

exports the dataset in the reference's layout (tools/export_reference_layout.py) under DIR/data,
then calls the checkout's own `train.py` (`--script train_vanilla` for its Vanilla) with the
values its `colored_mnist` / `corrupted_cifar10` named configs set: the reference's model, steps,
batch size, optimiser and evaluation schedule, nothing of this suite's trainer. It prints and
writes DIR/summary_<script>_<dataset>_r<ratio>_s<seed>.json: the reference's own evaluations of its
debiased model (unbiased = the mean of its 100 group accuracies, aligned = the mean of the diagonal
groups, conflicting = the rest), the last one and the best one.

What is not the reference's command line, and why (none of it changes the computation):
* its config framework (sacred) is replaced by a direct call of the decorated function with the
  config values, because sacred does not import on current setuptools (it needs pkg_resources);
* DataLoader workers are 0 instead of 16 (the shuffle order comes from the main process's torch
  RNG either way) and pinning is off; the device is --device (default cpu);
* torch, numpy and random are seeded with --seed (the reference does not seed).
The reference evaluates every epoch's start, so its last evaluation follows 99 of the 100 epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from debiasbench.datasets.base import DataPaths
from debiasbench.tools.dataset_cli import add_dataset_arguments, dataset_params
from debiasbench.tools.export_reference_layout import export, reference_tag

# The values the reference's named configs set (config.py): model, steps per epoch, epochs.
REFERENCE_CONFIGS: dict[str, dict[str, Any]] = {
    "cmnist": {"model_tag": "MLP", "steps_per_epoch": 235, "epochs": 100},
    "ccifar1": {"model_tag": "ResNet20", "steps_per_epoch": 196, "epochs": 200},
    "ccifar2": {"model_tag": "ResNet20", "steps_per_epoch": 196, "epochs": 200},
}


class _DirectExperiment:
    """Stands in for sacred.Experiment: every decorator returns the function unchanged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.logger = None

    def _identity(self, function: Any) -> Any:
        return function

    config = named_config = automain = main = capture = _identity


def _belongs_to(module: Any, checkout: Path) -> bool:
    """Whether a module was loaded from the checkout (a file in it, or a namespace package there)."""
    spec = getattr(module, "__spec__", None)
    locations = [getattr(spec, "origin", None), *(getattr(spec, "submodule_search_locations", None) or [])]
    return any(str(location).startswith(str(checkout)) for location in locations if location)


@contextlib.contextmanager
def reference_environment(checkout: Path) -> Iterator[None]:
    """Import the checkout's modules with sacred stubbed and DataLoader workers at 0; undo on exit."""
    import torch.utils.data

    sacred = types.ModuleType("sacred")
    sacred.Experiment = _DirectExperiment
    observers = types.ModuleType("sacred.observers")
    observers.MongoObserver = object
    loader = torch.utils.data.DataLoader

    class InProcessDataLoader(loader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(num_workers=0, pin_memory=False)
            super().__init__(*args, **kwargs)

    stubbed = {name: sys.modules.get(name) for name in ("sacred", "sacred.observers")}
    before = set(sys.modules)
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    sys.modules.update({"sacred": sacred, "sacred.observers": observers})
    torch.utils.data.DataLoader = InProcessDataLoader
    sys.path.insert(0, str(checkout))
    os.chdir(checkout)  # the reference opens ./data/resource/colors.th relative to the working directory
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        torch.utils.data.DataLoader = loader
        # Forget the checkout's modules (config, train, data.*, module.*, util), so a second run
        # imports them afresh, and put back whatever sacred modules were there before.
        for name in set(sys.modules) - before:
            if _belongs_to(sys.modules[name], checkout):
                del sys.modules[name]
        for name, module in stubbed.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def summarise(attrwise_accuracies: Any) -> dict[str, Any]:
    """The reference's (evaluations, classes, bias values) accuracies -> unbiased/aligned/conflicting %."""
    import torch

    accs = torch.as_tensor(attrwise_accuracies, dtype=torch.float64)
    if accs.dim() == 2:  # train_vanilla.py concatenates its (C, C) evaluations; train.py stacks them
        accs = accs.reshape(-1, accs.shape[1], accs.shape[1])
    diagonal = torch.eye(accs.shape[1], dtype=torch.bool)
    unbiased = accs.mean(dim=(1, 2)) * 100
    aligned = accs[:, diagonal].mean(dim=1) * 100
    conflicting = accs[:, ~diagonal].mean(dim=1) * 100
    best = int(unbiased.argmax())
    return {
        "evaluations": len(unbiased),
        "epochs_before_last_evaluation": (len(unbiased) - 1),
        "last": {
            "unbiased": unbiased[-1].item(),
            "aligned": aligned[-1].item(),
            "conflicting": conflicting[-1].item(),
        },
        "best_unbiased": unbiased[best].item(),
        "best_unbiased_after_epochs": best,
        "unbiased_by_epoch": [round(v, 4) for v in unbiased.tolist()],
    }


def run(
    checkout: Path,
    dataset: str,
    params: Any,
    paths: DataPaths,
    out: Path,
    seed: int,
    script: str = "train",
    epochs: int | None = None,
    device: str = "cpu",
    data_seed: int = 0,
) -> dict[str, Any]:
    import torch

    if not (checkout / f"{script}.py").is_file() or not (checkout / "config.py").is_file():
        raise SystemExit(f"{checkout} is not a checkout of alinlab/LfF (no {script}.py / config.py); clone it first")
    config = REFERENCE_CONFIGS[dataset]
    epochs = epochs or config["epochs"]
    data_dir = out / "data"
    tag = reference_tag(dataset, params)
    if (data_dir / tag).is_dir():
        print(f"reusing the export {data_dir / tag}")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        export(dataset, params, paths, data_dir, data_seed)
    main_tag = f"{tag}_{script}_seed{seed}"
    log_dir = out / f"log_{script}_seed{seed}"
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    with reference_environment(checkout):
        module = __import__(script)
        module.train(
            main_tag=main_tag,
            dataset_tag=tag,
            model_tag=config["model_tag"],
            data_dir=str(data_dir.resolve()),
            log_dir=str(log_dir.resolve()),
            device=device,
            target_attr_idx=0,
            bias_attr_idx=1,
            main_num_steps=config["steps_per_epoch"] * epochs,
            main_valid_freq=config["steps_per_epoch"],
            main_batch_size=256,
            main_optimizer_tag="Adam",
            main_learning_rate=1e-3,
            main_weight_decay=0.0,
        )
    result = torch.load(log_dir / "result" / main_tag / "result.th", weights_only=True)
    summary = {
        "script": script,
        "dataset": dataset,
        "reference_dataset_tag": tag,
        "seed": seed,
        "epochs": epochs,
        "steps_per_epoch": config["steps_per_epoch"],
        **summarise(result["valid/attrwise_accs"]),
    }
    target = out / f"summary_{script}_{dataset}_r{params.ratio:g}_s{seed}.json"
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(partial, target)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", required=True, help="a checkout of github.com/alinlab/LfF")
    parser.add_argument("--dataset", required=True, choices=sorted(REFERENCE_CONFIGS))
    parser.add_argument("--out", required=True, help="folder for the export, the reference's logs and the summary")
    parser.add_argument("--seed", type=int, default=0, help="torch/numpy/random seed of the run (default 0)")
    parser.add_argument("--script", choices=("train", "train_vanilla"), default="train")
    parser.add_argument("--epochs", type=int, help="epochs (default: the reference's, 100 or 200)")
    parser.add_argument("--device", default="cpu", help="torch device for the reference (default cpu)")
    add_dataset_arguments(parser, "assignment=random")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = dataset_params(args, args.dataset)
    summary = run(
        Path(args.checkout).expanduser().resolve(),
        args.dataset,
        params,
        DataPaths.resolve(args.data_root, args.cache_dir),
        Path(args.out).expanduser().resolve(),
        args.seed,
        args.script,
        args.epochs,
        args.device,
        args.data_seed,
    )
    last = summary["last"]
    print(
        f"reference {args.script}, {summary['reference_dataset_tag']}, seed {args.seed}: last evaluation "
        f"(after {summary['epochs_before_last_evaluation']} epochs) unbiased {last['unbiased']:.2f}, "
        f"aligned {last['aligned']:.2f}, conflicting {last['conflicting']:.2f}; best unbiased "
        f"{summary['best_unbiased']:.2f} after {summary['best_unbiased_after_epochs']} epochs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
