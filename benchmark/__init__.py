"""DebiasBench: shared training, evaluation, orchestration, storage and reporting.

Layers point one way: the CLI (debiasbench.cli) -> grids -> runner (Ray) -> trainer -> methods/datasets/models.
The runner writes the result store; the report reads only the store and needs no torch.
"""

from debiasbench._layout import refuse_old_name

refuse_old_name(__name__)  # this folder imported by its old top-level name
