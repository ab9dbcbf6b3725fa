"""The Hilbert-Schmidt independence criterion used by ReBias (docs/methods.md#rebias): the unbiased
estimator HSIC_1 of Song et al. (2012) with Gaussian RBF kernels, and the median heuristic for the
kernel width. Helpers only; the method lives in methods/rebias.py."""

from __future__ import annotations

import torch


def squared_distances(features: torch.Tensor) -> torch.Tensor:
    """(m, m) squared Euclidean distances between the rows of the flattened features."""
    x = features.reshape(len(features), -1)
    sq = (x * x).sum(1)
    # Clamp: cancellation in |a|^2 + |b|^2 - 2ab can go slightly negative.
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)


def rbf_kernel(features: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))."""
    return torch.exp(-squared_distances(features) / (2.0 * sigma * sigma))


def hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """HSIC_1(K, L) for two (m, m) kernel matrices, m > 3:
    [tr(K~L~) + 1'K~1 1'L~1 / ((m-1)(m-2)) - 2/(m-2) 1'K~L~1] / (m(m-3)),
    with K~, L~ the kernels with their diagonals set to zero (properly, so the estimator is right
    for kernels whose diagonal is not constant too)."""
    m = k.shape[0]
    if m <= 3:
        raise ValueError(f"the unbiased HSIC estimator needs more than 3 samples, got {m}")
    off_diagonal = 1.0 - torch.eye(m, device=k.device, dtype=k.dtype)
    kt, lt = k * off_diagonal, l * off_diagonal
    trace = (kt * lt.T).sum()
    sums = kt.sum() * lt.sum() / ((m - 1) * (m - 2))
    cross = kt.sum(0) @ lt.sum(1)  # 1'K~L~1 in O(m^2)
    return (trace + sums - 2.0 / (m - 2) * cross) / (m * (m - 3))


def hsic_rbf(
    u: torch.Tensor, v: torch.Tensor, sigma_u: float | torch.Tensor, sigma_v: float | torch.Tensor
) -> torch.Tensor:
    """HSIC_1 between two feature batches with RBF kernels, computed in float32 even under
    autocast (exp of low-precision distances is too coarse for the estimator)."""
    with torch.autocast(u.device.type, enabled=False):
        return hsic_unbiased(rbf_kernel(u.float(), sigma_u), rbf_kernel(v.float(), sigma_v))


def median_sigma(distance_blocks: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(median squared distance) over the off-diagonal entries of per-batch distance matrices."""
    values = []
    for block in distance_blocks:
        m = block.shape[0]
        values.append(block[~torch.eye(m, dtype=torch.bool, device=block.device)])
    median = torch.cat(values).median()
    # A collapsed representation gives 0; keep the kernel finite (any width then gives HSIC 0).
    return median.clamp_min(1e-12).sqrt()
