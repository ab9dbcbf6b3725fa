"""Seconds per epoch of Vanilla and LfF on full Colored MNIST through the suite's trainer, against
a plain PyTorch "floor" loop in the same process (same MLP, batch 256, data in memory, no
evaluation), on CPU and, when available, on GPU; plus Ray's per-trial start-up overhead.

    python -m debiasbench.tools.epoch_speed --data-root ../shared/data [--epochs 3] [--threads 2] [--ray]

Timings are medians over epochs after the first (warm-up). The suite's epoch includes what the
floor loop leaves out: per-epoch evaluation of every role on the 10,000 test images, the group
metrics, aligned/conflicting loss logging and the checkpoint write.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.base import DataPaths
from debiasbench.datasets.cmnist import ColoredMNIST
from debiasbench.models import build_model


def floor_epoch_seconds(
    images: torch.Tensor, targets: torch.Tensor, num_models: int, epochs: int, device: torch.device
) -> float:
    """Plain loop: shuffle, slice, float, forward, CE, backward, Adam step for each model."""
    torch.manual_seed(0)
    models = [build_model("mlp", 10, in_features=3 * 28 * 28).to(device) for _ in range(num_models)]
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    images, targets = images.to(device), targets.to(device)
    times = []
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(len(targets), device=device)
        for i in range(0, len(order), 256):
            index = order[i : i + 256]
            x, y = images[index].float() / 255.0, targets[index]
            for model, optimizer in zip(models, optimizers):
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def suite_epoch_seconds(method: str, epochs: int, paths: DataPaths, device: str, threads: int) -> float:
    trial = resolve_trial(TrialConfig("cmnist", method, {"ratio": 99.5}, epochs=epochs))
    with tempfile.TemporaryDirectory() as tmp:
        env = TrainEnv(paths=paths, device=device, num_threads=threads, checkpoint_dir=Path(tmp))
        seconds: list[float] = []
        train_trial(trial, env, on_epoch=lambda summary: seconds.append(summary["seconds"]))
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def ray_overhead(paths: DataPaths, trials: int) -> tuple[float, float]:
    """(ray.init seconds, per-trial overhead seconds) from 1-epoch toy trials through the runner."""
    import ray

    from debiasbench.benchmark.experiments.driver import RunOptions, run_grid
    from debiasbench.benchmark.store import ResultStore

    plugin = str(Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "toy_plugin.py")
    start = time.perf_counter()
    ray.init(address="local", num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    init_seconds = time.perf_counter() - start
    ray.shutdown()
    with tempfile.TemporaryDirectory() as tmp:
        configs = [TrialConfig("toy", "vanilla", epochs=1, trial_seed=s) for s in range(trials)]
        options = RunOptions(
            results=tmp,
            data_root=str(paths.data_root),
            cache_dir=str(paths.cache_dir),
            num_cpus=1,
            device="cpu",
            plugins=(plugin,),
            progress="off",
        )
        start = time.perf_counter()
        run_grid(configs, options)
        wall = time.perf_counter() - start
        training = ResultStore(tmp).trials()["wall_time_s"].sum()
    return init_seconds, (wall - init_seconds - training) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--ray", action="store_true", help="also measure Ray's per-trial start-up overhead")
    parser.add_argument("--ray-trials", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = DataPaths.resolve(args.data_root, args.cache_dir)
    data = ColoredMNIST.load(ColoredMNIST.make_params({"ratio": 99.5}), paths)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.epochs} epochs (median after warm-up)")
    for device in devices:
        floor1 = floor_epoch_seconds(data.train.images, data.train.targets, 1, args.epochs, torch.device(device))
        floor2 = floor_epoch_seconds(data.train.images, data.train.targets, 2, args.epochs, torch.device(device))
        vanilla = suite_epoch_seconds("vanilla", args.epochs, paths, device, args.threads)
        lff = suite_epoch_seconds("lff", args.epochs, paths, device, args.threads)
        print(f"[{device}] floor loop, 1 model : {floor1:7.3f} s/epoch")
        print(f"[{device}] floor loop, 2 models: {floor2:7.3f} s/epoch")
        print(f"[{device}] suite vanilla       : {vanilla:7.3f} s/epoch  ({vanilla / floor1:.2f}x the 1-model floor)")
        print(
            f"[{device}] suite LfF           : {lff:7.3f} s/epoch  "
            f"({lff / floor2:.2f}x the 2-model floor; target <= 1.25x)"
        )
    if args.ray:
        init_seconds, per_trial = ray_overhead(paths, args.ray_trials)
        print(
            f"[ray] embedded ray.init: {init_seconds:.1f} s; per-trial overhead beyond training: {per_trial:.1f} s "
            f"(over {args.ray_trials} one-epoch toy trials, 1 CPU)"
        )


if __name__ == "__main__":
    main()
