"""Re-key stored trials after a method gained a hyper-parameter whose default changes nothing.

A trial's key hashes its resolved configuration, so a new hyper-parameter (learned_mixin's
`bias_smoothing`) gives every configuration a new key and orphans the stored trials: a rerun would
train them again. When the stored runs behaved exactly as the new default does (check the code at
the trials' `code_version` against today's with `git log -p`), they are the same experiment, and
this rewrites each one under its resolved key with the parameter recorded at that value:

    python -m debiasbench.tools.rekey_trials results/reference/cmnist_extended --method learned_mixin \
        --hparam bias_smoothing=0.0

Only trials that lack the parameter are touched; their metrics, run information and original
`code_version` are kept (the record still says which code ran them). Each is written through the
store's own write path (checksummed, atomic) and the old file is removed afterwards. Document every
re-keying beside the store (results/README.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from debiasbench.benchmark.store.rewrite import rewrite_config, stored_config
from debiasbench.benchmark.store.schema import _META_KEY
from debiasbench.benchmark.store.store import ResultStore
from debiasbench.benchmark.trial import ResolvedTrial


def _value(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, json.loads(raw)


def rekey(store_path: str, method: str, hparam: str, value: object) -> list[tuple[str, str]]:
    """Rewrite every `method` trial without `hparam` under the key it resolves to with hparam=value;
    returns (old key, new key) pairs."""
    store = ResultStore(store_path)
    store.require_exists()
    moved = []
    for path, meta in store.valid_files().items():
        config = stored_config(store, path)
        if config["method"] != method or hparam in config["method_hparams"]:
            continue
        config["method_hparams"] = {**config["method_hparams"], hparam: value}
        trial = ResolvedTrial.from_json(json.dumps(config))
        old = meta[_META_KEY].decode()
        moved.append((old, rewrite_config(store, path, json.loads(trial.to_json()), key=trial.key)))
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="the result store to rewrite in place")
    parser.add_argument("--method", required=True, help="the method whose trials lack the hyper-parameter")
    parser.add_argument("--hparam", required=True, type=_value, metavar="NAME=VALUE", help="its default value (JSON)")
    args = parser.parse_args(argv)
    name, value = args.hparam
    moved = rekey(str(args.store), args.method, name, value)
    for old, new in moved:
        print(f"{old} -> {new}")
    print(f"{len(moved)} trial(s) of {args.method} re-keyed with {name}={value!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
