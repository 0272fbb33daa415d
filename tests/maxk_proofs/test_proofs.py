from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprolab.maxk_proofs import STRATEGIES, MaxKConfig, MaxKTransformer, brute_force_correct, get_strategy
from reprolab.maxk_proofs.proofs import (
    FlopCounter,
    _count_bisect,
    _count_enumerate,
    _count_joint,
    _count_tokens,
    _Tables,
    unexplained_dimension,
)


def _perturbed(base: MaxKTransformer, seed: int, noise: float, sharpen: float) -> MaxKTransformer:
    model = MaxKTransformer(base.config)
    model.load_state_dict(base.state_dict())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * noise * p.abs().mean())
        model.W_Q.mul_(sharpen)
    return model


def _assert_sound(model: MaxKTransformer) -> dict[str, int]:
    truth = brute_force_correct(model)
    certified = {}
    for name, strategy in STRATEGIES.items():
        result = strategy.prove(model)
        assert result.certified <= truth, f"{name} certified {result.certified} > true {truth}"
        assert result.total == model.config.d_vocab**model.config.n_ctx
        assert 0.0 <= result.bound <= 1.0 and result.flops > 0
        certified[name] = result.certified
    assert certified["brute_force"] == truth
    return certified


def test_at_least_ten_documented_strategies():
    assert len(STRATEGIES) >= 10
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and strategy.description and strategy.complexity and strategy.assumptions
    with pytest.raises(KeyError, match="valid"):
        get_strategy("nope")


def test_every_bound_sound_on_trained_model_and_mechanistic_proofs_nontrivial(trained_small):
    certified = _assert_sound(trained_small)
    total = 8**4
    assert certified["cubic"] / total > 0.5 and certified["subcubic"] / total > 0.5
    assert certified["subcubic"] <= certified["cubic"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    noise=st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.5]),
    sharpen=st.sampled_from([0.3, 1.0, 3.0, 10.0]),
)
def test_bounds_never_exceed_brute_force_on_perturbed_trained_models(trained_small, seed, noise, sharpen):
    _assert_sound(_perturbed(trained_small, seed, noise, sharpen))


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    d_vocab=st.integers(2, 7),
    n_ctx=st.integers(2, 4),
    d_model=st.integers(1, 6),
    extra_out=st.integers(0, 2),
    scale=st.sampled_from([0.0, 0.1, 1.0, 5.0]),
)
def test_bounds_never_exceed_brute_force_on_random_models(seed, d_vocab, n_ctx, d_model, extra_out, scale):
    config = MaxKConfig(d_vocab=d_vocab, n_ctx=n_ctx, d_model=d_model, d_head=d_model, d_vocab_out=d_vocab + extra_out)
    model = MaxKTransformer(config)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    _assert_sound(model)


def _adversarial_max_of_k(V: int, n: int, gap: float, seed: int) -> MaxKTransformer:
    """A rough hand-built attempt (attention ~ gap * key size, OV copies), nudged at random: accuracy ~30%,
    with non-trivial bounds, so it probes soundness away from trained weights."""
    d = V + 1
    model = MaxKTransformer(MaxKConfig(d_vocab=V, n_ctx=n, d_model=d, d_head=d))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, :V] = torch.eye(V)
        model.W_E[:, V] = torch.arange(V, dtype=torch.float32)  # a "size" feature
        model.W_pos[-1, V] = 1.0
        model.W_Q[0, V, 0] = 1.0  # the query reads the constant from W_pos[-1] ...
        model.W_K[0, V, 0] = gap * math.sqrt(d)  # ... and attends by key size
        model.W_V[0, :V, :V] = torch.eye(V)
        model.W_O[0, :V, :V] = torch.eye(V)
        model.W_U[:V, :] = 3.0 * torch.eye(V)
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("gap", [0.5, 2.0, 8.0])
def test_bounds_sound_on_adversarially_nudged_hand_built_models(gap):
    for seed in range(3):
        _assert_sound(_adversarial_max_of_k(6, 4, gap, seed))


def test_direct_path_model_is_certified_exactly_by_the_cubic_proof():
    V, n = 5, 3
    model = MaxKTransformer(MaxKConfig(d_vocab=V, n_ctx=n, d_model=V, d_head=V))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E.copy_(torch.eye(V))
        model.W_U.copy_(torch.eye(V))
    exact = sum((q + 1) ** (n - 1) for q in range(V))
    assert get_strategy("cubic").prove(model).certified == exact
    assert get_strategy("subcubic").prove(model).certified == exact


@pytest.mark.parametrize(("V", "n"), [(2, 2), (5, 3), (6, 4), (4, 5)])
def test_groups_partition_every_input_exactly_once(V, n):
    """With every group certified, both groupings count d_vocab ** n_ctx inputs."""
    big = torch.full((V, V), 1.0, dtype=torch.float64)
    tables = _Tables(
        lo=big,
        hi=big,
        hi_prefix=big,
        pos_sorted=torch.zeros(V, n - 1, dtype=torch.float64),
        pos_query=torch.zeros(V, dtype=torch.float64),
        h=big,
        h_prefix=big,
        eumin=big,
        tol=0.0,
        attention=True,
    )
    assert _count_enumerate(tables, V, n, FlopCounter()) == V**n
    assert _count_tokens(tables, V, n, FlopCounter()) == V**n
    assert _count_bisect(tables, V, n, FlopCounter()) == V**n
    assert _count_bisect(tables, V, n, FlopCounter(), whole=True) == V**n
    flat = torch.zeros(V, V + 1, dtype=torch.float64)  # d_vocab_out = V + 1; every margin g = pmin = 1
    assert _count_joint(tables, flat, flat, flat + 1.0, V, n, FlopCounter()) == V**n


def test_unexplained_dimension_matches_official_accounting_and_hand_counts():
    # the official code's formulas: brute force d_vocab ** (n_ctx + 1), cubic 3 d_vocab^2 + 2 n_ctx d_vocab
    assert unexplained_dimension("brute_force", 64, 4) == 2**30
    assert unexplained_dimension("cubic", 64, 4) == 12800 == unexplained_dimension("joint_logit", 64, 4)
    # V = 5, n = 3, V_out = 7, counted by hand from the component docstrings
    V, n, Vo = 5, 3, 7
    ov_rowmax, eu_exact = V * Vo + V, V * Vo
    assert unexplained_dimension("cubic", V, n, Vo) == (V * V + V * n) + (V * Vo + n * Vo) + eu_exact
    assert unexplained_dimension("subcubic", V, n, Vo) == (V * V + V * n) + ov_rowmax + eu_exact
    assert unexplained_dimension("lowrank_qk", V, n, Vo) == (3 * V + 2 * V + V * n) + ov_rowmax + eu_exact
    assert unexplained_dimension("lowrank_qk_svd_only", V, n, Vo) == (4 * V + 2 * V + V * n) + ov_rowmax + eu_exact
    assert unexplained_dimension("quadratic_qk_eu", V, n, Vo) == (3 * V + 1 + V * n) + ov_rowmax + (Vo + V + 1) == 84
    assert unexplained_dimension("no_attention", V, n, Vo) == ov_rowmax + eu_exact == 75
    for V, n in ((8, 2), (8, 4), (64, 4), (64, 10)):  # V > 5: below that a rank-two QK model saves nothing
        dims = {name: unexplained_dimension(name, V, n) for name in STRATEGIES}
        assert max(dims, key=dims.get) == "brute_force"
        assert dims["cubic"] > dims["subcubic"] > dims["lowrank_qk"] > dims["quadratic_qk"] > dims["quadratic_qk_eu"]


def test_proof_results_report_their_unexplained_dimension(trained_small):
    c = trained_small.config
    for name in ("brute_force", "cubic", "lowrank_qk_eu"):
        assert STRATEGIES[name].prove(trained_small).unexplained_dim == unexplained_dimension(name, c.d_vocab, c.n_ctx)


def test_joint_wrong_logit_never_looser_than_cubic(trained_small):
    truth = brute_force_correct(trained_small)
    for seed in range(3):
        model = _perturbed(trained_small, seed, 0.2, 1.0) if seed else trained_small
        cubic = get_strategy("cubic").prove(model).certified
        joint = get_strategy("joint_logit").prove(model).certified
        assert cubic <= joint <= (truth if seed == 0 else brute_force_correct(model))


def test_joint_wrong_logit_certifies_what_separate_minima_lose():
    """Hand-built, uniform attention over (key, query): logits = D + (O[key] + O[query]) / 2 with a constant direct
    row D = (0, 1, 0) and OV rows O. On the input (2, 2) the logits are (1.5, 1, 2): right. The separate minima
    give min_j (D[2] - D[j]) + min_j (O[2, 2] - O[2, j]) = -1 + 0.5 < 0, but per wrong logit the margins are
    0 + 0.5 (j = 0) and -1 + 2 (j = 1), both positive. 5 of the 9 inputs are right, all certified jointly."""
    V, n = 3, 2
    model = MaxKTransformer(MaxKConfig(d_vocab=V, n_ctx=n, d_model=2 * V, d_head=2 * V))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E[:, :V] = torch.eye(V)
        model.W_V[0, :V, :V] = torch.eye(V)
        model.W_O[0, :V, V:] = torch.eye(V)  # the OV output lands in residual dims V..2V-1
        model.W_U[:V] = torch.tensor([0.0, 1.0, 0.0])  # EU[q] = D for every query
        model.W_U[V:] = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [1.5, 0, 2.0]])  # EVOU = O
    truth = brute_force_correct(model)
    assert truth == 5
    assert get_strategy("joint_logit").prove(model).certified == truth
    assert get_strategy("cubic").prove(model).certified == truth - 1  # misses (2, 2)
