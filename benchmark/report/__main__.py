"""`python -m debiasbench.benchmark.report RESULTS ...`: see benchmark/report/cli.py."""

import sys

from debiasbench.benchmark.report.cli import main

sys.exit(main())
