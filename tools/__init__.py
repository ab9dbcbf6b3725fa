"""Measurement and inspection scripts (not tests): run each with `python -m debiasbench.tools.<name>`."""

from debiasbench._layout import refuse_old_name

refuse_old_name(__name__)  # this folder imported by its old top-level name
