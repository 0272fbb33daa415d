"""Benchmark: batched enclosing-subgraph extraction vs per-triple extraction, same triples, same run.

Usage::

    python benchmarks/compile_kg.py [--triples 400] [--hops 3] [--data /work/shared/data]

Three extractors cut the same subgraphs (nodes, double-radius labels, edges, target edge removed):

* ``batched``: :class:`reprolab.compile_kg.SubgraphExtractor`, all triples of a batch at once
  (sparse-product BFS over a ``B x N`` frontier, vectorised edge gathering);
* ``grail-style``: the per-triple procedure of GraIL's code, re-implemented here: BFS by repeated sparse
  vector-matrix products from each root, the induced subgraph sliced out of the adjacency matrix, and the
  double-radius labels from ``scipy.sparse.csgraph.shortest_path`` on the subgraph with the other root
  removed;
* ``python-bfs``: :class:`reprolab.compile_kg.PerTripleExtractor`, a lean plain-Python BFS over
  adjacency lists built once (a stronger baseline than GraIL's).

It prints the time per 1000 triples of each and the speed-up ratios (target in the issue: >= 10x over
a straightforward per-triple extraction), for the embedded family KG and, when the GraIL splits are
under ``--data``, for their training graphs, in the undirected (GraIL) and directed (CoMPILE) variants.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from reprolab.compile_kg.data import KnowledgeGraph, family_inductive_split, load_grail_split
from reprolab.compile_kg.subgraph import PerTripleExtractor, SubgraphExtractor


class GraILStyleExtractor:
    """Per-triple extraction the way GraIL's code does it (sparse BFS per root, csgraph labelling)."""

    def __init__(self, graph: KnowledgeGraph, *, hops: int, directed: bool) -> None:
        n = graph.num_entities
        forward = sp.csr_matrix((np.ones(len(graph.triples)), (graph.heads, graph.tails)), shape=(n, n))
        self.out_adj = (forward > 0).astype(np.float64).tocsr()
        self.in_adj = self.out_adj.T.tocsr()
        self.both = ((forward + forward.T) > 0).astype(np.float64).tocsr()
        self.graph, self.hops, self.directed, self.n = graph, hops, directed, n

    def _neighbourhood(self, adjacency: sp.csr_matrix, root: int, blocked: int) -> set[int]:
        visited = {root}
        frontier = {root}
        for _ in range(self.hops):
            cols = list(frontier)
            vector = sp.csr_matrix((np.ones(len(cols)), (np.zeros(len(cols)), cols)), shape=(1, self.n))
            reached = set((vector @ adjacency).indices.tolist()) - visited - {blocked}
            if not reached:
                break
            visited |= reached
            frontier = reached
        return visited

    def __call__(self, triple: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
        h, r, t = (int(v) for v in triple)
        adj_h, adj_t = (self.out_adj, self.in_adj) if self.directed else (self.both, self.both)
        nodes = (self._neighbourhood(adj_h, h, t) & self._neighbourhood(adj_t, t, h)) | {h, t}
        order = [h, t] + sorted(nodes - {h, t})
        sub = (self.out_adj if self.directed else self.both)[order][:, order]
        keep_h = np.arange(len(order)) != 1
        keep_t = np.arange(len(order)) != 0
        d_h = shortest_path(sub[keep_h][:, keep_h], directed=self.directed, unweighted=True, indices=0)
        reverse = sub.T.tocsr() if self.directed else sub
        d_t = shortest_path(reverse[keep_t][:, keep_t], directed=self.directed, unweighted=True, indices=0)
        local = {node: i for i, node in enumerate(order)}
        edges = []
        for node in order:
            start, stop = self.graph.out_ptr[node], self.graph.out_ptr[node + 1]
            for edge in self.graph.out_order[start:stop]:
                u, rel, v = self.graph.triples[edge].tolist()
                if v in local and (u, rel, v) != (h, r, t):
                    edges.append((local[u], rel, local[v]))
        return d_h, d_t, edges


def _time(fn, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench(name: str, graph: KnowledgeGraph, triples: np.ndarray, hops: int, batch: int) -> None:
    grail_by_direction = {d: GraILStyleExtractor(graph, hops=hops, directed=d) for d in (False, True)}

    def grail_fallback(x: np.ndarray) -> tuple:
        """The directed subgraph, or the undirected one where it has no edge (CoMPILE v2's rule)."""
        found = grail_by_direction[True](x)
        return found if found[2] else grail_by_direction[False](x)

    for kind in ("undirected", "directed", "directed_fallback"):
        directed, fallback = kind != "undirected", kind == "directed_fallback"
        batched = SubgraphExtractor(graph, hops=hops, directed=directed, add_query_edge=False, fallback=fallback)
        grail = grail_fallback if fallback else grail_by_direction[directed]
        python = PerTripleExtractor(graph, hops=hops, directed=directed, fallback=fallback)
        t_batched = _time(lambda b=batched: [b(triples[i : i + batch]) for i in range(0, len(triples), batch)], 3)
        t_grail = _time(lambda g=grail: [g(x) for x in triples])
        t_python = _time(lambda p=python: [p(x) for x in triples])
        per_k = 1000.0 / len(triples)
        sizes = batched(triples[:batch])
        print(
            f"{name:<12} {kind:<17} nodes/sg {sizes.num_nodes / sizes.num_graphs:7.1f}"
            f" | batched {t_batched * per_k:8.3f} s/1k | grail-style {t_grail * per_k:8.3f} s/1k"
            f" ({t_grail / t_batched:6.1f}x) | python-bfs {t_python * per_k:8.3f} s/1k ({t_python / t_batched:5.1f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=400)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--data", default=os.environ.get("REPROLAB_DATA", "/work/shared/data"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    split = family_inductive_split()
    picks = rng.choice(len(split.train_targets), min(args.triples, len(split.train_targets)), replace=False)
    print(f"hops={args.hops}, {args.triples} training triples per graph, batch {args.batch}")
    print("ratios = baseline time / batched time on the same triples")
    bench("family", split.train_graph, split.train_targets[picks], args.hops, args.batch)
    root = Path(args.data) / "grail_inductive"
    for name in ("WN18RR_v1", "nell_v1", "fb237_v1"):
        if (root / name).is_dir():
            real = load_grail_split(root, name)
            picks = rng.choice(len(real.train_targets), min(args.triples, len(real.train_targets)), replace=False)
            bench(name, real.train_graph, real.train_targets[picks], args.hops, args.batch)


if __name__ == "__main__":
    main()
