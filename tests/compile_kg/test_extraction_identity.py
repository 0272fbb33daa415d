"""The batched extractor as it was before issue 24 (dense ``B x N`` BFS), kept as the reference that the
frontier-expansion extractor must reproduce tensor for tensor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import Tensor

from reprolab.compile_kg.data import KnowledgeGraph, family_inductive_split
from reprolab.compile_kg.subgraph import SubgraphBatch, SubgraphExtractor


class DenseSubgraphExtractor:
    """Extract enclosing subgraphs of many triples of one graph at once.

    Args:
        graph: the graph the subgraphs are cut from (the training graph, or the inductive support graph).
        hops: ``k``, the radius.
        directed: CoMPILE's directed enclosing subgraph when true, GraIL's undirected one otherwise.
        fallback: with ``directed``, a subgraph left without edges is replaced by the undirected one.
        mode: ``"intersection"`` (enclosing subgraph) or ``"union"``.
        add_query_edge: add the ``h -> t`` edge of relation ``r`` to every subgraph (as both codes do).
        max_nodes: optional cap on nodes per subgraph (closest nodes by ``d_h + d_t`` kept); 0 = none.
    """

    def __init__(
        self,
        graph: KnowledgeGraph,
        *,
        hops: int,
        directed: bool,
        mode: str = "intersection",
        add_query_edge: bool = True,
        max_nodes: int = 0,
        fallback: bool = False,
    ) -> None:
        if not 1 <= hops <= 100:
            raise ValueError(f"hops must lie in 1..100, got {hops}")
        if mode not in ("intersection", "union"):
            raise ValueError(f"mode must be 'intersection' or 'union', got {mode!r}")
        self.graph = graph
        self.hops = hops
        self.directed = directed
        self.mode = mode
        self.add_query_edge = add_query_edge
        self.max_nodes = max_nodes
        self.fallback = bool(fallback and directed)
        n = graph.num_entities
        ones = np.ones(len(graph.triples), dtype=np.float32)
        forward = sp.csr_matrix((ones, (graph.heads, graph.tails)), shape=(n, n))
        forward.sum_duplicates()
        both = (forward + forward.T).tocsr()
        both.data[:] = 1.0
        self._adj_undirected = both
        if directed:
            self._adj_from_head = forward.tocsr()  # h -> u
            self._adj_from_tail = forward.T.tocsr()  # u -> t, searched backwards from t
        else:
            self._adj_from_head = self._adj_from_tail = both

    @property
    def kind(self) -> str:
        """``"undirected"``, ``"directed"`` or ``"directed_fallback"`` (also a cache key)."""
        if not self.directed:
            return "undirected"
        return "directed_fallback" if self.fallback else "directed"

    @property
    def num_labels(self) -> int:
        """Size of one side of the one-hot label (distances 0..k plus the bucket k+1)."""
        return self.hops + 2

    def distances(self, adjacency: sp.csr_matrix, sources: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """``B x N`` hop distances from ``sources[b]`` (up to ``hops``), never entering ``blocked[b]``.

        Unreached entries hold ``hops + 1``. The breadth-first searches of all ``B`` triples advance
        together: each hop is one sparse product ``frontier @ adjacency`` of the ``B x N`` frontier.
        """
        batch, n = len(sources), self.graph.num_entities
        rows = np.arange(batch)
        dist = np.full((batch, n), self.hops + 1, dtype=np.int8)
        dist[rows, sources] = 0
        visited = np.zeros((batch, n), dtype=bool)
        visited[rows, sources] = True
        keep_out = blocked != sources
        visited[rows[keep_out], blocked[keep_out]] = True
        frontier = sp.csr_matrix((np.ones(batch, dtype=np.float32), (rows, sources)), shape=(batch, n))
        for depth in range(1, self.hops + 1):
            reached = frontier @ adjacency
            r_rows = np.repeat(np.arange(batch), np.diff(reached.indptr))
            r_cols = reached.indices
            fresh = ~visited[r_rows, r_cols]
            r_rows, r_cols = r_rows[fresh], r_cols[fresh]
            if len(r_rows) == 0:
                break
            dist[r_rows, r_cols] = depth
            visited[r_rows, r_cols] = True
            frontier = sp.csr_matrix(
                (np.ones(len(r_rows), dtype=np.float32), (r_rows, r_cols)), shape=(batch, n)
            )
        return dist

    def _node_sets(
        self, heads: np.ndarray, tails: np.ndarray, adj_head: sp.csr_matrix, adj_tail: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``B x N`` kept-node mask and double-radius label parts ``d_head``, ``d_tail`` (roots fixed)."""
        rows = np.arange(len(heads), dtype=np.int64)
        d_head = self.distances(adj_head, heads, tails)
        d_tail = self.distances(adj_tail, tails, heads)
        near_head, near_tail = d_head <= self.hops, d_tail <= self.hops
        keep = near_head & near_tail if self.mode == "intersection" else near_head | near_tail
        keep[rows, heads] = True
        keep[rows, tails] = True
        d_head[rows, tails] = 1  # double-radius labels of the roots: (0, 1) and (1, 0)
        d_tail[rows, tails] = 0
        d_tail[rows, heads] = 1
        d_head[rows, heads] = 0
        if self.max_nodes:
            keep = self._cap_nodes(keep, d_head, d_tail)
        return keep, d_head, d_tail

    def __call__(self, triples: np.ndarray | Tensor) -> SubgraphBatch:
        """Subgraphs of ``triples`` (``B x 3`` ids of this graph's entities), stacked into one batch."""
        triples = np.asarray(triples.cpu() if isinstance(triples, Tensor) else triples, dtype=np.int64)
        triples = triples.reshape(-1, 3)
        heads, relations, tails = triples[:, 0], triples[:, 1], triples[:, 2]
        batch, n = len(triples), self.graph.num_entities
        rows = np.arange(batch, dtype=np.int64)
        keep, d_head, d_tail = self._node_sets(heads, tails, self._adj_from_head, self._adj_from_tail)
        flat_keep = keep.ravel()
        keys = np.flatnonzero(flat_keep)
        graph_of_node, entity = np.divmod(keys, n)
        src, rel, dst, edge_graph = self._edges(flat_keep, graph_of_node, entity, triples)
        if self.fallback:
            empty = np.flatnonzero(np.bincount(edge_graph, minlength=batch) == 0)
            if len(empty):  # no directed path: cut the undirected subgraph instead (CoMPILE v2 code)
                keep[empty], d_head[empty], d_tail[empty] = self._node_sets(
                    heads[empty], tails[empty], self._adj_undirected, self._adj_undirected
                )
                flat_keep = keep.ravel()
                keys = np.flatnonzero(flat_keep)
                graph_of_node, entity = np.divmod(keys, n)
                src, rel, dst, edge_graph = self._edges(flat_keep, graph_of_node, entity, triples)
        labels = np.stack([d_head.ravel()[keys], d_tail.ravel()[keys]], 1).astype(np.int64)
        position = np.cumsum(flat_keep) - 1  # position of key b * N + u among the kept nodes
        query = np.zeros(len(src), dtype=bool)
        if self.add_query_edge:
            src = np.concatenate([src, heads])
            dst = np.concatenate([dst, tails])
            rel = np.concatenate([rel, relations])
            edge_graph = np.concatenate([edge_graph, rows])
            query = np.concatenate([query, np.ones(batch, dtype=bool)])
        order = np.argsort(edge_graph, kind="stable")
        edge_graph = edge_graph[order]
        src_pos = position[edge_graph * n + src[order]]
        dst_pos = position[edge_graph * n + dst[order]]
        return SubgraphBatch(
            node_label=torch.from_numpy(labels),
            node_graph=torch.from_numpy(graph_of_node.astype(np.int64)),
            edge_index=torch.from_numpy(np.stack([src_pos, dst_pos]).astype(np.int64)),
            edge_type=torch.from_numpy(rel[order].astype(np.int64)),
            edge_graph=torch.from_numpy(edge_graph.astype(np.int64)),
            head=torch.from_numpy(position[rows * n + heads].astype(np.int64)),
            tail=torch.from_numpy(position[rows * n + tails].astype(np.int64)),
            relation=torch.from_numpy(relations.copy()),
            query_edge=torch.from_numpy(query[order]),
            num_graphs=batch,
        )

    def _edges(
        self, flat_keep: np.ndarray, graph_of_node: np.ndarray, entity: np.ndarray, triples: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every graph edge with both ends kept in subgraph ``b``, minus the target edge of ``b``."""
        g = self.graph
        positions, edge_graph = _gather(g.out_ptr, entity, graph_of_node)
        edge_id = g.out_order[positions]
        dst = g.tails[edge_id]
        inside = flat_keep[edge_graph * g.num_entities + dst]
        edge_id, edge_graph, dst = edge_id[inside], edge_graph[inside], dst[inside]
        src, rel = g.heads[edge_id], g.relations[edge_id]
        is_target = (src == triples[edge_graph, 0]) & (dst == triples[edge_graph, 2]) & (rel == triples[edge_graph, 1])
        mask = ~is_target
        return src[mask], rel[mask], dst[mask], edge_graph[mask]

    def _cap_nodes(self, keep: np.ndarray, d_head: np.ndarray, d_tail: np.ndarray) -> np.ndarray:
        """Keep at most ``max_nodes`` nodes per subgraph, the closest by ``d_h + d_t`` (roots first)."""
        if keep.shape[1] <= self.max_nodes:
            return keep
        closeness = np.where(keep, d_head.astype(np.int64) + d_tail.astype(np.int64), np.iinfo(np.int64).max)
        cutoff = np.partition(closeness, self.max_nodes - 1, axis=1)[:, self.max_nodes - 1 : self.max_nodes]
        return keep & (closeness <= cutoff)


def _gather(indptr: np.ndarray, rows: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``indptr[r] .. indptr[r+1]-1`` for every ``r`` in ``rows``, with the owner of each."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    total = int(counts.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets, np.repeat(owner, counts)




FIELDS = ("node_label", "node_graph", "edge_index", "edge_type", "edge_graph", "head", "tail", "relation", "query_edge")


@pytest.mark.parametrize(("directed", "fallback"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize(("mode", "max_nodes"), [("intersection", 0), ("union", 0), ("intersection", 6)])
def test_frontier_extractor_returns_the_dense_extractors_batches_bit_for_bit(directed, fallback, mode, max_nodes):
    split = family_inductive_split(train_families=6, ind_families=2, seed=3)
    graph = split.train_graph
    # reversed triples too, so that some directed subgraphs are edgeless and the fallback fires
    triples = np.concatenate([split.valid_targets[:25], graph.triples[:25], graph.triples[:25, ::-1]])
    settings = {"hops": 2, "directed": directed, "mode": mode, "max_nodes": max_nodes, "fallback": fallback}
    ours = SubgraphExtractor(graph, **settings)(triples)
    dense = DenseSubgraphExtractor(graph, **settings)(triples)
    assert ours.num_graphs == dense.num_graphs
    for name in FIELDS:
        assert torch.equal(getattr(ours, name), getattr(dense, name)), name


def test_per_hop_cap_keeps_at_most_that_many_new_nodes_per_hop_and_is_off_when_large():
    graph = family_inductive_split(train_families=6, ind_families=2, seed=3).train_graph
    triples = graph.triples[:30]
    plain = SubgraphExtractor(graph, hops=3, directed=False)
    capped = SubgraphExtractor(graph, hops=3, directed=False, max_nodes_per_hop=2, seed=1)
    keys, dist = capped.distances(capped._adj_undirected, triples[:, 0], triples[:, 2])
    per_level = np.unique(np.stack([keys // graph.num_entities, dist], 1), axis=0, return_counts=True)[1]
    assert per_level.max() <= 2
    loose = SubgraphExtractor(graph, hops=3, directed=False, max_nodes_per_hop=10_000)(triples)
    reference = plain(triples)
    for name in FIELDS:
        assert torch.equal(getattr(loose, name), getattr(reference, name)), name
    assert capped(triples).num_nodes < reference.num_nodes
    assert plain.sizes.summary()["subgraphs"] == 30 and plain.sizes.summary()["nodes_mean"] > 2
