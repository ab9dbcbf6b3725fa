"""Record the registered method defaults in stored trials that predate them.

Since 0.2.1 every trial's configuration carries `method_defaults`, the method's registered default
hyper-parameters for its dataset, so the torch-free report can name a hyper-parameter a trial set
off them (for methods beyond the paper; the paper's own are judged against the paper). Trials
stored before that lack the record, and the report then claims nothing about their
hyper-parameters. This adds it, from today's registry, to every trial that lacks it:

    python -m debiasbench.tools.record_defaults results/reference/cmnist_extended

The record is not part of a trial's key, so keys, rows, status and run information (the original
`code_version` included) stay as they were; each file goes through the store's write path
(checksummed, atomic). A trial whose hyper-parameters name a field today's defaults lack ran on
other code: it is left alone and listed. Trials of methods the registry does not know (a plugin's)
are listed too; pass --plugin to load them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from debiasbench.benchmark.plugins import PluginError, load_plugins
from debiasbench.benchmark.store.rewrite import rewrite_config, stored_config
from debiasbench.benchmark.store.schema import StoreError
from debiasbench.benchmark.store.store import ResultStore
from debiasbench.methods.base import METHODS, default_hparams


@dataclasses.dataclass
class DefaultsReport:
    recorded: list[str] = dataclasses.field(default_factory=list)
    already: int = 0
    unknown_method: list[str] = dataclasses.field(default_factory=list)
    other_code: list[str] = dataclasses.field(default_factory=list)


def record_defaults(store_path: str, dry_run: bool = False) -> DefaultsReport:
    """Add `method_defaults` to every trial of the store that lacks it (see the module docstring)."""
    store = ResultStore(store_path)
    store.require_exists()
    report = DefaultsReport()
    for path in store.valid_files():
        config = stored_config(store, path)
        key = Path(path).stem
        if config.get("method_defaults") is not None:  # {}: recorded, the method has no hyper-parameters
            report.already += 1
            continue
        if config["method"] not in METHODS:
            report.unknown_method.append(f"{key} ({config['method']})")
            continue
        defaults = default_hparams(METHODS.get(config["method"]), config["dataset"])
        if set(config["method_hparams"]) - set(defaults):
            report.other_code.append(
                f"{key} ({config['method']}: {sorted(set(config['method_hparams']) - set(defaults))})"
            )
            continue
        if not dry_run:
            rewrite_config(store, path, {**config, "method_defaults": defaults})
        report.recorded.append(key)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.tools.record_defaults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("store", type=Path, help="the result store to complete in place")
    parser.add_argument(
        "--plugin", action="append", default=[], help="a module or .py file that registers more methods (repeatable)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be recorded, write nothing")
    args = parser.parse_args(argv)
    try:
        load_plugins(args.plugin)
        report = record_defaults(str(args.store), dry_run=args.dry_run)
    except (StoreError, PluginError) as error:  # no store, not writable, no such plugin: the message names the fix
        print(f"error: {error}")
        return 2
    verb = "would record" if args.dry_run else "recorded"
    print(f"{verb} the method defaults of {len(report.recorded)} trial(s); {report.already} had them")
    for title, keys in (
        ("unknown method (pass --plugin)", report.unknown_method),
        ("hyper-parameters today's defaults lack (other code; left alone)", report.other_code),
    ):
        if keys:
            print(f"{len(keys)} trial(s) skipped, {title}:")
            for key in keys:
                print(f"  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
