"""Subgraph extraction: handmade graph, labels, directions, target-edge removal, batch == per-triple BFS."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.compile_kg.data import KnowledgeGraph, family_inductive_split
from reprolab.compile_kg.subgraph import PerTripleExtractor, SubgraphExtractor

# Handmade graph (relation ids in brackets):
#   0 -[0]-> 1,  0 -[1]-> 2,  2 -[1]-> 1,  3 -[2]-> 0,  1 -[2]-> 4,  5 -[0]-> 6 (far away)
HAND = np.array([[0, 0, 1], [0, 1, 2], [2, 1, 1], [3, 2, 0], [1, 2, 4], [5, 0, 6]])


def hand_graph() -> KnowledgeGraph:
    return KnowledgeGraph(HAND, num_entities=7, num_relations=3)


def graph_nodes(batch, b: int) -> list[int]:
    return np.nonzero(batch.node_graph.numpy() == b)[0].tolist()


def labels_by_entity(batch, b: int, entity_of_position: dict[int, int]) -> dict[int, tuple[int, int]]:
    return {entity_of_position[p]: tuple(batch.node_label[p].tolist()) for p in graph_nodes(batch, b)}


def test_undirected_enclosing_subgraph_of_handmade_graph_has_expected_nodes_and_labels():
    extractor = SubgraphExtractor(hand_graph(), hops=1, directed=False, add_query_edge=False)
    batch = extractor(np.array([[0, 0, 1]]))
    # 1-hop neighbourhoods (the other root blocked): N(0) = {3, 2}, N(1) = {2, 4}; intersection {2}.
    assert batch.num_nodes == 3
    entity_of = {p: e for p, e in enumerate([0, 1, 2])}
    assert labels_by_entity(batch, 0, entity_of) == {0: (0, 1), 1: (1, 0), 2: (1, 1)}


def test_target_edge_is_removed_but_other_edges_between_roots_stay():
    extractor = SubgraphExtractor(hand_graph(), hops=1, directed=False, add_query_edge=False)
    batch = extractor(np.array([[0, 0, 1]]))
    edges = {(int(s), int(r), int(d)) for (s, d), r in zip(batch.edge_index.T.tolist(), batch.edge_type.tolist())}
    # local ids: 0 -> 0, 1 -> 1, 2 -> 2; edges 0-[1]->2 and 2-[1]->1 kept, target 0-[0]->1 removed
    assert edges == {(0, 1, 2), (2, 1, 1)}


def test_query_edge_is_added_to_positives_and_negatives_alike():
    extractor = SubgraphExtractor(hand_graph(), hops=1, directed=False, add_query_edge=True)
    batch = extractor(np.array([[0, 0, 1], [0, 2, 4]]))
    query = batch.query_edge.numpy()
    assert query.sum() == 2
    assert batch.edge_type[batch.query_edge].tolist() == [0, 2]
    heads = batch.edge_index[0, batch.query_edge]
    tails = batch.edge_index[1, batch.query_edge]
    assert heads.tolist() == batch.head.tolist() and tails.tolist() == batch.tail.tolist()


def test_directed_subgraph_follows_edge_directions():
    graph = hand_graph()
    directed = SubgraphExtractor(graph, hops=2, directed=True, add_query_edge=False)
    batch = directed(np.array([[0, 0, 1], [1, 0, 0]]))
    # (0, r, 1): 0 -> 2 -> 1 is a directed path, so 2 is kept; 3 only points into 0, 4 only out of 1.
    assert batch.nodes_per_graph().tolist()[0] == 3
    # reversed (1, r, 0): from 1 only 4 is reachable, and nothing reaches 0 except 3: roots only.
    assert batch.nodes_per_graph().tolist()[1] == 2
    undirected = SubgraphExtractor(graph, hops=2, directed=False, add_query_edge=False)
    counts = undirected(np.array([[0, 0, 1], [1, 0, 0]])).nodes_per_graph().tolist()
    assert counts[0] == counts[1]  # undirected subgraphs cannot tell a triple from its reversal


def test_directed_fallback_replaces_an_edgeless_directed_subgraph_by_the_undirected_one():
    graph = hand_graph()
    triples = np.array([[0, 0, 1], [4, 0, 3]])
    fallback = SubgraphExtractor(graph, hops=2, directed=True, fallback=True, add_query_edge=False)
    directed = SubgraphExtractor(graph, hops=2, directed=True, add_query_edge=False)
    undirected = SubgraphExtractor(graph, hops=2, directed=False, add_query_edge=False)
    assert (fallback.kind, directed.kind, undirected.kind) == ("directed_fallback", "directed", "undirected")
    got, strict, loose = fallback(triples), directed(triples), undirected(triples)
    # (0, r, 1) has the directed path 0 -> 2 -> 1: its directed subgraph stays.
    assert got.nodes_per_graph()[0] == strict.nodes_per_graph()[0] == 3
    # (4, r, 3): 4 has no out-edge, so the directed subgraph is the bare roots without an edge. The
    # fallback cuts the undirected one: 0, 1, 2 lie within 2 hops of both roots, and all five edges
    # among 0..4 come with them. Labels (d(4, u), d(u, 3)): 0 (2, 1), 1 (1, 2), 2 (2, 2).
    assert strict.nodes_per_graph()[1] == 2 and int((strict.edge_graph == 1).sum()) == 0
    assert got.nodes_per_graph()[1] == loose.nodes_per_graph()[1] == 5
    assert int((got.edge_graph == 1).sum()) == int((loose.edge_graph == 1).sum()) == 5
    labels = sorted(map(tuple, got.node_label[got.node_graph == 1].tolist()))
    assert labels == sorted([(0, 1), (1, 0), (2, 1), (1, 2), (2, 2)])


def test_union_mode_keeps_nodes_near_either_root_with_far_bucket_label():
    extractor = SubgraphExtractor(hand_graph(), hops=1, directed=False, mode="union", add_query_edge=False)
    batch = extractor(np.array([[0, 0, 1]]))
    assert batch.num_nodes == 5  # 0, 1, 2, 3, 4
    labels = {tuple(x) for x in batch.node_label.tolist()}
    assert (1, 2) in labels and (2, 1) in labels  # 3 is 1 hop from 0 only; 4 is 1 hop from 1 only


@pytest.mark.parametrize(("directed", "fallback"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("mode", ["intersection", "union"])
def test_batched_extraction_matches_per_triple_bfs(directed, fallback, mode):
    split = family_inductive_split(train_families=6, ind_families=2, seed=3)
    graph = split.train_graph
    # reversed triples too, so that some directed subgraphs are edgeless and the fallback is exercised
    triples = np.concatenate([split.valid_targets[:20], graph.triples[:20], graph.triples[:20, ::-1]])
    batch = SubgraphExtractor(
        graph, hops=2, directed=directed, mode=mode, add_query_edge=False, fallback=fallback
    )(triples)
    reference = PerTripleExtractor(graph, hops=2, directed=directed, mode=mode, fallback=fallback)
    labels = batch.node_label.numpy()
    node_graph = batch.node_graph.numpy()
    edge_graph = batch.edge_graph.numpy()
    for b, triple in enumerate(triples):
        ref_labels, ref_edges = reference(triple)
        ours = sorted(map(tuple, labels[node_graph == b].tolist()))
        assert ours == sorted(ref_labels.values())
        assert int((edge_graph == b).sum()) == len(ref_edges)


def test_permute_nodes_keeps_structure():
    graph = hand_graph()
    batch = SubgraphExtractor(graph, hops=2, directed=False)(np.array([[0, 0, 1], [0, 1, 2]]))
    rng = np.random.default_rng(0)
    import torch

    perm = torch.from_numpy(rng.permutation(batch.num_nodes))
    moved = batch.permute_nodes(perm)
    assert moved.node_label[moved.head].tolist() == batch.node_label[batch.head].tolist()
    assert moved.node_graph[moved.edge_index[0]].tolist() == batch.node_graph[batch.edge_index[0]].tolist()
