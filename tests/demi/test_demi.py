from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reprolab.demi import (
    BilinearCritic,
    CorrelatedGaussian,
    DEMIEstimator,
    DigitsViews,
    InfoNCEEstimator,
    conditional_infonce_exact,
    conditional_infonce_is,
    dv_lower_bound,
    gaussian_mi,
    infonce_lower_bound,
    nwj_lower_bound,
    rho_for_mi,
)
from reprolab.demi.train import build_estimator

scores_strategy = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.lists(st.floats(-30, 30), min_size=n * n, max_size=n * n).map(
        lambda values: torch.tensor(values, dtype=torch.float64).reshape(n, n)
    )
)


def test_analytic_mi_matches_monte_carlo():
    dim, rho = 3, 0.8
    gen = torch.Generator().manual_seed(0)
    x, y = CorrelatedGaussian(dim, gaussian_mi(rho, dim)).sample(200_000, gen)
    # log p(x_i, y_i) / (p(x_i) p(y_i)) for a standard bivariate normal with correlation rho
    q = (x**2 - 2 * rho * x * y + y**2) / (1 - rho**2)
    log_ratio = -0.5 * math.log(1 - rho**2) - 0.5 * q + 0.5 * (x**2 + y**2)
    monte_carlo = log_ratio.sum(dim=1).double()
    stderr = monte_carlo.std() / math.sqrt(len(monte_carlo))
    assert abs(monte_carlo.mean().item() - gaussian_mi(rho, dim)) < 4 * stderr.item()


def test_rho_for_mi_inverts_gaussian_mi():
    for mi in (0.1, 2.0, 20.0, 40.0):
        assert gaussian_mi(rho_for_mi(mi, 20), 20) == pytest.approx(mi, rel=1e-9)


def test_samples_have_the_target_correlation_and_conditional():
    bench = CorrelatedGaussian(4, 2.0)
    gen = torch.Generator().manual_seed(1)
    x, y = bench.sample(50_000, gen)
    assert torch.corrcoef(torch.stack([x[:, 0], y[:, 0]]))[0, 1].item() == pytest.approx(bench.rho, abs=0.01)
    draws = bench.sample_y_given_prefix(x[:2000], 2, 50, gen)
    residual = draws[:, :, :2] - bench.rho * x[:2000, None, :2]
    assert residual.var().item() == pytest.approx(1 - bench.rho**2, rel=0.05)
    assert draws[:, :, 2:].var().item() == pytest.approx(1.0, rel=0.05)  # coordinates not conditioned on


@settings(max_examples=60, deadline=None)
@given(scores_strategy)
def test_contrastive_bounds_never_exceed_log_n(scores):
    n = scores.shape[0]
    assert infonce_lower_bound(scores).max().item() <= math.log(n) + 1e-9
    proposal = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    assert conditional_infonce_is(scores, proposal).max().item() <= math.log(n) + 1e-9
    assert conditional_infonce_exact(scores[:, 0], scores[:, 1:]).max().item() <= math.log(n) + 1e-9


def test_infonce_hand_computed_two_by_two():
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = 1.0 - math.log(math.exp(1.0) + 1.0) + math.log(2.0)
    assert infonce_lower_bound(scores).tolist() == pytest.approx([expected, expected])


def test_uniform_importance_weights_reduce_to_infonce():
    scores = torch.randn(7, 7, generator=torch.Generator().manual_seed(0))
    uniform = torch.zeros(7, 7)
    assert torch.allclose(conditional_infonce_is(scores, uniform), infonce_lower_bound(scores), atol=1e-6)


def test_importance_weights_select_the_proposal_neighbour():
    # proposal puts all mass on negative j=2 for anchor 0: its score alone forms the contrast set
    scores = torch.tensor([[2.0, 5.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    proposal = torch.tensor([[0.0, -1e4, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    value = conditional_infonce_is(scores, proposal)[0].item()
    expected = 2.0 - math.log((math.exp(2.0) + 2 * math.exp(-1.0)) / 3)
    assert value == pytest.approx(expected, rel=1e-5)


def test_nwj_and_dv_hand_computed():
    scores = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    assert nwj_lower_bound(scores).item() == pytest.approx(2.0 - math.exp(-1.0) * (1 + math.exp(2.0)) / 2)
    assert dv_lower_bound(scores).item() == pytest.approx(2.0 - math.log((1 + math.exp(2.0)) / 2))


def test_optimal_gaussian_critic_recovers_low_mi_and_saturates_high_mi():
    def optimal(bench):
        rho, critic = bench.rho, BilinearCritic(bench.dim, bench.dim)
        with torch.no_grad():
            critic.W.copy_(torch.eye(bench.dim) * rho / (1 - rho**2))
            critic.b.fill_(-(rho**2) / (2 * (1 - rho**2)))
        return critic

    gen = torch.Generator().manual_seed(0)
    low = CorrelatedGaussian(4, 0.5)
    x, y = low.sample(4096, gen)
    assert infonce_lower_bound(optimal(low)(x, y)).mean().item() == pytest.approx(0.5, abs=0.05)
    high = CorrelatedGaussian(4, 30.0)
    x, y = high.sample(256, gen)
    assert infonce_lower_bound(optimal(high)(x, y)).mean().item() == pytest.approx(math.log(256), abs=0.01)


def test_demi_with_one_subview_is_infonce():
    torch.manual_seed(0)
    demi = DEMIEstimator([6], 6, critic="separable", hidden=16, embed=8)
    infonce = InfoNCEEstimator(6, 6, critic="separable", hidden=16, embed=8)
    infonce.critic.load_state_dict(demi.critics[0].state_dict())
    x, y = torch.randn(16, 6), torch.randn(16, 6)
    assert demi(x, y).item() == pytest.approx(infonce(x, y).item(), abs=1e-6)


@pytest.mark.parametrize("critic", ["separable", "bilinear", "concat"])
def test_demi_terms_shapes_and_gradients(critic):
    torch.manual_seed(0)
    estimator = build_estimator("demi", 8, k=4, critic=critic, hidden=16, embed=8, layers=1)
    x, y = torch.randn(10, 8), torch.randn(10, 8)
    terms = estimator.terms(x, y)
    assert len(terms) == 4 and all(t.shape == () for t in terms)
    assert estimator(x, y).item() <= 4 * math.log(10) + 1e-5
    terms[1].backward()
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.parameters()) for c in estimator.critics]
    # the conditional term trains its own critic; the importance weights carry no gradient
    assert grads == [False, True, False, False]


@pytest.mark.parametrize("name", ["infonce", "nwj", "dv"])
def test_every_estimator_backpropagates(name):
    estimator = build_estimator(name, 4, hidden=8, embed=4, layers=1)
    value = estimator(torch.randn(6, 4), torch.randn(6, 4))
    value.backward()
    assert all(p.grad is not None for p in estimator.parameters())


def test_bad_estimator_and_split_are_refused():
    with pytest.raises(ValueError, match="not divisible"):
        build_estimator("demi", 10, k=4)
    with pytest.raises(ValueError, match="estimator must be one of"):
        build_estimator("mine2", 4)


def test_digit_views_are_deterministic_and_shaped():
    data = DigitsViews(seed=0)
    a1, b1 = data.batch(5, torch.Generator().manual_seed(3))
    a2, b2 = data.batch(5, torch.Generator().manual_seed(3))
    assert a1.shape == (5, 64) and torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, b1)


def test_exact_conditional_negatives_give_terms_capped_at_log_k_plus_one():
    torch.manual_seed(0)
    bench = CorrelatedGaussian(8, 30.0)
    estimator = build_estimator("demi_exact", 8, k=2, hidden=16, embed=8, layers=1)
    gen = torch.Generator().manual_seed(0)
    x, y = bench.sample(12, gen)
    terms = estimator.terms_exact(x, y, lambda xs, prefix: bench.sample_y_given_prefix(xs, prefix, 5, gen))
    assert terms[0].item() <= math.log(12) + 1e-6 and terms[1].item() <= math.log(6) + 1e-6
    terms[1].backward()
    assert all(p.grad is not None for p in estimator.critics[1].parameters())


def test_exact_negative_training_uses_the_true_conditional(tmp_path):
    from reprolab.demi.train import estimate_on_batch

    bench = CorrelatedGaussian(4, 2.0)
    estimator = build_estimator("demi", 4, k=2, hidden=8, embed=4, layers=1)
    gen = torch.Generator().manual_seed(0)
    x, y = bench.sample(8, gen)
    value = estimate_on_batch(estimator, x, y, bench, gen, exact_negatives=3)
    assert value.shape == () and torch.isfinite(value)
    with pytest.raises(TypeError, match="DEMIEstimator only"):
        estimate_on_batch(build_estimator("infonce", 4, hidden=8), x, y, bench, gen, exact_negatives=3)
