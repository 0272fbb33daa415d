"""Weisfeiler-Lehman graph-kernel baselines of DiffPool's Table 1, with an SVM on the precomputed kernel.

* ``wl``: the WL subtree kernel (Shervashidze et al., JMLR 2011, Eq. 3 with the subtree base kernel):
  ``k(G, G') = sum_{i=0..h} <phi_i(G), phi_i(G')>`` where ``phi_i`` counts the labels of WL iteration ``i``.
* ``wl_oa``: the WL optimal-assignment kernel (Kriege, Giscard, Wilson; NeurIPS 2016, Sec. 4): the same label
  hierarchy, compared by histogram intersection, ``k(G, G') = sum_i sum_l min(phi_i(G)_l, phi_i(G')_l)``.
  Computed exactly as a linear kernel on "unary" features: ``min(a, b) = sum_{t >= 1} [a >= t][b >= t]``, so
  each count ``c`` becomes ``c`` indicator columns and the kernel is a sparse product.

* ``sp``: the shortest-path kernel (Borgwardt & Kriegel, ICDM 2005) with the delta kernel on (endpoint labels,
  path length), the form the graph-kernel benchmarks run: ``phi(G)`` counts, over all connected node pairs
  ``u < v``, the triples ``({l(u), l(v)}, d(u, v))``; ``k = <phi(G), phi(G')>``.
* ``graphlet``: the graphlet kernel (Shervashidze et al., AISTATS 2009) with all graphlets of size 3 or 4,
  counted exactly (no sampling): ``phi(G)`` is the normalised frequency of the 4 three-node (or 11 four-node)
  graphs among all node triples (quadruples); ``k = <phi(G), phi(G')>``. It ignores node labels, as in that paper.

As in the kernel papers' protocol, the number of iterations ``h`` (WL kernels only) and the SVM's ``C`` are
chosen on held-out data (here: the fold's validation split, the same one the neural models use to pick their
epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "KERNELS",
    "KernelResult",
    "graphlet3_features",
    "graphlet4_features",
    "initial_labels",
    "kernel_matrix",
    "linear_kernel",
    "select_and_test",
    "shortest_path_features",
    "wl_features",
]

WL_KERNELS = ("wl", "wl_oa")
KERNELS = (*WL_KERNELS, "sp", "graphlet")
ITERATIONS = (1, 2, 3, 4, 5)
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def initial_labels(x: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Discrete starting labels: identical feature rows share a label (one-hot node labels, degrees, ...)."""
    rows = torch.cat([xi.to(torch.float64) for xi in x]).numpy()
    _, codes = np.unique(rows, axis=0, return_inverse=True)
    codes = codes.reshape(-1)
    bounds = np.cumsum([0] + [len(xi) for xi in x])
    return [codes[bounds[g] : bounds[g + 1]] for g in range(len(x))]


def _refine(edges: Sequence[torch.Tensor], labels: list[np.ndarray], table: dict) -> list[np.ndarray]:
    """One WL step: new label = compressed (own label, sorted multiset of neighbour labels)."""
    refined = []
    for edge_index, own in zip(edges, labels):
        src, dst = edge_index.numpy()
        neighbours: list[list[int]] = [[] for _ in range(len(own))]
        for u, v in zip(src.tolist(), dst.tolist()):
            neighbours[v].append(int(own[u]))
        new = np.empty(len(own), dtype=np.int64)
        for v, around in enumerate(neighbours):
            signature = (int(own[v]), tuple(sorted(around)))
            new[v] = table.setdefault(signature, len(table))
        refined.append(new)
    return refined


def wl_features(edges: Sequence[torch.Tensor], labels: list[np.ndarray], iterations: int) -> list[sp.csr_matrix]:
    """``phi_0 .. phi_h``: one sparse ``G x L_i`` label-count matrix per WL iteration (shared label tables)."""
    features = []
    current = labels
    for i in range(iterations + 1):
        if i:
            current = _refine(edges, current, {})
        width = int(max(int(c.max()) for c in current if len(c)) + 1)
        rows = np.concatenate([np.full(len(c), g) for g, c in enumerate(current)])
        cols = np.concatenate(current)
        counts = sp.coo_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(current), width)).tocsr()
        counts.sum_duplicates()
        features.append(counts)
    return features


def _unary(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Expand count ``c`` of column ``l`` into indicator columns ``(l, 1..c)``: <u(a), u(b)> = sum min(a, b)."""
    coo = counts.tocoo()
    depth = int(coo.data.max()) if coo.nnz else 1
    repeats = coo.data.astype(np.int64)
    rows = np.repeat(coo.row, repeats)
    base = np.repeat(coo.col * depth, repeats)
    offsets = np.concatenate([np.arange(r) for r in repeats]) if len(repeats) else np.zeros(0, np.int64)
    shape = (counts.shape[0], counts.shape[1] * depth)
    return sp.csr_matrix((np.ones(len(rows)), (rows, base + offsets)), shape=shape)


def kernel_matrix(features: list[sp.csr_matrix], kind: str, iterations: int) -> np.ndarray:
    """The ``G x G`` WL (subtree) or WL-OA kernel summed over iterations ``0..iterations``."""
    if kind not in WL_KERNELS:
        raise ValueError(f"kernel must be one of {WL_KERNELS}, got {kind!r}")
    total = np.zeros((features[0].shape[0],) * 2)
    for counts in features[: iterations + 1]:
        phi = _unary(counts) if kind == "wl_oa" else counts
        total += (phi @ phi.T).toarray()
    return total


def _adjacency(edge_index: torch.Tensor, num_nodes: int) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency without self-loops (TU edge lists hold both directions; duplicates collapse)."""
    src, dst = edge_index.numpy()
    keep = src != dst
    matrix = sp.coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(num_nodes, num_nodes))
    matrix = ((matrix + matrix.T) > 0).astype(np.float64)
    return sp.csr_matrix(matrix)


def shortest_path_features(
    edges: Sequence[torch.Tensor], labels: list[np.ndarray], num_nodes: Sequence[int]
) -> sp.csr_matrix:
    """``G x F`` counts of ``({l(u), l(v)}, d(u, v))`` over connected pairs ``u < v`` (unweighted BFS lengths)."""
    from scipy.sparse.csgraph import shortest_path

    num_labels = int(max((int(c.max()) for c in labels if len(c)), default=0)) + 1
    keys_per_graph = []
    for edge_index, own, n in zip(edges, labels, num_nodes):
        distances = shortest_path(_adjacency(edge_index, n), method="D", unweighted=True)
        u, v = np.triu_indices(n, k=1)
        length = distances[u, v]
        connected = np.isfinite(length)
        low = np.minimum(own[u[connected]], own[v[connected]]).astype(np.int64)
        high = np.maximum(own[u[connected]], own[v[connected]]).astype(np.int64)
        keys_per_graph.append((low * num_labels + high) * (max(num_nodes) + 1) + length[connected].astype(np.int64))
    all_keys = np.concatenate(keys_per_graph) if keys_per_graph else np.zeros(0, np.int64)
    _, columns = np.unique(all_keys, return_inverse=True)
    rows = np.concatenate([np.full(len(keys), g) for g, keys in enumerate(keys_per_graph)])
    width = int(columns.max()) + 1 if len(columns) else 1
    counts = sp.coo_matrix((np.ones(len(rows)), (rows, columns.reshape(-1))), shape=(len(keys_per_graph), width))
    return counts.tocsr()


def graphlet3_features(edges: Sequence[torch.Tensor], num_nodes: Sequence[int]) -> np.ndarray:
    """``G x 4`` frequencies of the node triples spanning 0, 1, 2 and 3 edges (exact, from degree and A^3).

    triangles ``T = trace(A^3) / 6``; open paths ``P = sum_v C(d_v, 2) - 3T``; triples with one edge
    ``E = m (n - 2) - 2P - 3T`` (each edge with every third node, minus the triples counted once per edge);
    empty triples are the rest of ``C(n, 3)``.
    """
    rows = []
    for edge_index, n in zip(edges, num_nodes):
        adjacency = _adjacency(edge_index, n)
        degree = np.asarray(adjacency.sum(1)).reshape(-1)
        edges_count = degree.sum() / 2.0
        triangles = (adjacency @ adjacency).multiply(adjacency).sum() / 6.0
        paths = (degree * (degree - 1) / 2.0).sum() - 3.0 * triangles
        single = edges_count * (n - 2) - 2.0 * paths - 3.0 * triangles
        total = n * (n - 1) * (n - 2) / 6.0
        counts = np.array([total - single - paths - triangles, single, paths, triangles])
        rows.append(counts / max(total, 1.0))
    return np.asarray(rows, dtype=np.float64)


def _graphlet_classes(size: int) -> tuple[np.ndarray, int]:
    """Lookup from the edge bits of a ``size``-node subset (pairs in ``combinations`` order) to its
    isomorphism class, and the number of classes (4 for size 3, 11 for size 4)."""
    from itertools import combinations, permutations

    pairs = list(combinations(range(size), 2))
    position = {pair: i for i, pair in enumerate(pairs)}
    canonical: dict[int, int] = {}
    lookup = np.zeros(1 << len(pairs), dtype=np.int64)
    for code in range(1 << len(pairs)):
        edges = [pair for i, pair in enumerate(pairs) if code >> i & 1]
        images = []
        for perm in permutations(range(size)):
            bits = 0
            for u, v in edges:
                a, b = sorted((perm[u], perm[v]))
                bits |= 1 << position[(a, b)]
            images.append(bits)
        lookup[code] = canonical.setdefault(min(images), len(canonical))
    return lookup, len(canonical)


def graphlet4_features(edges: Sequence[torch.Tensor], num_nodes: Sequence[int]) -> np.ndarray:
    """``G x 11`` frequencies of the 11 four-node graphs among all node quadruples, by exact enumeration.

    Quadruples ``a < b < c < d`` are enumerated per first node ``a`` (the triples after it in one array),
    their 6 edge bits read from the dense adjacency and mapped to the isomorphism class.
    """
    from itertools import combinations

    lookup, classes = _graphlet_classes(4)
    triples_cache: dict[int, np.ndarray] = {}
    rows = []
    for edge_index, n in zip(edges, num_nodes):
        adjacency = _adjacency(edge_index, n).toarray().astype(np.int64)
        counts = np.zeros(classes)
        for a in range(n - 3):
            m = n - a - 1
            if m not in triples_cache:
                triples_cache[m] = np.array(list(combinations(range(m), 3)), dtype=np.int64).reshape(-1, 3)
            b, c, d = (triples_cache[m] + a + 1).T
            code = (
                adjacency[a, b] | adjacency[a, c] << 1 | adjacency[a, d] << 2
                | adjacency[b, c] << 3 | adjacency[b, d] << 4 | adjacency[c, d] << 5
            )
            counts += np.bincount(lookup[code], minlength=classes)
        rows.append(counts / max(counts.sum(), 1.0))
    return np.asarray(rows, dtype=np.float64)


def linear_kernel(features: np.ndarray | sp.spmatrix) -> np.ndarray:
    """``<phi(G), phi(G')>`` for every pair of graphs."""
    product = features @ features.T
    return product.toarray() if sp.issparse(product) else np.asarray(product)


@dataclass
class KernelResult:
    test_acc: float
    val_acc: float
    iterations: int
    C: float


def _normalised(kernel: np.ndarray) -> np.ndarray:
    """Cosine normalisation ``k / sqrt(k(G,G) k(G',G'))``, standard for WL kernels of graphs of unequal size."""
    diagonal = np.sqrt(np.clip(np.diag(kernel), 1e-12, None))
    return kernel / diagonal[:, None] / diagonal[None, :]


def select_and_test(
    kernels: dict[int, np.ndarray], y: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray
) -> KernelResult:
    """Pick ``h`` and ``C`` by validation accuracy of ``SVC(kernel="precomputed")``; report its test accuracy.

    ``kernels`` maps a WL iteration count to its kernel; kernels without iterations use a single key, 0.
    """
    from sklearn.svm import SVC

    best: KernelResult | None = None
    for iterations, kernel in kernels.items():
        k = _normalised(kernel)
        for c in C_GRID:
            svm = SVC(kernel="precomputed", C=c).fit(k[np.ix_(train, train)], y[train])
            val_acc = float((svm.predict(k[np.ix_(val, train)]) == y[val]).mean()) if len(val) else 0.0
            if best is None or val_acc > best.val_acc:
                test_acc = float((svm.predict(k[np.ix_(test, train)]) == y[test]).mean())
                best = KernelResult(test_acc, val_acc, iterations, c)
    assert best is not None
    return best
