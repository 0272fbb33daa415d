"""Exhaustive accuracy of a Max-of-K model (the paper's brute-force proof, Section 4.1).

One attention layer makes every logit a ratio of sums of per-(token, position) terms. With
``e[t, i] = exp(EQKE[q, t] + EQKP[q, i] - shift_q)`` and ``Vt[t, i] = EVOU[t] + PVOU[i]`` the logits of an
input whose last token is ``q`` are

    logits = EU[q] + (sum_i e[t_i, i] Vt[t_i, i]) / (sum_i e[t_i, i])
           = (sum_i e[t_i, i] (EU[q] + Vt[t_i, i])) / (sum_i e[t_i, i]),

so, the denominator being positive, ``argmax logits = argmax sum_i U[t_i, i]`` with
``U[t, i] = e[t, i] (EU[q] + Vt[t, i])``. We precompute ``U`` once per query token and, for every prefix
of the other positions, form the last two positions' outer sum by broadcasting: the work per input is
``(n_ctx - 1) * d_vocab_out`` additions and one max, instead of a forward pass.

An input counts as correct when the logit of its maximum token is *strictly* above every other logit
(a tie is wrong); all arithmetic is float64.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from reprolab.maxk_proofs.model import MaxKTransformer, PathProducts

__all__ = [
    "all_inputs",
    "brute_force_correct",
    "correct_mask_forward",
    "exhaustive_flops",
    "float32_correct",
    "forward_count_for_query",
]

# if one query's score table spans more than this, exp() could underflow: fall back to the forward pass
_MAX_SCORE_RANGE = 500.0


def exhaustive_flops(d_vocab: int, n_ctx: int, d_vocab_out: int) -> int:
    """FLOPs of :func:`brute_force_correct`: the tables plus (n_ctx + 1) * d_vocab_out per input."""
    tables = d_vocab * d_vocab * n_ctx * (3 * d_vocab_out + 3)
    return int(tables + d_vocab**n_ctx * (n_ctx + 1) * d_vocab_out)


@torch.no_grad()
def correct_mask_forward(model: MaxKTransformer, tokens: Tensor) -> Tensor:
    """Correctness of each input by the model's own forward pass in float64 (strict argmax = max token)."""
    double = MaxKTransformer(model.config).to(torch.float64)
    double.load_state_dict({k: v.to(torch.float64) for k, v in model.state_dict().items()})
    logits = double(tokens)
    return _strict_argmax_is(logits, tokens.max(dim=1).values)


def _strict_argmax_is(logits: Tensor, target: Tensor) -> Tensor:
    right = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, target.unsqueeze(-1), float("-inf")).max(dim=-1).values
    return right > others


@torch.no_grad()
def brute_force_correct(
    model: MaxKTransformer, paths: PathProducts | None = None, queries: list[int] | None = None
) -> int:
    """Number of the ``d_vocab ** n_ctx`` inputs the model gets right (exact, float64).

    With ``queries``, only the inputs whose last token is in ``queries`` are counted (for spot checks).
    """
    paths = paths or model.path_products()
    c = model.config
    V, n = c.d_vocab, c.n_ctx
    values = paths.EVOU[:, None, :] + paths.PVOU[None, :, :]  # [V, n, V_out]
    grid = torch.arange(V)
    correct = 0
    for q in range(V) if queries is None else queries:
        scores = paths.EQKE[q][:, None] + paths.EQKP[q][None, :]  # [V(token), n(position)]
        if float(scores.max() - scores.min()) > _MAX_SCORE_RANGE:
            correct += forward_count_for_query(model, q)
            continue
        e = torch.exp(scores - scores.max())
        U = e[:, :, None] * (values + paths.EU[q])  # [V, n, V_out]
        correct += _count_for_query(U, q, V, n, grid)
    return correct


def _count_for_query(U: Tensor, q: int, V: int, n: int, grid: Tensor) -> int:
    """Correct inputs ending in ``q``: loop over prefixes, broadcast the last (up to) two key positions."""
    keys = n - 1
    inner = min(2, keys)
    outer = keys - inner
    base = U[q, n - 1]
    if inner == 0:
        return int(_strict_argmax_is(base[None], torch.tensor([q])).sum())
    if inner == 1:
        inner_sum = U[:, 0]  # [V, V_out]
        inner_max = grid
    else:
        a, b = outer, outer + 1
        inner_sum = U[:, a][:, None, :] + U[:, b][None, :, :]  # [V, V, V_out]
        inner_max = torch.maximum(grid[:, None], grid[None, :])
    total = 0
    buffer = torch.empty_like(inner_sum)
    for prefix in itertools.product(range(V), repeat=outer):
        offset = base.clone()
        for i, t in enumerate(prefix):
            offset += U[t, i]
        torch.add(inner_sum, offset, out=buffer)
        target = inner_max.clamp_min(max((q, *prefix))).unsqueeze(-1)
        right = buffer.gather(-1, target).squeeze(-1)
        buffer.scatter_(-1, target, float("-inf"))
        total += int((right > buffer.amax(dim=-1)).sum())
    return total


def forward_count_for_query(model: MaxKTransformer, q: int, chunk: int = 1 << 16) -> int:
    """Fallback for extreme score ranges: the float64 forward pass over every input ending in ``q``."""
    V, n = model.config.d_vocab, model.config.n_ctx
    count = V ** (n - 1)
    total = 0
    for start in range(0, count, chunk):
        idx = torch.arange(start, min(count, start + chunk))
        digits = [(idx // V**p) % V for p in reversed(range(n - 1))]
        tokens = torch.stack([*digits, torch.full_like(idx, q)], dim=1)
        total += int(correct_mask_forward(model, tokens).sum())
    return total


@torch.no_grad()
def float32_correct(model: MaxKTransformer, *, forward: bool = False, chunk: int = 1 << 16) -> int:
    """Number of inputs the model gets right when evaluated in float32 (a tie counts as wrong).

    The proofs bound the exact (real-valued) model, checked against the float64 count of
    :func:`brute_force_correct`; users run the weights in float32, whose rounding can flip near-ties, so every
    bound is also checked against this count. ``forward=False`` forms the path products in float32 from the
    float32 weights and counts with the same per-(token, position) tables as brute force, all in float32 (about
    2 s for the 16.8 M Max-of-4 inputs); it differs from a float32 forward pass only in the order of its float32
    operations. ``forward=True`` runs the model's own float32 forward pass on every input (about 50 s).
    """
    single = MaxKTransformer(model.config)
    single.load_state_dict({k: v.detach().to(torch.float32).cpu() for k, v in model.state_dict().items()})
    V, n = model.config.d_vocab, model.config.n_ctx
    if not forward:
        return brute_force_correct(single, paths=_float32_paths(single))
    total = 0
    for start in range(0, V**n, chunk):
        idx = torch.arange(start, min(V**n, start + chunk))
        tokens = torch.stack([(idx // V**p) % V for p in reversed(range(n))], dim=1)
        total += int(_strict_argmax_is(single(tokens), tokens.max(dim=1).values).sum())
    return total


def _float32_paths(model: MaxKTransformer) -> PathProducts:
    """The path products of :meth:`MaxKTransformer.path_products`, computed in float32."""
    W = {name: p.detach() for name, p in model.named_parameters()}
    E, P, U = W["W_E"], W["W_pos"], W["W_U"]
    Eq = E + P[-1]
    M = W["W_Q"][0] @ W["W_K"][0].T / model.attn_scale
    OV = W["W_V"][0] @ W["W_O"][0]
    return PathProducts(EQKE=Eq @ M @ E.T, EQKP=Eq @ M @ P.T, EVOU=E @ OV @ U, PVOU=P @ OV @ U, EU=Eq @ U)


def all_inputs(d_vocab: int, n_ctx: int) -> Tensor:
    """Every input in lexicographic order, [d_vocab ** n_ctx, n_ctx] (for small vocabularies in tests)."""
    idx = torch.arange(d_vocab**n_ctx)
    return torch.stack([(idx // d_vocab**p) % d_vocab for p in reversed(range(n_ctx))], dim=1)
