from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from reprolab.maxk_proofs import MaxKConfig, MaxKTransformer, train_model

SMALL = MaxKConfig(d_vocab=8, n_ctx=4, d_model=16, d_head=16)


@pytest.fixture(scope="session")
def trained_small() -> MaxKTransformer:
    """A Max-of-4 model over 8 tokens, trained briefly (about 1 s)."""
    model = MaxKTransformer(SMALL)
    model.reset_parameters(torch.Generator().manual_seed(0))
    train_model(model, steps=400, generator=torch.Generator().manual_seed(1))
    return model


# -------------------------------------------------------------------------------- official cubic oracle
# Test oracle: the official cubic proof's counting, re-implemented from its description (not copied).
#
# Source read: JasonGross/guarantees-based-mechanistic-interpretability, gbmi/exp_max_of_n/verification/cubic.py
# (``compute_extreme_softmaxed_right_attention_cubic_simple``, ``compute_largest_wrong_logit_cubic``,
# ``count_correct_sequences_cubic``) and gbmi/utils/sequences.py (``count_sequences``). Per (query q, max m,
# non-max token k, count c of non-max key positions):
#
# 1. attention: key positions sorted by EQKP; the m copies placed at the lowest or at the highest positions (two
#    extreme orderings, softmax of each); the query position scores EQKE[q, q] + EQKP[q, -1];
# 2. wrong logits centred on m: PVOU pessimised over positions per wrong logit, EU per query over wrong logits,
#    EVOU + pessimised PVOU per key token over wrong logits; the largest wrong-minus-right logit is the worse of the
#    two orderings of a_max * w[m] + a_query * w[q] + a_k * w[k] plus the direct path. The groups without a
#    non-max key token keep the wrong logit joint across paths (as the official code does);
# 3. counting: a group is correct when that value is < 0 (no rounding slack), and c copies of any certified non-max
#    tokens count ``comb(n - 1, c) * |certified|^c`` sequences.
#
# ``before_fix=True`` reproduces the counting as it was before the official commit bd79dde ("Fix cubic proof",
# 2024-07-30, after the paper's first arXiv version): the attention paid to the non-max tokens was set to the query's
# attention (0 when the query is the max) instead of their own. That counting is not a proof (test_fidelity), and on
# our trained Max-of-4 models it gives the recalled paper value (docs/notes/maxk_proofs.md, the cubic gap).
#
# Everything runs in float64 on our path products (EQKE already divided by sqrt(d_head)).


def _attention(
    EQKE: torch.Tensor, pos: torch.Tensor, pos_q: float, q: int, m: int, k: int, c: int, before_fix: bool = False
):
    """(a_max, a_nonmax, a_query) for both extreme orderings, shape [2, 3]."""
    n_keys = pos.numel()
    n_max = n_keys - c
    out = torch.zeros(2, 3, dtype=torch.float64)
    for row, order in enumerate((pos, pos.flip(0))):
        scores = torch.empty(n_keys + 1, dtype=torch.float64)
        scores[:n_keys] = order
        scores[:n_max] += EQKE[q, m]
        scores[n_max:n_keys] += EQKE[q, k]
        scores[-1] = EQKE[q, q] + pos_q
        attn = scores.softmax(0)
        a_query = float(attn[-1])
        out[row, 0] = float(attn[:n_max].sum()) + (a_query if q == m else 0.0)
        out[row, 1] = float(attn[n_max:n_keys].sum())
        out[row, 2] = 0.0 if q == m else a_query
        if before_fix:  # the pre-bd79dde assignment: non-max attention := the query's attention
            out[row, 1] = out[row, 2]
    return out


def official_cubic_count(model: MaxKTransformer, before_fix: bool = False) -> int:
    """Number of inputs the official cubic proof certifies on ``model`` (``before_fix``: its pre-bd79dde form)."""
    paths = model.path_products()
    EQKE, EQKP, EVOU, PVOU, EU = paths.EQKE, paths.EQKP, paths.EVOU, paths.PVOU, paths.EU
    V, n = EQKE.shape[0], EQKP.shape[1]
    pos_sorted = EQKP[:, :-1].sort(dim=1).values
    certified = 0
    for m in range(V):
        pvou = (PVOU - PVOU[:, m : m + 1]).amax(dim=0)  # [V_out], 0 at m
        eu = EU - EU[:, m : m + 1]
        evou = EVOU - EVOU[:, m : m + 1]
        wrong = torch.ones(EU.shape[1], dtype=torch.bool)
        wrong[m] = False
        eu_pess = eu[:, wrong].amax(dim=1)  # [V]
        epvou_pess = (evou + pvou)[:, wrong].amax(dim=1)  # [V]
        for q in range(m + 1):
            if q == m:
                value = float((eu[m] + evou[m] + pvou)[wrong].max())
            else:
                attn = _attention(EQKE, pos_sorted[q], float(EQKP[q, -1]), q, m, m, 0)
                logits = eu[q][None] + pvou[None] + evou[m][None] * attn[:, 0:1] + evou[q][None] * attn[:, 2:3]
                value = float(logits[:, wrong].max())
            certified += int(value < 0)
            for c in range(1, n):
                if q != m and c >= n - 1:
                    continue
                ok = 0
                for k in range(m):
                    attn = _attention(EQKE, pos_sorted[q], float(EQKP[q, -1]), q, m, k, c, before_fix)
                    w = attn[:, 0] * epvou_pess[m] + attn[:, 2] * epvou_pess[q] + attn[:, 1] * epvou_pess[k]
                    ok += int(float(eu_pess[q] + w.max()) < 0)
                certified += math.comb(n - 1, c) * ok**c
    return certified


@pytest.fixture(scope="session")
def official_cubic() -> Callable[[MaxKTransformer], int]:
    """The official cubic counting (see the comment above) as a test oracle."""
    return official_cubic_count
