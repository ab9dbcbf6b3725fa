"""Debiasing methods, one module each, registered by name (see methods/base.py)."""

if not __name__.startswith("debiasbench."):  # this folder imported by its old top-level name
    raise ImportError(
        f"`{__name__}` is DebiasBench's folder, imported as `debiasbench.{__name__}` since the package has one "
        f"import name: write `from debiasbench.{__name__}... import ...` (docs/architecture.md)"
    )

from debiasbench.methods.base import METHODS, Batch, Method, MethodContext, StepOutput, Supervision, register_method

__all__ = ["METHODS", "Batch", "Method", "MethodContext", "StepOutput", "Supervision", "register_method"]
