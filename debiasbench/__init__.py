"""DebiasBench: the Learning-from-Failure experiments and the methods compared against LfF, run as a
Ray Tune benchmark. One import name holds everything:

    debiasbench.benchmark   training, orchestration, result store, report, the paper as data
    debiasbench.methods     one module per debiasing method (the registry imports them all)
    debiasbench.datasets    the dataset generators and loaders
    debiasbench.models      the registered networks
    debiasbench.tools       measurement and maintenance scripts (python -m debiasbench.tools.X)
    debiasbench.cli         the command line (`debiasbench`, `python -m debiasbench`, run_all.py)

In a source checkout these subpackages are the repository's top-level folders (benchmark/,
methods/, ...); an installed wheel holds them inside this package (pyproject's package-dir
mapping, docs/architecture.md says why).
"""

from pathlib import Path as _Path

__version__ = "0.2.1"  # the one version source (pyproject reads it; trials record it)

# From a checkout, the subpackages live one folder up: make them importable under this name. An
# installed wheel has them here, and its parent is site-packages, which must never be searched.
_here = _Path(__file__).resolve().parent
if not (_here / "benchmark").is_dir() and (_here.parent / "benchmark" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 (the package's own __path__)
del _here, _Path
