"""Debiasing methods, one module each, registered by name (see methods/base.py)."""

from debiasbench._layout import refuse_old_name

refuse_old_name(__name__)  # this folder imported by its old top-level name

from debiasbench.methods.base import METHODS, Batch, Method, MethodContext, StepOutput, Supervision, register_method

__all__ = ["METHODS", "Batch", "Method", "MethodContext", "StepOutput", "Supervision", "register_method"]
