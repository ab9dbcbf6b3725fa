"""Measurement and inspection scripts (not tests): run each with `python -m debiasbench.tools.<name>`."""

if not __name__.startswith("debiasbench."):  # this folder imported by its old top-level name
    raise ImportError(
        f"`{__name__}` is DebiasBench's folder, imported as `debiasbench.{__name__}` since the package has one "
        f"import name: write `from debiasbench.{__name__}... import ...` (docs/architecture.md)"
    )
