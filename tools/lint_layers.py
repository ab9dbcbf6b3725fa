"""Check the layer contracts (pyproject's [tool.importlinter]) on the layout the wheel installs.

    python -m debiasbench.tools.lint_layers          # what CI runs; exit status 1 on a broken contract

import-linter (grimp) reads a package from its folder, but in a checkout `debiasbench`'s
subpackages are the repository's top-level folders (benchmark/, methods/, ...), joined to it at
import time (debiasbench/__init__.py). So this copies them into a temporary `debiasbench/` tree
exactly as pyproject's package-dir mapping installs them and runs `lint-imports` there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from debiasbench._layout import FOLDERS

REPO = Path(__file__).resolve().parents[1]


def package_dirs(pyproject: Path) -> dict[str, str]:
    """pyproject's [tool.setuptools.package-dir]: installed package name -> checkout folder."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the mapping as written in pyproject.toml
        return {f"debiasbench.{name}": name for name in FOLDERS}
    with pyproject.open("rb") as handle:
        return tomllib.load(handle)["tool"]["setuptools"]["package-dir"]


def installed_layout(repo: Path, into: Path) -> Path:
    """A copy of the package as the wheel lays it out, under INTO; returns INTO."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(repo / "debiasbench", into / "debiasbench", ignore=ignore)
    for package, folder in package_dirs(repo / "pyproject.toml").items():
        shutil.copytree(repo / folder, into / Path(*package.split(".")), ignore=ignore)
    return into


def main(argv: list[str] | None = None) -> int:
    if argv:
        print("usage: python -m debiasbench.tools.lint_layers (no arguments)", file=sys.stderr)
        return 2
    lint = shutil.which("lint-imports")
    if lint is None:
        print("error: lint-imports not found; install the test extra: pip install -e '.[test]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="debiasbench-layers-") as scratch:
        root = installed_layout(REPO, Path(scratch))
        env = {**os.environ, "PYTHONPATH": str(root)}  # this copy, not the checkout or an installed one
        command = [lint, str(REPO / "pyproject.toml"), "--no-cache"]
        return subprocess.run(command, cwd=root, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
