"""The prepared GPU check: one short epoch of every (dataset kind, method) pair of the paper grid,
on synthetic data shaped like each dataset (tools/gpu_check_data.py), through every GPU path of the
trainer: device-resident data in fp32, bf16 autocast, channels-last; then four trials sharing one
GPU through Ray's fractional resources. Checks that every stored number is finite and prints
seconds per epoch and peak device memory per kind in one table. Exit status 1 on any failure.

    python -m debiasbench.tools.gpu_check                        # on a GPU machine: realistic sizes
    python -m debiasbench.tools.gpu_check --device cpu --tiny    # anywhere (the tests run this)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.paper.grids import build_grid
from debiasbench.benchmark.plugins import load_plugins
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths

PLUGIN = str(Path(__file__).with_name("gpu_check_data.py"))
FAMILY = {"cmnist": "cmnist", "ccifar1": "ccifar", "ccifar2": "ccifar", "celeba": "celeba", "bar": "bar"}
PATHS = {"fp32": {}, "bf16": {"mixed_precision": True}, "channels_last": {"channels_last": True}}
# (n_train, n_test, ResNet-18 input size): realistic on a GPU, small enough for a CPU test run.
SIZES = {
    "gpu": {
        "cmnist": (60000, 10000, 0),
        "ccifar": (50000, 10000, 0),
        "celeba": (16384, 2048, 224),
        "bar": (1941, 654, 224),
    },
    # 256 training samples: one full batch, so drop_last methods (HEX, ReBias) take a step.
    "tiny": {"cmnist": (256, 64, 0), "ccifar": (256, 64, 0), "celeba": (256, 64, 32), "bar": (256, 64, 32)},
}


def paper_kinds() -> list[tuple[str, str, dict]]:
    """(dataset kind, method, first hyper-parameter variant) of every pair in the paper grid."""
    seen: dict[tuple[str, str], dict] = {}
    for config in build_grid("paper", seeds=(0,)):
        seen.setdefault((FAMILY[config.dataset], config.method), dict(config.method_hparams))
    return [(kind, method, hparams) for (kind, method), hparams in seen.items()]


def check_one(kind: str, method: str, hparams: dict, path: str, device: str, sizes: dict, root: Path) -> dict:
    n_train, n_test, resolution = sizes[kind]
    params = {"kind": kind, "n_train": n_train, "n_test": n_test, "resolution": resolution or 224}
    trial = resolve_trial(TrialConfig("synthetic", method, params, method_hparams=hparams, epochs=1))
    env = TrainEnv(paths=DataPaths(root, root / "cache"), device=device, save_predictions=False, **PATHS[path])
    output = train_trial(trial, env)
    values = [v for v, m in zip(output.metrics["value"], output.metrics["metric"]) if m != "seconds"]
    finite = all(math.isfinite(v) for v in values)
    return {"seconds": output.seconds_per_epoch, "memory_mb": output.peak_memory_mb, "finite": finite}


def shared_device_check(device: str, root: Path) -> str:
    """Four trials at once on one device: 0.25 GPU each (0.5 CPU each without a GPU)."""
    from debiasbench.benchmark.experiments.driver import RunOptions, run_grid

    gpu = device.startswith("cuda")
    trials = [
        TrialConfig(
            "synthetic", "vanilla", {"kind": "cmnist", "n_train": 4096, "n_test": 1024}, epochs=2, trial_seed=seed
        )
        for seed in range(4)
    ]
    options = RunOptions(
        results=str(root / "store"),
        data_root=str(root),
        cache_dir=str(root / "cache"),
        cpus_per_trial=0.25 if gpu else 0.5,
        gpus_per_trial=0.25 if gpu else 0.0,
        device=device,
        plugins=(PLUGIN,),
        progress="off",
        num_cpus=None if gpu else 2,
    )
    started = time.perf_counter()
    summary = run_grid(trials, options)
    ok = len(summary.completed) == 4 and not summary.failed
    return (
        f"{'ok' if ok else 'FAILED'}: {len(summary.completed)}/4 trials completed sharing one "
        f"{'GPU (0.25 each)' if gpu else 'CPU pool (0.5 CPU each)'} in {time.perf_counter() - started:.1f} s"
        + (f"; failed: {summary.failed}" if summary.failed else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="small synthetic sizes (CPU test runs)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {', '.join(PATHS)}")
    parser.add_argument("--kinds", help="only these dataset kinds, e.g. cmnist,ccifar")
    parser.add_argument("--methods", help="only these methods, e.g. vanilla,lff")
    parser.add_argument("--no-shared", action="store_true", help="skip the four-trials-on-one-device check")
    args = parser.parse_args(argv)
    load_plugins([PLUGIN])
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown path(s) {sorted(unknown)}; choose from {', '.join(PATHS)}")
    sizes = SIZES["tiny" if args.tiny else "gpu"]
    kinds = [
        k
        for k in paper_kinds()
        if (not args.kinds or k[0] in args.kinds.split(",")) and (not args.methods or k[1] in args.methods.split(","))
    ]
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}; {len(kinds)} kinds x {len(paths)} paths")
    if not args.device.startswith("cuda"):
        print("note: bf16 autocast and channels-last apply on CUDA only; on the CPU those rows repeat fp32")
    failures = 0
    print(f"{'kind':<8} {'method':<11} {'path':<14} {'s/epoch':>9} {'peak MiB':>10}  finite")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, method, hparams in kinds:
            for path in paths:
                try:
                    r = check_one(kind, method, hparams, path, args.device, sizes, Path(tmp))
                    failures += not r["finite"]
                    print(
                        f"{kind:<8} {method:<11} {path:<14} {r['seconds']:>9.3f} {r['memory_mb']:>10.0f}  "
                        f"{'yes' if r['finite'] else 'NO'}",
                        flush=True,
                    )
                except Exception as error:  # one broken kind must not hide the others
                    failures += 1
                    print(f"{kind:<8} {method:<11} {path:<14} {'error':>9} {'':>10}  {type(error).__name__}: {error}")
                    traceback.print_exc(file=sys.stderr)
        if not args.no_shared:
            line = shared_device_check(args.device, Path(tmp))
            failures += not line.startswith("ok")
            print("shared device:", line)
    print("all checks passed" if not failures else f"{failures} check(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
