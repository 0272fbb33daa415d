"""WL subtree and WL optimal-assignment kernels: a hand-computed case and the histogram-intersection identity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reprolab.diffpool.kernels import _unary, initial_labels, kernel_matrix, select_and_test, wl_features


def _undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    both = pairs + [(v, u) for u, v in pairs]
    return torch.tensor(both, dtype=torch.long).T


def test_path_and_triangle_by_hand():
    edges = [_undirected([(0, 1), (1, 2)]), _undirected([(0, 1), (1, 2), (0, 2)])]
    labels = initial_labels([torch.ones(3, 1), torch.ones(3, 1)])
    features = wl_features(edges, labels, 1)
    # iteration 0: both graphs have three nodes labelled "a"; iteration 1: the path has two ends (a, {a}) and one
    # middle (a, {a, a}), the triangle three (a, {a, a}).
    wl = kernel_matrix(features, "wl", 1)
    oa = kernel_matrix(features, "wl_oa", 1)
    np.testing.assert_allclose(wl, [[9 + 5, 9 + 3], [9 + 3, 9 + 9]])
    np.testing.assert_allclose(oa, [[3 + 3, 3 + 1], [3 + 1, 3 + 3]])
    np.testing.assert_allclose(kernel_matrix(features, "wl", 0), [[9, 9], [9, 9]])
    with pytest.raises(ValueError, match="kernel"):
        kernel_matrix(features, "graphlet", 1)


def test_unary_features_give_histogram_intersection():
    counts = np.random.default_rng(0).integers(0, 5, size=(6, 4)).astype(float)
    phi = _unary(sp.csr_matrix(counts))
    expected = np.minimum(counts[:, None, :], counts[None, :, :]).sum(-1)
    np.testing.assert_allclose((phi @ phi.T).toarray(), expected)


def test_svm_selection_separates_rings_from_stars():
    rings = [_undirected([(i, (i + 1) % n) for i in range(n)]) for n in range(5, 15)]
    stars = [_undirected([(0, i) for i in range(1, n)]) for n in range(5, 15)]
    edges = rings + stars
    labels = initial_labels([torch.ones(int(e.max()) + 1, 1) for e in edges])
    features = wl_features(edges, labels, 2)
    kernels = {h: kernel_matrix(features, "wl", h) for h in (1, 2)}
    y = np.array([0] * 10 + [1] * 10)
    train, val, test = np.arange(0, 20, 2), np.array([1, 11]), np.array([3, 5, 13, 15])
    result = select_and_test(kernels, y, train, val, test)
    assert result.test_acc == 1.0 and result.iterations in (1, 2)
