"""Does a stored trial reproduce on this machine? Retrains one stored trial in this process (no Ray,
nothing written to the store) and compares its per-epoch test accuracy with the stored values.

    python -m debiasbench.tools.rerun_trial STORE TRIAL_KEY [--epochs 3] [--threads 1] [--data-root DIR]

Prints, per epoch and role, the stored and the rerun test accuracy (%), the stored trial's CPU and
this one's, and the first epoch that differs. Exit 0 when every compared value is equal to the last
bit, 1 when one differs, 2 on bad input. A seed reproduces bit for bit on one CPU, not across CPUs
(docs/protocol.md); run with `ATEN_CPU_CAPABILITY=default` to see what torch's kernel level changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from debiasbench.benchmark.store import ResultStore, StoreError
from debiasbench.benchmark.store.schema import _META_KEY
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import ResolvedTrial
from debiasbench.datasets.base import DataPaths


def test_accuracy(rows: dict[str, list], epochs: int) -> dict[tuple[int, str], float]:
    """(epoch, role) -> test accuracy over the whole evaluation split, from long-format metric rows."""
    columns = zip(*(rows[name] for name in ("epoch", "role", "split", "subset", "metric", "value")))
    return {
        (int(epoch), role): float(value)
        for epoch, role, split, subset, metric, value in columns
        if split == "test" and subset == "all" and metric == "accuracy" and epoch <= epochs
    }


def stored_trial(store: ResultStore, key: str) -> tuple[ResolvedTrial, dict[str, list], str | None]:
    """The stored trial's configuration, its metric rows and the CPU it ran on (None: not recorded)."""
    paths = [path for path, meta in store.unique_files().items() if meta[_META_KEY].decode() == key]
    if not paths:
        raise StoreError(f"no trial {key!r} in {store.location!r}; the keys are the file names under trials/")
    frame = store.read_file(paths[0]).to_pandas()  # this trial's file only, verified against its checksum
    if frame["status"].iloc[0] != "completed":
        raise StoreError(f"trial {key} is {frame['status'].iloc[0]!r}, not completed: rerun it with run_all.py first")
    cpu = frame["cpu"].iloc[0]
    return (
        ResolvedTrial.from_json(frame["config"].iloc[0]),
        frame.to_dict("list"),
        cpu if isinstance(cpu, str) else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.tools.rerun_trial", description=__doc__.splitlines()[0]
    )
    parser.add_argument("store", help="the result store holding the trial")
    parser.add_argument("key", help="the trial key (a file name under STORE/trials/, without .parquet)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to retrain and compare (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the runner's default: 1)")
    parser.add_argument("--data-root", default=None, help="raw data (default: $DEBIAS_DATA_ROOT, else ./data)")
    parser.add_argument("--cache-dir", default=None, help="generated datasets (default: the user's cache)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        print("error: --epochs and --threads must be at least 1")
        return 2
    try:
        store = ResultStore(args.store)
        store.require_exists()
        trial, stored_rows, stored_cpu = stored_trial(store, args.key)
    except StoreError as error:
        print(f"error: {error}")
        return 2
    epochs = min(args.epochs, trial.epochs)
    env = TrainEnv(
        paths=DataPaths.resolve(args.data_root, args.cache_dir),
        device="cpu",
        num_threads=args.threads,
        save_predictions=False,
    )
    output = train_trial(dataclasses.replace(trial, epochs=epochs), env)
    stored, rerun = test_accuracy(stored_rows, epochs), test_accuracy(output.metrics, epochs)
    print(f"trial {args.key} ({trial.method}, {json.dumps(trial.dataset_params, sort_keys=True)})")
    print(f"stored on: {stored_cpu or 'unknown CPU (not recorded)'}; rerun on: {output.cpu}")
    differs = []
    for epoch, role in sorted(rerun):
        old, new = stored.get((epoch, role)), rerun[(epoch, role)]
        same = old == new
        differs += [] if same else [(epoch, role)]
        shown = "missing" if old is None else f"{100 * old:.3f}"
        print(f"epoch {epoch:3d} {role:>10}: stored {shown}  rerun {100 * new:.3f}  {'same' if same else 'DIFFERS'}")
    if differs:
        print(f"first difference at epoch {differs[0][0]} ({differs[0][1]})")
        return 1
    print(f"identical to the last bit over {epochs} epoch(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
