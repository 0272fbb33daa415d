"""The truncated reverse-mode hypergradient against finite differences, and the LDS loop's invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reprolab.lds.data import GraphData
from reprolab.lds.model import (
    DifferentiableAdam,
    EdgeDistribution,
    GCNParams,
    LearnedRate,
    gcn_forward,
    init_gcn,
)
from reprolab.lds.train import LDSSettings, hypergradient, train_lds


def _tiny(n: int = 9, dtype: torch.dtype = torch.float64) -> GraphData:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    features = torch.randn(n, 3, generator=gen, dtype=dtype) + labels[:, None].to(dtype)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(4)]
    for mask, idx in zip(masks, ([0, 1, 2], [3, 4], [5, 6], [7, 8])):
        mask[idx] = True
    return GraphData("tiny", features, labels, *masks)


def _val_loss_after(theta: torch.Tensor, params: GCNParams, data: GraphData, settings: LDSSettings) -> float:
    dist = EdgeDistribution(theta)
    new, _, _ = hypergradient(dist, params, DifferentiableAdam(settings.inner_lr), data, settings.tau, settings,
                              None, sample=False)
    logits = gcn_forward(new, data.features, dist.expected().detach())
    return float(F.cross_entropy(logits[data.val_mask], data.labels[data.val_mask]))


def test_hypergradient_matches_finite_differences():
    data = _tiny()
    settings = LDSSettings(dropout=0.0, tau=4, inner_lr=0.05, hidden=4)
    gen = torch.Generator().manual_seed(1)
    theta = (0.2 + 0.6 * torch.rand(9, 9, generator=gen, dtype=torch.float64)).triu(1)
    params = init_gcn(3, 4, 2, generator=gen, dtype=torch.float64)
    dist = EdgeDistribution(theta)
    _, grad, losses = hypergradient(dist, params, DifferentiableAdam(settings.inner_lr), data, settings.tau,
                                    settings, None, sample=False)
    assert len(losses) == 4
    eps = 1e-6
    for i, j in ((0, 1), (2, 7), (3, 8), (5, 6), (0, 8)):
        plus, minus = theta.clone(), theta.clone()
        plus[i, j] += eps
        minus[i, j] -= eps
        numeric = (_val_loss_after(plus, params, data, settings) - _val_loss_after(minus, params, data, settings))
        numeric /= 2 * eps
        assert abs(float(grad[i, j]) - numeric) < 1e-6 + 1e-4 * abs(numeric), (i, j, float(grad[i, j]), numeric)


def test_learned_inner_rate_gradient_matches_finite_differences():
    data = _tiny()
    settings = LDSSettings(dropout=0.0, tau=4, hidden=4)
    gen = torch.Generator().manual_seed(2)
    theta = (0.2 + 0.6 * torch.rand(9, 9, generator=gen, dtype=torch.float64)).triu(1)
    params = init_gcn(3, 4, 2, generator=gen, dtype=torch.float64)

    def run(logit: float) -> tuple[float, float]:
        rate = LearnedRate(1e-4, 0.05, logit)
        optimizer = DifferentiableAdam(learned=rate)
        dist = EdgeDistribution(theta)
        new, _, _ = hypergradient(dist, params, optimizer, data, settings.tau, settings, None, sample=False)
        logits = gcn_forward(new, data.features, dist.expected().detach())
        return float(F.cross_entropy(logits[data.val_mask], data.labels[data.val_mask])), optimizer.lr_logit_grad

    start = LearnedRate.starting_at(0.02, 1e-4, 0.05)
    assert abs(float(start.value()) - 0.02) < 1e-12
    _, analytic = run(start.logit)
    eps = 1e-5
    numeric = (run(start.logit + eps)[0] - run(start.logit - eps)[0]) / (2 * eps)
    assert abs(analytic - numeric) < 1e-7 + 1e-4 * abs(numeric), (analytic, numeric)
    assert analytic != 0.0


def test_hypergradient_is_seeded_and_finite_with_sampling():
    data = _tiny(dtype=torch.float32)
    settings = LDSSettings(tau=3, hidden=4)
    theta = torch.full((9, 9), 0.5).triu(1)
    params = init_gcn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    grads = []
    for _ in range(2):
        dist = EdgeDistribution(theta)
        _, grad, _ = hypergradient(dist, params, DifferentiableAdam(), data, 3, settings,
                                   torch.Generator().manual_seed(5))
        grads.append(grad)
    assert torch.equal(grads[0], grads[1]) and torch.isfinite(grads[0]).all()


def test_train_lds_keeps_theta_valid_and_reports():
    data = _tiny(dtype=torch.float32)
    settings = LDSSettings(tau=2, hidden=4, patience=2, max_outer=3, inner_max_steps=6, n_sample=4)
    initial = torch.zeros(9, 9)
    initial[0, 2] = initial[2, 0] = 1.0
    records = []
    result = train_lds(data, initial, settings, torch.Generator().manual_seed(0), on_iteration=records.append)
    assert 1 <= result.outer_iterations == len(records) <= 3
    assert result.theta.min() >= 0 and result.theta.max() <= 1 and torch.all(result.theta.tril() == 0)
    assert 0.0 <= result.test_accuracy <= 1.0 and result.hyper_steps >= result.outer_iterations


def test_factored_engine_equals_dense_autograd():
    data = _tiny(n=14, dtype=torch.float64)
    settings = LDSSettings(tau=3, hidden=4, dropout=0.3)
    gen = torch.Generator().manual_seed(2)
    theta = (0.1 + 0.8 * torch.rand(14, 14, generator=gen, dtype=torch.float64)).triu(1)
    params = init_gcn(3, 4, 2, generator=gen, dtype=torch.float64)
    results = {}
    for engine in ("dense", "factored"):
        dist = EdgeDistribution(theta)
        results[engine] = hypergradient(dist, params, DifferentiableAdam(), data, 3, settings,
                                        torch.Generator().manual_seed(9), engine=engine)
    (w_dense, g_dense, l_dense), (w_fact, g_fact, l_fact) = results["dense"], results["factored"]
    assert torch.allclose(g_dense, g_fact, atol=1e-12) and g_dense.abs().sum() > 0
    assert torch.allclose(w_dense.w1, w_fact.w1, atol=1e-12) and l_dense == pytest.approx(l_fact)
