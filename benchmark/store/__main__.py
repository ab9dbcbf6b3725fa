"""`python -m debiasbench.benchmark.store merge A B --into C`: result-store utilities on the command line."""

from __future__ import annotations

import gc
import sys

from debiasbench.benchmark.store.merge import merge_stores
from debiasbench.benchmark.store.schema import StoreError


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m debiasbench.benchmark.store", description="Result-store utilities."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("merge", help="merge stores made on different machines")
    merge.add_argument("sources", nargs="+", help="stores to merge (directories or URIs)")
    merge.add_argument("--into", required=True, help="destination store (created if absent)")
    compact = commands.add_parser("compact", help="copy a store with only the rows the tables and figures read")
    compact.add_argument("source", help="store to copy")
    compact.add_argument("--into", required=True, help="destination store (created if absent)")
    args = parser.parse_args(argv)
    if args.command == "compact":
        from debiasbench.benchmark.store.compact import compact_store

        try:
            done = compact_store(args.source, args.into)
        except StoreError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"compacted {len(done.written)} trial(s): {done.rows_before} rows -> {done.rows_after}")
        return 0
    try:
        report = merge_stores(args.sources, args.into)
    except StoreError as error:
        print(f"error: {error}")
        return 2
    print(
        f"copied {len(report.copied)}, dropped {len(report.duplicates)} identical duplicate(s), "
        f"upgraded {len(report.upgraded)} failed record(s), {len(report.conflict_lines)} conflict(s)"
    )
    for line in report.conflict_lines:
        print(f"  conflict: {line}")
    return 1 if report.conflict_lines else 0


if __name__ == "__main__":
    code = main()
    # Arrow's reader threads must be joined while Arrow is alive: left to the interpreter's final
    # teardown they can abort the process (SIGABRT, apache/arrow#34314) after the work is done.
    gc.collect()
    sys.exit(code)
