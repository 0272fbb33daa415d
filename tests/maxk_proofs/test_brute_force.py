from __future__ import annotations

import pytest
import torch

from reprolab.maxk_proofs import MaxKConfig, MaxKTransformer, all_inputs, brute_force_correct, correct_mask_forward
from reprolab.maxk_proofs.pipeline import _table_correct


def _random(seed: int, scale: float = 1.0, **kwargs: int) -> MaxKTransformer:
    model = MaxKTransformer(MaxKConfig(**kwargs))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


@pytest.mark.parametrize(
    "shape",
    [
        {"d_vocab": 5, "n_ctx": 2, "d_model": 6, "d_head": 4},
        {"d_vocab": 6, "n_ctx": 3, "d_model": 6, "d_head": 6},
        {"d_vocab": 7, "n_ctx": 4, "d_model": 8, "d_head": 8},
        {"d_vocab": 4, "n_ctx": 5, "d_model": 8, "d_head": 8, "d_vocab_out": 6},
    ],
)
def test_brute_force_equals_forward_pass_on_every_input(shape):
    for seed, scale in [(0, 1.0), (1, 4.0)]:
        model = _random(seed, scale, **shape)
        expected = int(correct_mask_forward(model, all_inputs(shape["d_vocab"], shape["n_ctx"])).sum())
        assert brute_force_correct(model) == expected


def test_brute_force_handles_extreme_attention_scores():
    model = _random(2, 1.0, d_vocab=5, n_ctx=3, d_model=6, d_head=6)
    with torch.no_grad():
        model.W_Q.mul_(300.0)  # score ranges far beyond exp()'s float64 range
    expected = int(correct_mask_forward(model, all_inputs(5, 3)).sum())
    assert brute_force_correct(model) == expected


def test_trained_model_brute_force_matches_forward(trained_small):
    expected = int(correct_mask_forward(trained_small, all_inputs(8, 4)).sum())
    assert brute_force_correct(trained_small) == expected
    assert expected / 8**4 > 0.9


def test_table_evaluation_matches_forward_on_a_large_sample_at_full_size():
    model = _random(3, 1.0)
    tokens = torch.randint(0, 64, (20_000, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(_table_correct(model, tokens), correct_mask_forward(model, tokens))


def test_zero_model_ties_everywhere_so_accuracy_is_zero():
    model = _random(0, 0.0, d_vocab=5, n_ctx=3, d_model=4, d_head=4)
    assert brute_force_correct(model) == 0


def test_direct_path_model_has_closed_form_accuracy():
    # W_E = W_U = I, no attention output: predicts the last token, right iff it is the maximum
    V, n = 6, 3
    model = MaxKTransformer(MaxKConfig(d_vocab=V, n_ctx=n, d_model=V, d_head=V))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.W_E.copy_(torch.eye(V))
        model.W_U.copy_(torch.eye(V))
    assert brute_force_correct(model) == sum((q + 1) ** (n - 1) for q in range(V))
