"""Shared by the corruption tests: the batch size and the per-image random streams."""

from debiasbench.datasets import corruptions as C

N = 12


def rngs(n: int = N, seed: int = 0, split: int = 0) -> list:
    return C.image_rngs(seed, split, range(n))
