"""DiffPool layers: assignments, pooled adjacency, masks, auxiliary losses (paper Sec. 3.2-3.3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reprolab.diffpool.model import (
    DiffPoolNet,
    GraphSAGEPool,
    MaskedBatchNorm,
    SAGEStack,
    SumGraphConv,
    assignment_entropy,
    cluster_counts,
    diff_pool,
    link_prediction_loss,
    masked_readout,
)


def _random_batch(batch: int = 3, nodes: int = 7, features: int = 5, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, nodes, features, generator=generator)
    upper = torch.triu((torch.rand(batch, nodes, nodes, generator=generator) < 0.4).float(), diagonal=1)
    adj = upper + upper.transpose(1, 2)
    mask = torch.ones(batch, nodes, dtype=torch.bool)
    mask[0, 5:] = False  # graph 0 has 5 real nodes
    if batch > 1:
        mask[1, 6:] = False
    x = x * mask.unsqueeze(-1)
    adj = adj * mask.unsqueeze(1) * mask.unsqueeze(2)
    return x, adj, mask


def _model(**kwargs) -> DiffPoolNet:
    torch.manual_seed(0)
    return DiffPoolNet(5, 3, max_nodes=7, hidden=8, embed=8, assign_ratio=0.5, **kwargs)


def test_assignment_rows_sum_to_one_on_real_nodes_and_zero_on_padding():
    x, adj, mask = _random_batch()
    out = _model()(x, adj, mask)
    s = out.assignments[0]
    assert s.shape == (3, 7, 3)
    sums = s.sum(dim=-1)
    assert torch.allclose(sums[mask], torch.ones(int(mask.sum())), atol=1e-6)
    assert torch.all(sums[~mask] == 0)


def test_pooled_adjacency_is_symmetric_for_symmetric_input():
    x, adj, mask = _random_batch()
    s = torch.softmax(torch.randn(3, 7, 4), dim=-1) * mask.unsqueeze(-1)
    _, pooled = diff_pool(x, adj, s, mask)
    assert torch.allclose(pooled, pooled.transpose(1, 2), atol=1e-6)


def test_hard_assignment_pools_edge_counts_between_clusters():
    """With one-hot S (Eq. 4), A' = S^T A S counts edges between and within clusters; X' sums members (Eq. 3)."""
    adj = torch.tensor([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.float)
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    s = torch.tensor([[[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]]])  # one-hot: {0,1}, {2,3}
    pooled_x, pooled_adj = diff_pool(x.unsqueeze(0), adj.unsqueeze(0), s, None)
    assert torch.allclose(pooled_x[0], torch.tensor([[3.0], [7.0]]), atol=1e-4)
    assert torch.allclose(pooled_adj[0], torch.tensor([[2.0, 1.0], [1.0, 2.0]]), atol=1e-4)
    # ||A - S S^T||_F^2 counts: 4 diagonal ones of S S^T, plus the (1,2),(2,1) edge not in a cluster
    assert float(link_prediction_loss(adj.unsqueeze(0), s, None)) == pytest.approx(6**0.5, rel=1e-4)
    assert float(link_prediction_loss(adj.unsqueeze(0), s, None, per_entry=True)) == pytest.approx(6**0.5 / 4)
    assert float(assignment_entropy(s, None)) == pytest.approx(0.0, abs=1e-6)


def test_auxiliary_losses_do_not_depend_on_padding():
    """Both Sec. 3.3 terms are per real node: padding a graph further changes neither (PyG's did: / B N^2)."""
    x, adj, mask = _random_batch()
    s = torch.softmax(torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(1)), dim=-1) * mask.unsqueeze(-1)
    wide_adj = torch.zeros(3, 30, 30)
    wide_adj[:, :7, :7] = adj
    wide_s = torch.zeros(3, 30, 4)
    wide_s[:, :7] = s
    wide_mask = torch.zeros(3, 30, dtype=torch.bool)
    wide_mask[:, :7] = mask
    assert float(link_prediction_loss(wide_adj, wide_s, wide_mask)) == pytest.approx(
        float(link_prediction_loss(adj, s, mask)), rel=1e-5)
    assert float(assignment_entropy(wide_s, wide_mask)) == pytest.approx(float(assignment_entropy(s, mask)), rel=1e-5)
    real = s[mask]
    assert float(assignment_entropy(s, mask)) == pytest.approx(float(-(real * real.log()).sum(-1).mean()), rel=1e-5)


def _enzymes_like_batch(seed: int):
    """20 graphs of 10-60 nodes (ENZYMES: mean 33, mean degree 3.9) padded to 126 nodes, 21 features."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.randint(10, 61, (20,), generator=generator)
    adj = torch.zeros(20, 126, 126)
    mask = torch.zeros(20, 126, dtype=torch.bool)
    for b, n in enumerate(sizes.tolist()):
        upper = torch.triu((torch.rand(n, n, generator=generator) < 3.9 / n).float(), diagonal=1)
        adj[b, :n, :n] = upper + upper.t()
        mask[b, :n] = True
    x = torch.randn(20, 126, 21, generator=generator) * mask.unsqueeze(-1)
    return x, adj, mask, torch.randint(6, (20,), generator=generator)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_link_loss_gradient_is_of_the_order_of_the_cross_entropy_gradient(seed):
    """On an ENZYMES-sized padded batch (12 clusters), the LP term moves the assignment GNN about as much as the
    classification loss does: gradient-norm ratio within 10x either way (PyG's B N^2 scaling gave ~1e-4)."""
    x, adj, mask, y = _enzymes_like_batch(seed)
    torch.manual_seed(seed)
    model = DiffPoolNet(21, 6, max_nodes=126, hidden=30, embed=30, assign_ratio=0.1)
    assert model.clusters == [12]
    params = [*model.assign_gnns.parameters(), *model.assign_linears.parameters()]

    def grad_norm(loss: torch.Tensor) -> float:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return float(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))

    out = model(x, adj, mask)
    ratio = grad_norm(out.link_loss) / grad_norm(F.cross_entropy(out.logits, y))
    assert 0.1 <= ratio <= 10.0


@pytest.mark.parametrize("conv", ["sage_mean", "official_sum"])
def test_padding_nodes_do_not_change_the_prediction(conv):
    model = _model(conv=conv, assign_normalize=conv == "official_sum").eval()
    x, adj, mask = _random_batch(batch=1, nodes=7)
    mask[0, 5:] = False
    padded_logits = model(x, adj, mask).logits
    bigger_x = torch.cat([x, torch.randn(1, 3, 5) * 0], dim=1)
    bigger_adj = torch.zeros(1, 10, 10)
    bigger_adj[:, :7, :7] = adj
    bigger_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], dim=1)
    assert torch.allclose(model(bigger_x, bigger_adj, bigger_mask).logits, padded_logits, atol=1e-5)
    noisy_x = x.clone()
    noisy_x[0, 5:] = 100.0  # garbage in padded rows must be ignored
    assert torch.allclose(model(noisy_x, adj, mask).logits, padded_logits, atol=1e-5)


def test_link_and_entropy_losses_are_differentiable_into_the_assignment_gnn():
    x, adj, mask = _random_batch()
    model = _model()
    out = model(x, adj, mask)
    assert out.link_loss.requires_grad and out.entropy_loss.requires_grad
    out.auxiliary().backward()
    grad = model.assign_linears[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_nolp_ablation_drops_only_the_link_loss():
    x, adj, mask = _random_batch()
    out = _model(link_loss=False)(x, adj, mask)
    assert out.link_loss.item() == 0.0
    assert out.entropy_loss.item() > 0.0


def test_two_pooling_levels_shrink_to_the_configured_cluster_counts():
    x, adj, mask = _random_batch(nodes=20)
    torch.manual_seed(0)
    model = DiffPoolNet(5, 3, max_nodes=20, hidden=8, embed=8, num_pool=2, assign_ratio=0.25)
    out = model(x, adj, mask)
    assert model.clusters == [5, 2]
    assert [a.shape[-1] for a in out.assignments] == [5, 2]
    assert out.logits.shape == (3, 3)


def test_cluster_counts_follow_the_official_ratio_rule():
    assert cluster_counts(126, 0.1, 1) == [12]  # ENZYMES, paper 1-pool setting
    assert cluster_counts(126, 0.25, 2) == [31, 7]
    assert cluster_counts(5, 0.1, 1) == [2]  # never below two clusters


def test_masked_batch_norm_ignores_padding():
    torch.manual_seed(0)
    norm = MaskedBatchNorm(2)
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [99.0, 99.0]]])
    mask = torch.tensor([[True, True, False]])
    out = norm(x, mask)
    assert torch.allclose(out[0, :2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), atol=1e-3)
    assert torch.all(out[0, 2] == 0)


def test_masked_readout_by_hand():
    z = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [50.0, 50.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(masked_readout(z, mask, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.equal(masked_readout(z, mask, "sum"), torch.tensor([[4.0, 2.0]]))
    assert torch.equal(masked_readout(z, mask, "mean"), torch.tensor([[2.0, 1.0]]))
    with pytest.raises(ValueError, match="readout"):
        masked_readout(z, mask, "median")


def test_sage_stack_concatenates_l2_normalised_layers():
    x, adj, mask = _random_batch()
    stack = SAGEStack(5, 6, 4, layers=3, normalize=True, batch_norm=False)
    z = stack(x, adj, mask)
    assert z.shape == (3, 7, 16) and stack.out_channels == 16
    last = z[..., -4:][mask]
    assert torch.allclose(last.norm(dim=-1), torch.ones(len(last)), atol=1e-5)


def test_graphsage_baseline_shapes_and_gradients():
    x, adj, mask = _random_batch()
    model = GraphSAGEPool(5, 3, hidden=8, embed=8, readout="mean")
    out = model(x, adj, mask)
    assert out.logits.shape == (3, 3) and out.assignments == []
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_official_graph_conv_sums_neighbours_without_a_self_term():
    """RexYing/diffpool ``GraphConv`` as its DiffPool builds it: ``(A X) W + b`` on the raw adjacency, l2-normalised."""
    torch.manual_seed(0)
    conv = SumGraphConv(2, 3, normalize=False)
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    adj = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    expected = torch.stack([x[0, 1], x[0, 0] + x[0, 2], x[0, 1]]) @ conv.weight + conv.bias
    assert torch.allclose(conv(x, adj)[0], expected)
    assert torch.equal(conv.bias, torch.zeros(3))  # the official initialisation: zero bias
    conv.normalize = True
    assert torch.allclose(conv(x, adj).norm(dim=-1), torch.ones(1, 3))
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(conv(x, adj * mask.unsqueeze(1) * mask.unsqueeze(2), mask)[0, 2], torch.zeros(3))


def test_official_conv_builds_every_stack_and_normalises_the_assignment_gnn():
    model = _model(conv="official_sum", assign_normalize=True)
    convs = [m for m in model.modules() if isinstance(m, SumGraphConv)]
    assert len(convs) == 3 * 3  # embedding GNNs of both levels and the assignment GNN, 3 layers each
    assert all(conv.normalize for conv in model.assign_gnns[0].convs)
    with pytest.raises(ValueError, match="conv must be one of"):
        _model(conv="gin")
