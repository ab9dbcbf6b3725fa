"""DebiasBench: shared training, evaluation, orchestration, storage and reporting.

Layers point one way: run_all.py -> grids -> runner (Ray) -> trainer -> methods/datasets/models.
The runner writes the result store; the report reads only the store and needs no torch.
"""

__version__ = "0.1.0"
