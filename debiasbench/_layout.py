"""The repository's folders that the package installs as its subpackages, and the error for an
import by a folder's old top-level name. Torch-free and import-free: the folders' own __init__
modules call it before anything else."""

from __future__ import annotations

# Checkout folder -> installed as debiasbench.<folder> (pyproject's [tool.setuptools.package-dir]).
FOLDERS = ("benchmark", "datasets", "methods", "models", "tools")


def refuse_old_name(name: str) -> None:
    """Raise the ImportError that names the new import when a folder is imported as `name` (its old
    top-level name) instead of `debiasbench.<name>`."""
    if name.startswith("debiasbench."):
        return
    shadowed = (
        "; if you meant Hugging Face `datasets`, this checkout's datasets/ folder shadows it when Python runs "
        "from the checkout's root: run from another folder"
        if name == "datasets"
        else ""
    )
    raise ImportError(
        f"`{name}` is DebiasBench's folder, imported as `debiasbench.{name}` since the package has one import "
        f"name: write `from debiasbench.{name}... import ...`{shadowed} (docs/architecture.md)"
    )
