"""Set2Set and SortPool (DGCNN) baselines: shapes, gradients, padding invariance, the choice of k."""

from __future__ import annotations

import pytest
import torch

from reprolab.diffpool.baselines import Set2SetNet, SortPoolNet, sortpool_k
from reprolab.diffpool.train import build_model


def _batch(padding: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    graphs, nodes, features = 4, 12, 5
    x = torch.randn(graphs, nodes, features, generator=generator)
    adj = (torch.rand(graphs, nodes, nodes, generator=generator) < 0.3).float()
    adj = ((adj + adj.transpose(1, 2)) > 0).float()
    mask = torch.ones(graphs, nodes)
    mask[:, 8:] = 0
    x, adj = x * mask[..., None], adj * mask[:, None, :] * mask[:, :, None]
    if padding:
        x = torch.cat([x, torch.zeros(graphs, padding, features)], 1)
        adj = torch.nn.functional.pad(adj, (0, padding, 0, padding))
        mask = torch.cat([mask, torch.zeros(graphs, padding)], 1)
    return x, adj, mask


@pytest.mark.parametrize("model", [Set2SetNet(5, 3), SortPoolNet(5, 3, k=10)], ids=["set2set", "sortpool"])
def test_shapes_gradients_and_padding_invariance(model):
    model.eval()
    logits = model(*_batch()).logits
    assert logits.shape == (4, 3)
    torch.testing.assert_close(model(*_batch(padding=7)).logits, logits, atol=1e-5, rtol=1e-5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_sortpool_k_is_the_sixtieth_percentile_and_at_least_ten():
    assert sortpool_k([5, 6, 7, 8, 9, 30, 40, 50, 60, 70]) == 30  # 6 of 10 graphs have <= 30 nodes
    assert sortpool_k([3, 4, 5]) == 10
    with pytest.raises(ValueError, match="k must be at least 10"):
        SortPoolNet(5, 3, k=8)


def test_sortpool_keeps_the_nodes_with_the_largest_last_channel():
    model = SortPoolNet(5, 2, k=10)
    captured = {}
    model.sort.register_forward_hook(lambda module, args, out: captured.update(nodes=args[0], out=out))
    model(*_batch())
    out = captured["out"].view(4, 10, -1)
    last = out[0, :8, -1]  # graph 0 has 8 real nodes, then two zero rows
    assert torch.all(last[:-1] >= last[1:])
    assert torch.count_nonzero(out[0, 8:]) == 0


def test_build_model_knows_the_new_baselines():
    assert isinstance(build_model("set2set", 5, 3, 12), Set2SetNet)
    assert isinstance(build_model("sortpool", 5, 3, 12, sortpool_k=12), SortPoolNet)
