"""Weisfeiler-Lehman graph-kernel baselines of DiffPool's Table 1, with an SVM on the precomputed kernel.

* ``wl``: the WL subtree kernel (Shervashidze et al., JMLR 2011, Eq. 3 with the subtree base kernel):
  ``k(G, G') = sum_{i=0..h} <phi_i(G), phi_i(G')>`` where ``phi_i`` counts the labels of WL iteration ``i``.
* ``wl_oa``: the WL optimal-assignment kernel (Kriege, Giscard, Wilson; NeurIPS 2016, Sec. 4): the same label
  hierarchy, compared by histogram intersection, ``k(G, G') = sum_i sum_l min(phi_i(G)_l, phi_i(G')_l)``.
  Computed exactly as a linear kernel on "unary" features: ``min(a, b) = sum_{t >= 1} [a >= t][b >= t]``, so
  each count ``c`` becomes ``c`` indicator columns and the kernel is a sparse product.

As in the kernel papers' protocol, the number of iterations ``h`` and the SVM's ``C`` are chosen on held-out
data (here: the fold's validation split, the same one the neural models use to pick their epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["KERNELS", "KernelResult", "initial_labels", "kernel_matrix", "select_and_test", "wl_features"]

KERNELS = ("wl", "wl_oa")
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
    if kind not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kind!r}")
    total = np.zeros((features[0].shape[0],) * 2)
    for counts in features[: iterations + 1]:
        phi = _unary(counts) if kind == "wl_oa" else counts
        total += (phi @ phi.T).toarray()
    return total


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
    """Pick ``h`` and ``C`` by validation accuracy of ``SVC(kernel="precomputed")``; report its test accuracy."""
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
