from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprolab.maxk_proofs import STRATEGIES, MaxKConfig, MaxKTransformer, brute_force_correct, get_strategy
from reprolab.maxk_proofs.proofs import FlopCounter, _count_bisect, _count_enumerate, _count_tokens, _Tables


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


def test_cost_ordering_brute_force_cubic_subcubic(trained_small):
    names = ("brute_force", "cubic", "cubic_prefix", "subcubic")
    flops = {name: STRATEGIES[name].prove(trained_small).flops for name in names}
    assert flops["brute_force"] > flops["cubic"] > flops["subcubic"]
    assert flops["cubic_prefix"] > flops["subcubic"]
