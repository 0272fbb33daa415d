"""Deterministic cluster assignments for DiffPool-Det (Ying et al. 2018, Sec. 4.1 / Table 1).

DiffPool-Det replaces the learned assignment ``S`` by one from a deterministic graph clustering algorithm
(Dhillon, Guan, Kulis; "Weighted graph cuts without eigenvectors", TPAMI 2007 -- Graclus). Graclus' coarsening
phase is used here: repeated normalised-cut heavy-edge matching, where an unmatched node ``u`` merges with the
unmatched neighbour ``v`` maximising ``w(u, v) (1/d(u) + 1/d(v))`` (``d`` = weighted degree); every pass about
halves the node count, and passes continue until at most ``clusters`` groups remain or nothing can merge.
Nodes are visited in index order (Graclus visits them in random order; a fixed order keeps the method
deterministic). Graclus' kernel k-means refinement of the coarsest partition is not run. When disconnected
parts leave more groups than ``clusters``, the surplus groups are folded in by index (``group mod clusters``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["graclus_clusters", "hard_assignments"]


def _matching_pass(weights: np.ndarray) -> np.ndarray:
    """One normalised-cut heavy-edge matching pass over a weighted adjacency; returns the new group of each node."""
    n = weights.shape[0]
    degree = weights.sum(axis=1)
    inverse = np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1.0), 0.0)
    group = np.full(n, -1, dtype=np.int64)
    count = 0
    for u in range(n):
        if group[u] >= 0:
            continue
        score = weights[u] * (inverse[u] + inverse)
        score[u] = 0.0
        score[group >= 0] = 0.0
        v = int(score.argmax()) if n > 1 else u
        group[u] = count
        if score[v] > 0:
            group[v] = count
        count += 1
    return group


def graclus_clusters(adjacency: np.ndarray, clusters: int) -> np.ndarray:
    """Cluster id (``0..k-1``, ``k <= clusters``) of every node of one graph's (weighted, symmetric) adjacency."""
    n = adjacency.shape[0]
    assignment = np.arange(n)
    weights = np.asarray(adjacency, dtype=np.float64).copy()
    np.fill_diagonal(weights, 0.0)
    while weights.shape[0] > clusters:
        group = _matching_pass(weights)
        k = int(group.max()) + 1
        if k == weights.shape[0]:  # nothing merged: only isolated parts are left
            break
        pool = np.zeros((weights.shape[0], k))
        pool[np.arange(weights.shape[0]), group] = 1.0
        weights = pool.T @ weights @ pool
        np.fill_diagonal(weights, 0.0)
        assignment = group[assignment]
    return assignment % clusters


def hard_assignments(adj: torch.Tensor, mask: torch.Tensor | None, clusters: int) -> torch.Tensor:
    """One-hot ``S [B, N, clusters]`` from :func:`graclus_clusters` per graph (padded rows stay zero)."""
    batch, n, _ = adj.shape
    out = torch.zeros(batch, n, clusters, dtype=adj.dtype, device=adj.device)
    sizes = mask.sum(dim=1).long().tolist() if mask is not None else [n] * batch
    dense = adj.detach().cpu().numpy()
    for b, size in enumerate(sizes):
        ids = torch.from_numpy(graclus_clusters(dense[b, :size, :size], clusters)).to(adj.device)
        out[b, torch.arange(size, device=adj.device), ids] = 1.0
    return out
