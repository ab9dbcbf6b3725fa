"""What REPAIR's stage 1 keeps: runs stage 1 (the example-weight min-max) of one REPAIR trial and
reports, for every variant's subset, the share of the training set it keeps, the share of the
bias-conflicting samples it keeps, and the bias-conflicting share of the subset itself. Bias labels
are read here for the analysis only; the method never sees them on Colored MNIST.

    python -m debiasbench.tools.repair_subset --ratio 99.5 [--seed 0] [--method-param weight_epochs=1000]

Why: REPAIR trains stage 3 on the subset, so it can only debias if the subset is far less biased
than the training set (docs/results.md, REPAIR at 99.5%). Stage 1 alone takes about 30 s per 200
weight epochs on one CPU core.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.setup import TrainEnv, set_up_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.cli import key_value
from debiasbench.datasets.base import DataPaths
from debiasbench.methods.repair import VARIANTS, select_subset


def subset_composition(kept: torch.Tensor, conflicting: torch.Tensor) -> dict[str, float]:
    """Shares in percent: of the training set kept, of its conflicting samples kept, and of the
    subset that is conflicting (NaN for an empty subset)."""
    kept, conflicting = kept.bool().cpu(), conflicting.bool().cpu()
    return {
        "kept_of_training_set": 100 * float(kept.float().mean()),
        "conflicting_kept": 100 * float(kept[conflicting].float().mean()) if conflicting.any() else float("nan"),
        "conflicting_share_of_subset": 100 * float(conflicting[kept].float().mean()) if kept.any() else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.tools.repair_subset", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="cmnist")
    parser.add_argument("--ratio", type=float, required=True, help="share of bias-aligned samples, e.g. 99.5")
    parser.add_argument("--difficulty", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="trial seed (stage 1 draws from it)")
    parser.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE", type=key_value)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    hparams = dict(args.method_param)
    config = TrialConfig(
        args.dataset,
        "repair",
        {"ratio": args.ratio, "difficulty": args.difficulty},
        hparams,
        trial_seed=args.seed,
    )
    trial = resolve_trial(config)
    env = TrainEnv(paths=DataPaths.resolve(args.data_root, args.cache_dir), device="cpu", num_threads=1)
    setup = set_up_trial(trial, env)
    conflicting = ~setup.data.aligned_mask(setup.train).cpu()
    started = time.perf_counter()
    setup.method.prepare()
    weights = setup.method.example_weights.cpu()
    print(
        f"{args.dataset} {args.ratio}% seed {args.seed}, {trial.method_hparams}: stage 1 took "
        f"{time.perf_counter() - started:.0f} s, bias estimate {float(setup.method.bias_estimate):.3f}"
    )
    print(
        f"mean weight: aligned {float(weights[~conflicting].mean()):.3f}, conflicting "
        f"{float(weights[conflicting].mean()):.3f}"
    )
    print(
        "variant  kept of N %  conflicting kept %  conflicting share of subset %  (training set: "
        f"{100 * float(conflicting.float().mean()):.2f}%)"
    )
    generator = torch.Generator().manual_seed(args.seed)
    targets = setup.train.targets.cpu()
    for variant in VARIANTS[:4]:
        variant_hparams = replace(setup.method.hparams, variant=variant)
        kept = select_subset(weights, targets, setup.data.num_classes, variant_hparams, generator)
        shares = subset_composition(kept, conflicting)
        print(
            f"{variant:>7}  {shares['kept_of_training_set']:>11.2f}  {shares['conflicting_kept']:>18.2f}  "
            f"{shares['conflicting_share_of_subset']:>29.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
