"""Shape metrics: voxel IoU, Chamfer distance, normal consistency, coverage / MMD, and interpolation validity.

Chamfer distance (protocol stated explicitly, since papers differ; see PAPERS.md user complaint IM-NET-pytorch
#11): shapes in the unit cube ``[-0.5, 0.5]^3``; ``n`` points sampled uniformly by area on each mesh;
``CD = mean_a min_b ||a - b||^2 + mean_b min_a ||a - b||^2`` (squared L2, sum of both directions), reported
×1000. Normal consistency: the mean absolute cosine between each sampled point's face normal and that of its
nearest neighbour on the other mesh, averaged over both directions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "chamfer_and_normals",
    "chamfer_distance",
    "chamfer_matrix",
    "coverage_mmd",
    "largest_component_share",
    "voxel_iou",
]


def voxel_iou(pred: np.ndarray, target: np.ndarray) -> float:
    """|pred ∧ target| / |pred ∨ target| of two boolean grids (1.0 when both are empty)."""
    pred, target = np.asarray(pred) > 0, np.asarray(target) > 0
    if pred.shape != target.shape:
        raise ValueError(f"grids differ in shape: {pred.shape} vs {target.shape}")
    union = np.logical_or(pred, target).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, target).sum() / union)


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric squared-L2 Chamfer distance between point sets (module docstring); inf if one is empty."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    return float(np.mean(d_ab**2) + np.mean(d_ba**2))


def chamfer_matrix(first: list[np.ndarray], second: list[np.ndarray]) -> np.ndarray:
    """:func:`chamfer_distance` between every pair of point sets (len(first), len(second)), building one k-d
    tree per point set instead of two per pair."""
    trees_a = [cKDTree(a) if len(a) else None for a in first]
    trees_b = [cKDTree(b) if len(b) else None for b in second]
    out = np.full((len(first), len(second)), np.inf)
    for i, (a, ta) in enumerate(zip(first, trees_a)):
        for j, (b, tb) in enumerate(zip(second, trees_b)):
            if ta is not None and tb is not None:
                out[i, j] = np.mean(tb.query(a)[0] ** 2) + np.mean(ta.query(b)[0] ** 2)
    return out


def chamfer_and_normals(a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray) -> tuple[float, float]:
    """(Chamfer distance, normal consistency) between oriented point sets ``(a, na)`` and ``(b, nb)``."""
    if len(a) == 0 or len(b) == 0:
        return float("inf"), 0.0
    d_ab, i_ab = cKDTree(b).query(a)
    d_ba, i_ba = cKDTree(a).query(b)
    chamfer = float(np.mean(d_ab**2) + np.mean(d_ba**2))
    cos_ab = np.abs(np.sum(na * nb[i_ab], axis=1))
    cos_ba = np.abs(np.sum(nb * na[i_ba], axis=1))
    return chamfer, float(0.5 * (cos_ab.mean() + cos_ba.mean()))


def coverage_mmd(distances: np.ndarray) -> tuple[float, float]:
    """Coverage and minimum matching distance from a (generated, reference) distance matrix (Achlioptas et al.).

    Coverage: the fraction of reference shapes that are the nearest neighbour of at least one generated shape.
    MMD: the mean over reference shapes of the distance to their closest generated shape.
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 2 or 0 in distances.shape:
        raise ValueError(f"need a non-empty (generated, reference) matrix, got shape {distances.shape}")
    matched = np.unique(distances.argmin(axis=1))
    return float(len(matched) / distances.shape[1]), float(distances.min(axis=0).mean())


def largest_component_share(grid: np.ndarray) -> float:
    """Share of occupied voxels in the largest 26-connected component (0.0 for an empty grid)."""
    occupied = np.asarray(grid) > 0
    total = int(occupied.sum())
    if total == 0:
        return 0.0
    labels, count = ndimage.label(occupied, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.reshape(-1))[1:]
    return float(sizes.max() / total)
