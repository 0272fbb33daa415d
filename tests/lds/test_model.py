"""Edge distribution, dense GCN and differentiable Adam: shapes, invariants, hand-computed cases."""

from __future__ import annotations

import torch

from reprolab.lds.model import (
    DifferentiableAdam,
    EdgeDistribution,
    gcn_forward,
    init_gcn,
    normalize_adjacency,
)


def _theta(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, n, generator=torch.Generator().manual_seed(seed))


def test_theta_is_upper_triangular_and_in_unit_interval():
    dist = EdgeDistribution(_theta() * 3 - 1)
    theta = dist.theta.detach()
    assert theta.min() >= 0 and theta.max() <= 1
    assert torch.all(theta.tril() == 0)


def test_projection_keeps_theta_in_unit_interval():
    dist = EdgeDistribution(_theta(), init_value=0.0)
    dist.project_step(torch.randn(6, 6) * 100, lr=1.0)
    theta = dist.theta.detach()
    assert theta.min() >= 0 and theta.max() <= 1 and torch.all(theta.tril() == 0)
    assert set(theta[torch.ones(6, 6, dtype=torch.bool).triu(1)].unique().tolist()) <= {0.0, 1.0}


def test_samples_are_symmetric_binary_seeded_and_unbiased():
    dist = EdgeDistribution(_theta(12))
    a1 = dist.sample(torch.Generator().manual_seed(3))
    a2 = dist.sample(torch.Generator().manual_seed(3))
    a3 = dist.sample(torch.Generator().manual_seed(4))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert torch.equal(a1, a1.T) and torch.all(a1.diagonal() == 0)
    assert set(a1.detach().unique().tolist()) <= {0.0, 1.0}
    generator = torch.Generator().manual_seed(0)
    mean = sum(dist.sample(generator, straight_through=False) for _ in range(4000)) / 4000
    assert torch.allclose(mean, dist.expected().detach(), atol=0.04)


def test_straight_through_gradient_is_symmetrised_sample_gradient():
    dist = EdgeDistribution(_theta(5))
    weights = torch.randn(5, 5)
    sample = dist.sample(torch.Generator().manual_seed(1))
    (sample * weights).sum().backward()
    upper = torch.ones(5, 5, dtype=torch.bool).triu(1)
    assert torch.allclose(dist.theta.grad[upper], (weights + weights.T)[upper])


def test_normalize_adjacency_hand_case():
    a = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert torch.allclose(normalize_adjacency(a), torch.full((2, 2), 0.5))
    a = torch.zeros(3, 3)
    assert torch.allclose(normalize_adjacency(a), torch.eye(3))


def test_gcn_forward_matches_explicit_normalisation_and_shapes():
    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(7, 7, generator=gen) < 0.4).float().triu(1)
    a = a + a.T
    x = torch.randn(7, 4, generator=gen)
    params = init_gcn(4, 3, 2, generator=gen)
    norm = normalize_adjacency(a)
    expected = norm @ torch.relu(norm @ x @ params.w1) @ params.w2
    out = gcn_forward(params, x, a)
    assert out.shape == (7, 2)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(gcn_forward(params, x, None), torch.relu(x @ params.w1) @ params.w2)


def test_differentiable_adam_matches_torch_adam():
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    target = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    ours = [w0.clone().requires_grad_(True)]
    ref = w0.clone().requires_grad_(True)
    opt_ref = torch.optim.Adam([ref], lr=0.02)
    opt = DifferentiableAdam(0.02)
    for _ in range(5):
        loss = ((ours[0] - target) ** 3).abs().sum()
        grads = torch.autograd.grad(loss, ours)
        ours = [w.detach().requires_grad_(True) for w in opt.step(ours, list(grads))]
        opt_ref.zero_grad()
        ((ref - target) ** 3).abs().sum().backward()
        opt_ref.step()
    assert torch.allclose(ours[0], ref.detach(), atol=1e-7)


def test_lds_dropout_is_on_the_hidden_layer_only():
    """Official ``dense_gcn_2l_tensor``: dropout on the hidden representation, inputs untouched."""
    torch.manual_seed(0)
    x = torch.rand(6, 4)
    params = init_gcn(4, 5, 3, generator=torch.Generator().manual_seed(1))
    out = gcn_forward(params, x, None, dropout=0.5, generator=torch.Generator().manual_seed(2), input_dropout=False)
    hidden = torch.relu(x @ params.w1)
    keep = (torch.rand(hidden.shape, generator=torch.Generator().manual_seed(2)) >= 0.5).float()
    assert torch.allclose(out, (hidden * keep / 0.5) @ params.w2)
