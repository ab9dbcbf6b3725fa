"""Debiasing methods, one module each, registered by name (see methods/base.py)."""

from methods.base import METHODS, Batch, Method, MethodContext, StepOutput, Supervision, register_method

__all__ = ["METHODS", "Batch", "Method", "MethodContext", "StepOutput", "Supervision", "register_method"]
