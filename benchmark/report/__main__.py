"""`python -m benchmark.report RESULTS ...`: see benchmark/report/cli.py."""

import sys

from benchmark.report.cli import main

sys.exit(main())
