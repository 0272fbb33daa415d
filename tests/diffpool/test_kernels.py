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


def test_graclus_merges_two_cliques_joined_by_one_edge():
    from reprolab.diffpool.graclus import graclus_clusters, hard_assignments

    adjacency = np.zeros((8, 8))
    for block in (range(0, 4), range(4, 8)):
        for u in block:
            for v in block:
                adjacency[u, v] = float(u != v)
    adjacency[3, 4] = adjacency[4, 3] = 1.0
    ids = graclus_clusters(adjacency, 2)
    assert len(set(ids[:4])) == 1 and len(set(ids[4:])) == 1 and ids[0] != ids[4]
    assert graclus_clusters(np.zeros((3, 3)), 2).max() < 2  # isolated nodes fold into the available clusters
    adj = torch.from_numpy(adjacency).float()[None].repeat(2, 1, 1)
    mask = torch.ones(2, 8)
    mask[1, 6:] = 0
    adj[1, 6:, :] = 0
    adj[1, :, 6:] = 0
    s = hard_assignments(adj, mask, 2)
    assert torch.equal(s.sum(-1), mask)  # one cluster per real node, padded rows empty


def test_diffpool_det_pools_with_fixed_assignments_and_trains():
    from reprolab.diffpool.model import DiffPoolDet

    torch.manual_seed(0)
    adj = (torch.rand(3, 10, 10) > 0.6).float()
    adj = ((adj + adj.transpose(1, 2)) > 0).float() * (1 - torch.eye(10))
    x, mask = torch.randn(3, 10, 4), torch.ones(3, 10)
    model = DiffPoolDet(4, 2, 10, hidden=8, embed=8, assign_ratio=0.3, num_pool=2)
    out = model(x, adj, mask)
    assert out.logits.shape == (3, 2) and len(out.assignments) == 2
    assert torch.equal(out.assignments[0].sum(-1), mask)  # hard, complete assignment
    out.logits.sum().backward()
    again = model(x, adj, mask)
    assert all(torch.equal(a, b) for a, b in zip(out.assignments, again.assignments))  # deterministic
