"""Graph kernels: WL subtree, WL-OA, shortest-path and graphlet, on hand-computed cases; SVM selection."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reprolab.diffpool.kernels import (
    _unary,
    graphlet3_features,
    graphlet4_features,
    initial_labels,
    kernel_matrix,
    linear_kernel,
    select_and_test,
    shortest_path_features,
    wl_features,
)


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


def test_shortest_path_features_by_hand():
    # path a-b-a (labels 0,1,0): pairs (0,1) d=1 twice, (0,0) d=2 once; triangle a-a-b: (0,0) d=1, (0,1) d=1 twice.
    # A fourth isolated node in the triangle graph adds no connected pair.
    edges = [_undirected([(0, 1), (1, 2)]), _undirected([(0, 1), (1, 2), (0, 2)])]
    labels = [np.array([0, 1, 0]), np.array([0, 0, 1, 1])]
    phi = shortest_path_features(edges, labels, [3, 4]).toarray()
    assert phi.sum(1).tolist() == [3, 3]
    kernel = linear_kernel(phi)
    # shared features: ({0,1}, 1) counted 2 and 2 -> 4; ({0,0}, 2) only in the path; ({0,0}, 1) only in the triangle
    np.testing.assert_allclose(kernel, [[2 * 2 + 1, 4], [4, 1 + 2 * 2]])


def test_graphlet3_counts_match_enumeration():
    from itertools import combinations

    rng = np.random.default_rng(1)
    n = 9
    pairs = [(u, v) for u, v in combinations(range(n), 2) if rng.random() < 0.35]
    edge_set = set(pairs)
    expected = np.zeros(4)
    for triple in combinations(range(n), 3):
        expected[sum((a, b) in edge_set for a, b in combinations(triple, 2))] += 1
    phi = graphlet3_features([_undirected(pairs)], [n])
    np.testing.assert_allclose(phi[0], expected / expected.sum())
    triangle = graphlet3_features([_undirected([(0, 1), (1, 2), (0, 2)])], [3])
    np.testing.assert_allclose(triangle[0], [0, 0, 0, 1])


def test_graphlet4_counts_match_enumeration_and_classes():
    from itertools import combinations

    from reprolab.diffpool.kernels import _graphlet_classes

    assert _graphlet_classes(3)[1] == 4 and _graphlet_classes(4)[1] == 11  # non-isomorphic graphs on 3 / 4 nodes
    rng = np.random.default_rng(2)
    n = 8
    pairs = [(u, v) for u, v in combinations(range(n), 2) if rng.random() < 0.4]
    edge_set = set(pairs)
    # the number of edges is an isomorphism invariant: the class histogram, summed per edge count, must match
    lookup, _ = _graphlet_classes(4)
    edges_of_class = {int(lookup[code]): bin(code).count("1") for code in range(64)}
    expected = np.zeros(7)
    for quad in combinations(range(n), 4):
        expected[sum((a, b) in edge_set for a, b in combinations(quad, 2))] += 1
    phi = graphlet4_features([_undirected(pairs)], [n])[0]
    by_edges = np.zeros(7)
    for cls, freq in enumerate(phi):
        by_edges[edges_of_class[cls]] += freq
    np.testing.assert_allclose(by_edges, expected / expected.sum())
    # a 4-cycle and a 4-path differ (same edge count 4 vs 3 aside, the star and path with 3 edges too)
    star = graphlet4_features([_undirected([(0, 1), (0, 2), (0, 3)])], [4])[0]
    path = graphlet4_features([_undirected([(0, 1), (1, 2), (2, 3)])], [4])[0]
    assert star.argmax() != path.argmax()


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
