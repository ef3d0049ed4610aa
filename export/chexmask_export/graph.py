"""The fixed landmark graph of HybridGNet as dense matrices.

The decoder's graph never changes, so its adjacency, its pooling/upsampling map
and the Chebyshev polynomial basis of its Laplacian are constants. Computing
them once here (float64) lets the exporter write every graph convolution as a
plain matmul, and lets tests check that against torch-geometric.
"""
from __future__ import annotations

import math

import numpy as np

from chexmask_rt.anatomy import ORGANS


def organ_sizes(level: int = 0) -> list[int]:
    """Node count of each organ; level 1 is the coarse graph (ceil(n/2))."""
    sizes = [n for _, n in ORGANS]
    for _ in range(level):
        sizes = [math.ceil(n / 2) for n in sizes]
    return sizes


def cycle_adjacency(sizes: list[int]) -> np.ndarray:
    """Adjacency of disjoint closed cycles, one per organ."""
    total = sum(sizes)
    a = np.zeros((total, total))
    start = 0
    for n in sizes:
        for i in range(n):
            j = (i + 1) % n
            a[start + i, start + j] = a[start + j, start + i] = 1.0
        start += n
    return a


def upsampling_matrix(fine: list[int], coarse: list[int]) -> np.ndarray:
    """U with x_fine = U @ x_coarse: even nodes copy, odd nodes average neighbours."""
    u = np.zeros((sum(fine), sum(coarse)))
    f0 = c0 = 0
    for n, m in zip(fine, coarse):
        for i in range(n):
            if i % 2 == 0:
                u[f0 + i, c0 + i // 2] = 1.0
            else:
                u[f0 + i, c0 + i // 2] += 0.5
                u[f0 + i, c0 + (i // 2 + 1) % m] += 0.5
        f0, c0 = f0 + n, c0 + m
    return u


def downsampling_matrix(fine: list[int], coarse: list[int]) -> np.ndarray:
    """D with x_coarse = D @ x_fine: coarse node j is fine node 2j (the nodes U copies)."""
    d = np.zeros((sum(coarse), sum(fine)))
    f0 = c0 = 0
    for n, m in zip(fine, coarse):
        for j in range(m):
            d[c0 + j, f0 + 2 * j] = 1.0
        f0, c0 = f0 + n, c0 + m
    return d


def scaled_laplacian(a: np.ndarray) -> np.ndarray:
    """PyG's ChebConv Laplacian for normalization='sym', lambda_max=2: -D^-1/2 A D^-1/2."""
    deg = a.sum(axis=1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    return -(inv_sqrt[:, None] * a * inv_sqrt[None, :])


def chebyshev_basis(a: np.ndarray, k: int) -> np.ndarray:
    """[k, n, n] stack T_0..T_{k-1} of the scaled Laplacian (T_0 = I)."""
    lap = scaled_laplacian(a)
    n = a.shape[0]
    basis = [np.eye(n)]
    if k > 1:
        basis.append(lap)
    while len(basis) < k:
        basis.append(2.0 * lap @ basis[-1] - basis[-2])
    return np.stack(basis[:k])


def fine_adjacency() -> np.ndarray:
    return cycle_adjacency(organ_sizes(0))


def coarse_adjacency() -> np.ndarray:
    return cycle_adjacency(organ_sizes(1))


def coarse_to_fine() -> np.ndarray:
    return upsampling_matrix(organ_sizes(0), organ_sizes(1))


def fine_to_coarse() -> np.ndarray:
    return downsampling_matrix(organ_sizes(0), organ_sizes(1))
