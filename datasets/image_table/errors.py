"""image_table's errors for a table, its images or missing files (parameter checks raise plain
ValueErrors); each message names the row or file and the fix."""

from __future__ import annotations

from debiasbench.datasets.base import DataNotFoundError


class ImageTableError(ValueError):
    """The table, its images or the parameters cannot make a dataset; the message says why and how to fix it."""


class ImageTableNotFoundError(DataNotFoundError):
    """The root, the table, the array file or an image file is missing; the message names it."""
