"""`python -m debiasbench ...`: the same command line as `debiasbench` and `python run_all.py`."""

import sys

from debiasbench.cli import main

sys.exit(main())
