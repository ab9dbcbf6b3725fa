#!/usr/bin/env python
"""DebiasBench from a source checkout: `python run_all.py --grid quick` is `debiasbench --grid quick`
(the installed command) and `python -m debiasbench`. The command line lives in debiasbench/cli.py."""

import sys

from debiasbench.cli import build_parser, key_value, main  # noqa: F401 (run_all.main etc. stay importable)

if __name__ == "__main__":
    sys.exit(main())
