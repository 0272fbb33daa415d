"""GraIL and CoMPILE: shapes, gradients, permutation invariance, hand-checked pieces, loss, protocols."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.compile_kg.data import family_inductive_split
from reprolab.compile_kg.evaluate import (
    SampledProtocol,
    direction_blind_auc_pr,
    distance_scorer,
    full_ranking,
    realistic_rank,
    reversal_auc,
    sample_protocol,
)
from reprolab.compile_kg.model import CoMPILE, GraIL, RGCNBasisLayer, _packed_bigru, label_features
from reprolab.compile_kg.subgraph import SubgraphExtractor
from reprolab.compile_kg.train import corrupt, margin_ranking_loss


@pytest.fixture(scope="module")
def split():
    return family_inductive_split(train_families=4, ind_families=2, seed=1)


def make(name: str, num_relations: int):
    torch.manual_seed(0)
    if name == "grail":
        return GraIL(num_relations, 4, emb_dim=8, rel_emb_dim=8, attn_rel_emb_dim=8, num_bases=2)
    readout = "bigru" if name == "compile_bigru" else "order_free"
    return CoMPILE(num_relations, 4, emb_dim=8, dropout=0.5, readout=readout)


@pytest.mark.parametrize("name", ["grail", "compile", "compile_bigru"])
def test_scores_have_one_value_per_subgraph_and_all_parameters_get_gradients(split, name):
    model = make(name, split.num_relations)
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=name != "grail")(split.train_targets[:12])
    scores = model(batch)
    assert scores.shape == (12,)
    scores.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", ["grail", "compile"])
def test_scoring_is_invariant_to_the_order_of_subgraph_nodes(split, name):
    model = make(name, split.num_relations).eval()
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=name == "compile")(split.train_targets[:10])
    perm = torch.from_numpy(np.random.default_rng(5).permutation(batch.num_nodes))
    with torch.no_grad():
        assert torch.allclose(model(batch), model(batch.permute_nodes(perm)), atol=1e-5)


@pytest.mark.parametrize("name", ["grail", "compile", "compile_bigru"])
def test_scores_do_not_depend_on_other_subgraphs_in_the_batch(split, name):
    model = make(name, split.num_relations).eval()
    extractor = SubgraphExtractor(split.train_graph, hops=2, directed=name != "grail")
    triples = split.train_targets[:8]
    with torch.no_grad():
        together = model(extractor(triples))
        alone = torch.cat([model(extractor(triples[i : i + 1])) for i in range(8)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_bigru_readout_matches_a_plain_gru_over_head_tail_then_the_rest(split):
    model = make("compile_bigru", split.num_relations).eval()
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=True)(split.train_targets[:1])
    z = torch.randn(batch.num_nodes, 8)
    head, tail = int(batch.head[0]), int(batch.tail[0])
    sequence = [head, tail] + [i for i in range(batch.num_nodes) if i not in (head, tail)]
    message = torch.relu(z + model.gru_bias)
    start = message.max(0).values.view(1, 1, -1).repeat(2, 1, 1)
    with torch.no_grad():
        expected, _ = model.gru(message[sequence].unsqueeze(0), start)
        got = model._bigru(z, batch)
    assert torch.allclose(got[sequence], expected[0], atol=1e-6)


def test_training_bigru_is_bit_identical_to_torch_gru_in_value_and_gradient():
    """The CPU training path replaces ``nn.GRU``'s packed loop (quadratic backward) by the same steps."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 6, batch_first=True, bidirectional=True)
    lengths = torch.tensor([3, 1, 40, 7, 7, 2, 95, 1])
    message = torch.randn(int(lengths.sum()), 6)
    initial = torch.randn(2, len(lengths), 6)
    weights = torch.linspace(-1, 1, 2 * 6 * int(lengths.sum())).view(-1, 12)
    results = []
    for run in (lambda p, h: gru(p, h)[0], lambda p, h: _packed_bigru(gru, p, h)):
        gru.zero_grad()
        x, h = message.clone().requires_grad_(), initial.clone().requires_grad_()
        padded = torch.nn.utils.rnn.pad_sequence(list(torch.split(x, lengths.tolist())), batch_first=True)
        packed = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        out = run(packed, h)
        (out.data * weights[: len(out.data)]).sum().backward()
        unpacked = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]
        results.append([unpacked.detach(), x.grad, h.grad] + [p.grad.clone() for p in gru.parameters()])
    for reference, ours in zip(*results):
        assert torch.equal(reference, ours)


def test_label_features_are_two_one_hots(split):
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=False)(split.train_targets[:3])
    x = label_features(batch, 4)
    assert x.shape == (batch.num_nodes, 8)
    assert torch.equal(x.sum(1), torch.full((batch.num_nodes,), 2.0))
    assert torch.equal(x[batch.head, :4].argmax(1), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize(
    ("in_dim", "out_dim", "num_bases"),
    [(8, 5, 1), (3, 8, 1), (8, 5, 3)],  # 12 relations x 68 nodes vs bases x 366 edges picks the order
    ids=["basis-per-node", "inputs-summed-first", "relation-per-node"],
)
def test_basis_decomposition_equals_explicit_relation_matrices(split, in_dim, out_dim, num_bases):
    """Each of the layer's three summation orders gives the explicit ``sum alpha W_r h_j``."""
    torch.manual_seed(0)
    per_relation = split.num_relations * 68 <= num_bases * 366
    layer = RGCNBasisLayer(
        in_dim, out_dim, split.num_relations, num_bases=num_bases, attn_rel_dim=4, edge_dropout=0.0
    ).eval()
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=False)(split.train_targets[:4])
    assert (batch.num_nodes, batch.num_edges) == (68, 366) and per_relation == (num_bases == 3)
    h = torch.randn(batch.num_nodes, in_dim)
    out = layer(h, batch)
    # by hand: W_r = sum_b a_rb V_b, alpha from the concatenated attention input
    W = torch.einsum("rb,bio->rio", layer.a, layer.V)
    src, dst = batch.edge_index
    msg = torch.einsum("mi,mio->mo", h[src], W[batch.edge_type])
    rt = batch.relation[batch.edge_graph]
    attn_in = torch.cat([h[dst], h[src], layer.attn_rel(batch.edge_type), layer.attn_rel(rt)], 1)
    alpha = torch.sigmoid(layer.A_2(torch.relu(layer.A_1(attn_in))))
    expected = torch.zeros(batch.num_nodes, out_dim).index_add_(0, dst, alpha * msg) + layer.W_self(h)
    assert torch.allclose(out, torch.relu(expected), atol=1e-5)


def test_compile_messages_only_flow_along_edge_direction():
    from reprolab.compile_kg.data import KnowledgeGraph

    # chain 0 -> 1 -> 2 plus target (0, r, 2); node 1's state may not change when only 0's label would
    graph = KnowledgeGraph(np.array([[0, 0, 1], [1, 0, 2]]), num_entities=3, num_relations=2)
    batch = SubgraphExtractor(graph, hops=2, directed=True, add_query_edge=False)(np.array([[0, 1, 2]]))
    model = CoMPILE(2, 4, emb_dim=8, depth=2, dropout=0.0).eval()
    states = model.node_states(batch)
    assert states.shape == (3, 8)
    # the head (0) has no incoming edge: its state equals the no-message update of its own input
    x = label_features(batch, 4)
    h0 = torch.relu(model.W_in_node(x))
    h1_head = torch.relu(model.W_node[0](h0[batch.head]))
    z = model.W_communicate(torch.cat([torch.zeros_like(h1_head), h1_head, h0[batch.head]], 1))
    assert torch.allclose(states[batch.head], torch.relu(model.W_o(torch.relu(z))), atol=1e-6)


def test_margin_ranking_loss_by_hand():
    pos = torch.tensor([5.0, 20.0])
    neg = torch.tensor([1.0, 1.0])
    assert margin_ranking_loss(pos, neg, 10.0).item() == pytest.approx(6.0)


def test_corrupt_changes_exactly_one_side_and_avoids_known_triples(split):
    g = torch.Generator().manual_seed(0)
    triples = split.train_targets[:200]
    negatives = corrupt(triples, split.train_graph.num_entities, split.train_graph.known(), g)
    changed = (negatives != triples).sum(1)
    assert set(changed.tolist()) <= {1, 2} and (negatives[:, 1] == triples[:, 1]).all()
    assert (negatives[:, 0] == triples[:, 0]).sum() + (negatives[:, 2] == triples[:, 2]).sum() >= 200
    assert sum(tuple(t) in split.train_graph.known() for t in negatives.tolist()) == 0


def test_realistic_rank_counts_ties_as_half():
    assert realistic_rank(1.0, np.array([2.0, 1.0, 0.0, 1.0])) == pytest.approx(1 + 1 + 1.0)
    assert realistic_rank(5.0, np.array([1.0, 2.0])) == 1.0


def test_full_ranking_of_a_perfect_scorer_is_one_and_filtering_removes_other_true_triples():
    test = np.array([[0, 0, 1]])
    all_true = {(0, 0, 1), (2, 0, 1)}  # (2, 0, 1) would beat the test triple unless filtered

    def score(triples):
        return np.array([10.0 if tuple(t) in all_true else 0.0 for t in triples.tolist()])

    result = full_ranking(test, 4, all_true, score)
    assert result.mrr == 1.0 and result.hits1 == 1.0


def test_sampled_protocol_is_seeded_and_filtered(split):
    known = split.ind_all_true()
    entities = np.arange(split.ind_graph.num_entities)
    a = sample_protocol(split.ind_test, entities, known, np.random.default_rng(0), num_negatives=5)
    b = sample_protocol(split.ind_test, entities, known, np.random.default_rng(0), num_negatives=5)
    assert np.array_equal(a.head_candidates, b.head_candidates)
    heads, tails, valid = a.ranking_triples()
    assert not any(tuple(t) in known for t, ok in zip(heads.tolist(), valid[0].ravel()) if ok)
    assert not any(tuple(t) in known for t in a.auc_negatives.tolist())


def test_reversal_auc_is_one_for_a_direction_aware_scorer():
    triples = np.array([[0, 0, 1], [2, 0, 3]])

    def score(t):
        return (t[:, 2] - t[:, 0]).astype(float)

    assert reversal_auc(triples, score) == 1.0


def test_direction_blind_auc_pr_removes_exactly_the_direction_signal():
    test = np.array([[0, 0, 1], [2, 0, 3]])
    protocol = SampledProtocol(
        test=test, auc_negatives=test[:, [2, 1, 0]], head_candidates=np.zeros((2, 0), dtype=np.int64),
        tail_candidates=np.zeros((2, 0), dtype=np.int64),
    )

    def direction_only(t):  # separates every triple from its reversal, and nothing else
        return (t[:, 2] - t[:, 0]).astype(float)

    def symmetric(t):  # blind to direction already: symmetrising changes nothing
        return (t[:, 0] * t[:, 2] + t[:, 0] + t[:, 2]).astype(float)

    assert direction_blind_auc_pr(protocol, direction_only) == pytest.approx(0.5)  # all scores tie
    protocol.auc_negatives = np.array([[0, 0, 3], [2, 0, 1]])
    from sklearn.metrics import average_precision_score

    triples = np.concatenate([protocol.test, protocol.auc_negatives])
    raw = average_precision_score([1, 1, 0, 0], symmetric(triples))
    assert raw == pytest.approx(0.75) and direction_blind_auc_pr(protocol, symmetric) == pytest.approx(raw)


def test_distance_control_scores_minus_the_undirected_hop_distance():
    # path 0 -> 1 -> 2 <- 3, and 4 isolated (5 entities)
    score = distance_scorer(np.array([0, 1, 3]), np.array([1, 2, 2]), 5)
    triples = np.array([[0, 7, 1], [0, 0, 2], [2, 0, 0], [0, 1, 3], [0, 0, 4], [3, 0, 3]])
    assert score(triples).tolist() == [-1, -2, -2, -3, -5, 0]
