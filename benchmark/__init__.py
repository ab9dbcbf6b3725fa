"""DebiasBench: shared training, evaluation, orchestration, storage and reporting.

Layers point one way: the CLI (debiasbench.cli) -> grids -> runner (Ray) -> trainer -> methods/datasets/models.
The runner writes the result store; the report reads only the store and needs no torch.
"""

if not __name__.startswith("debiasbench."):  # this folder imported by its old top-level name
    raise ImportError(
        f"`{__name__}` is DebiasBench's folder, imported as `debiasbench.{__name__}` since the package has one "
        f"import name: write `from debiasbench.{__name__}... import ...` (docs/architecture.md)"
    )
