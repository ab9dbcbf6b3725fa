"""What the integrity checks cost (docs/faults.md): the result store's checksummed writes and its
verified "already complete" scan on a store of synthetic trial files, a full Colored MNIST cache
entry loaded with and without verification, and a checksummed checkpoint.

    python -m debiasbench.tools.integrity_cost [--data-root ../shared/data] [--trials 1000] [--epochs 100]

Trial files are shaped like a real LfF trial on Colored MNIST: two roles, `--epochs` epochs, per
epoch and role the summary metrics plus accuracy and count of each of the 100 (digit, colour)
groups on the test set and the training losses (about 430 rows per epoch). Timings are wall
seconds on a warm page cache (the files were just written), the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _best(fn, repeat: int) -> float:
    fn()  # warm-up (imports, allocator, page cache), not timed
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _trial_record(epochs: int):
    from debiasbench.benchmark.store import TrialRecord

    rng = np.random.default_rng(0)
    columns: dict[str, list] = {
        c: [] for c in ("epoch", "role", "split", "subset", "target", "bias", "metric", "value")
    }

    def add(epoch, role, split, subset, metric, value, target=None, bias=None):
        for name, item in zip(columns, (epoch, role, split, subset, target, bias, metric, float(value))):
            columns[name].append(item)

    for epoch in range(1, epochs + 1):
        for role in ("debiased", "biased"):
            for subset in ("all", "aligned", "conflicting"):
                for metric in ("accuracy", "sample_accuracy", "worst_group_accuracy"):
                    add(epoch, role, "test", subset, metric, rng.random())
            add(epoch, role, "test", "all", "loss", rng.random())
            for y in range(10):
                for b in range(10):
                    add(epoch, role, "test", "group", "accuracy", rng.random(), y, b)
                    add(epoch, role, "test", "group", "count", int(rng.integers(1, 200)), y, b)
            add(epoch, role, "train", "aligned", "loss", rng.random())
            add(epoch, role, "train", "conflicting", "loss", rng.random())
        add(epoch, "-", "train", "all", "seconds", 3.0 + rng.random())
    trial = {
        "dataset": "cmnist",
        "method": "lff",
        "supervision": "none",
        "predictor_role": "debiased",
        "roles": ["debiased", "biased"],
        "dataset_params": {"ratio": 99.0, "difficulty": 4},
        "method_hparams": {"q": 0.7, "ema_alpha": 0.7},
        "trial_seed": 0,
        "data_seed": 0,
        "hparams_seed": 0,
        "epochs": epochs,
        "protocol": "paper",
        "batch_size": 256,
        "lr": 0.001,
        "weight_decay": 0.0,
        "optimizer": "adam",
    }
    return TrialRecord(
        trial=trial,
        key="k",
        status="completed",
        metrics=columns,
        info={"code_version": "integrity-cost", "wall_time_s": 300.0, "seconds_per_epoch": 3.0},
    )


def measure_store(root: Path, trials: int, epochs: int, repeat: int) -> list[str]:
    from debiasbench.benchmark.store import ResultStore
    from debiasbench.benchmark.store.checksummed_parquet import parquet_bytes
    from debiasbench.benchmark.store.schema import _META_CHECKSUM

    store = ResultStore(root / "store")
    store.ensure_writable()
    record = _trial_record(epochs)
    base = store._trial_table(record)
    rows = base.num_rows

    def table_for(i: int) -> pa.Table:
        key = f"{i:020d}"
        table = base.set_column(base.schema.get_field_index("trial_key"), "trial_key", pa.array([key] * rows))
        return table.replace_schema_metadata({**base.schema.metadata, b"debiasbench.trial_key": key.encode()})

    sample = table_for(0)
    encode_plain = _best(lambda: pq.write_table(sample, pa.BufferOutputStream(), compression="zstd"), repeat)
    encode_checksummed = _best(lambda: parquet_bytes(sample), repeat)
    data = parquet_bytes(sample)
    size = len(data)

    started = time.perf_counter()
    for i in range(trials):
        store._atomic_write(table_for(i), "trials", f"{i:020d}.parquet")
    write_all = time.perf_counter() - started
    files = store._trial_files()
    total_mb = sum(os.path.getsize(f) for f in files) / 2**20

    def metadata_only():  # the scan before checksums: footers only
        return {pq.read_metadata(f).metadata[b"debiasbench.trial_key"] for f in files}

    verified = _best(lambda: store.statuses(), repeat)
    footer_only = _best(metadata_only, repeat)
    read_only = _best(lambda: [len(Path(f).read_bytes()) for f in files], repeat)

    # A store written before checksums: first scan decodes and stamps, later scans verify.
    legacy = ResultStore(root / "legacy")
    legacy.ensure_writable()
    for i in range(trials):
        table = table_for(i)
        meta = {k: v for k, v in table.schema.metadata.items() if k != _META_CHECKSUM}
        pq.write_table(
            table.replace_schema_metadata(meta), legacy._path("trials", f"{i:020d}.parquet"), compression="zstd"
        )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(legacy.statuses()) == trials
    first_legacy = time.perf_counter() - started
    assert all(_META_CHECKSUM in pq.read_metadata(f).metadata for f in legacy._trial_files())
    later_legacy = _best(lambda: legacy.statuses(), repeat)
    return [
        f"result store: {trials} trial files of {rows:,} rows ({epochs} epochs, 2 roles), {size / 1024:.0f} KB each, "
        f"{total_mb:.0f} MB in all",
        f"  write one file        {encode_plain * 1e3:8.1f} ms plain Parquet   {encode_checksummed * 1e3:8.1f} ms "
        f"with checksum (serialised twice + SHA-256)",
        f"  write {trials} files     {write_all:8.2f} s  (checksummed, fsynced, renamed into place)",
        f"  'already complete' scan {footer_only:6.2f} s  footers only (before)   {verified:6.2f} s  verified "
        f"(read every byte + SHA-256)   [{verified / trials * 1e3:.2f} ms/trial; reading the bytes alone "
        f"{read_only:.2f} s]",
        f"  pre-checksum store    {first_legacy:8.2f} s  first scan (full decode + stamp)   {later_legacy:6.2f} s "
        "later scans",
    ]


def measure_cache(root: Path, data_root: Path | None, repeat: int) -> list[str]:
    from debiasbench.datasets._cache import array_checksum, check_entry
    from debiasbench.datasets.base import DataPaths
    from debiasbench.datasets.cmnist import CMNISTParams, ColoredMNIST

    paths = DataPaths.resolve(data_root, root / "cache")
    paths = DataPaths(paths.data_root, root / "cache", allow_download=False)
    params = ColoredMNIST.canonical(CMNISTParams(ratio=99.0, difficulty=4))
    started = time.perf_counter()
    arrays = ColoredMNIST.arrays(params, paths, 0)
    build = time.perf_counter() - started
    (entry,) = (root / "cache" / "cmnist").iterdir()
    size_mb = sum(a.nbytes for a in arrays.values()) / 2**20
    checksums = _best(lambda: [array_checksum(a) for a in arrays.values()], repeat)

    meta = json.loads((entry / "meta.json").read_text())

    def unverified():  # the load before checksums: np.load + shape/dtype check
        for name in meta["arrays"]:
            np.load(entry / f"{name}.npy", allow_pickle=False)

    plain = _best(unverified, repeat)
    verified = _best(lambda: check_entry(entry), repeat)
    for spec in meta["arrays"].values():
        spec.pop("checksum")
    (entry / "meta.json").write_text(json.dumps(meta))
    started = time.perf_counter()
    check_entry(entry)  # pre-checksum entry: full read + stamp
    stamp = time.perf_counter() - started
    return [
        f"dataset cache: a full Colored MNIST entry (ratio 99, difficulty 4: 60,000 + 10,000 images), "
        f"{size_mb:.0f} MB in {len(arrays)} arrays (built in {build:.1f} s, checksums included)",
        f"  SHA-256 of every array {checksums:6.3f} s ({size_mb / checksums:.0f} MB/s)",
        f"  load                   {plain:6.3f} s unverified (before)   {verified:6.3f} s verified   "
        f"(+{verified - plain:.3f} s per load)",
        f"  pre-checksum entry     {stamp:6.3f} s once (full read + stamp)",
    ]


def measure_checkpoint(root: Path, repeat: int) -> list[str]:
    import io

    import torch
    from torchvision.models import resnet18

    from debiasbench.benchmark.training.checkpoint import load_checkpoint, save_checkpoint
    from debiasbench.benchmark.training.evaluation import MetricLog

    model = resnet18(weights=None)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()

    class Holder:
        def checkpoint_state(self):
            return {"module": model.state_dict(), "optimizers": {"main": optimizer.state_dict()}}

    path = root / "ckpt" / "last.pt"
    args = (Holder(), torch.Generator(), torch.Generator(), MetricLog(), [1.0])
    plain_path = root / "ckpt" / "plain.pt"
    plain_path.parent.mkdir(parents=True, exist_ok=True)
    plain_save = _best(lambda: torch.save(Holder().checkpoint_state(), plain_path), repeat)
    save = _best(lambda: save_checkpoint(path, "k", 1, *args), repeat)
    plain_load = _best(lambda: torch.load(io.BytesIO(plain_path.read_bytes()), weights_only=True), repeat)
    load = _best(lambda: load_checkpoint(path, "k"), repeat)
    size_mb = path.stat().st_size / 2**20
    return [
        f"checkpoint: ResNet-18 with Adam state, {size_mb:.0f} MB",
        f"  save {plain_save:6.3f} s torch.save (before)   {save:6.3f} s checksummed + fsync",
        f"  load {plain_load:6.3f} s torch.load (before)   {load:6.3f} s verified",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.tools.integrity_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data-root", type=Path, help="raw data holding MNIST/ (default: $DEBIAS_DATA_ROOT, ./data)")
    parser.add_argument("--trials", type=int, default=1000, help="synthetic trial files in the store (default 1000)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per synthetic trial (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the best is shown")
    parser.add_argument("--skip", action="append", default=[], choices=("store", "cache", "checkpoint"))
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="integrity-cost-"))
    try:
        lines = [f"integrity cost on {os.cpu_count()} CPU(s), temporary files under {root}"]
        if "store" not in args.skip:
            lines += measure_store(root, args.trials, args.epochs, args.repeat)
        if "cache" not in args.skip:
            lines += measure_cache(root, args.data_root, args.repeat)
        if "checkpoint" not in args.skip:
            lines += measure_checkpoint(root, args.repeat)
        print("\n".join(lines))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
