"""Proof strategies: certified lower bounds on a Max-of-K model's accuracy over all d_vocab^n_ctx inputs.

Every strategy implements one interface (:class:`ProofStrategy`): ``prove(model) -> ProofResult`` with the
bound, the FLOPs it spent (counted analytically from the operations it runs, as in the paper's Appendix
A.3 convention of counting arithmetic on the model's matrices), its wall time, its asymptotic complexity
and the mechanistic assumptions it uses.

Proof skeleton shared by the non-brute-force strategies (paper Sections 4.2-4.3, our own derivation):

1. Path decomposition (Section 3). For an input with max token ``m``, query ``q`` (last token) and any
   wrong logit ``j``, the margin is ``EU[q,m]-EU[q,j] + sum_i a_i (EVOU[t_i,m]-EVOU[t_i,j] + PVOU[i,m]-PVOU[i,j])``.
   Because ``a`` is a convex combination, the positional part is at least ``pmin[m,j] = min_i (PVOU[i,m]-PVOU[i,j])``,
   and taking the minimum over ``j`` separately for the direct path and for each attended token gives
   ``margin >= eumin[q,m] + sum_i a_i h[m, t_i]`` with ``h[m,t] <= min_j (EVOU[t,m]-EVOU[t,j]+pmin[m,j])``.
2. Grouping (the cubic proof's grouping by query, max token, largest non-max token ``k`` and number ``c`` of
   non-max key positions). Within a group the attention ``A`` paid to copies of ``m`` is smallest when every
   non-max token has the largest score allowed, ``max_{t<=k} EQKE[q,t]``, and the copies of ``m`` sit at the
   key positions of lowest ``EQKP`` (an exchange argument: swapping a max position with a higher-EQKP non-max
   position lowers ``A``). Then ``sum_i a_i h[m,t_i] >= min_{A' in [A_min, 1]} (A' h[m,m] + (1-A') u)`` with
   ``u = min(h[m,q], min_{t<=k} h[m,t])``.
3. Counting. A group is certified when its margin bound exceeds the rounding tolerance; the bound is the
   certified count over ``d_vocab ** n_ctx``. The bound is non-increasing in ``k`` (prefix maxima/minima), so the
   subcubic proofs binary-search the largest certified ``k`` per (query, max, c) instead of enumerating ``k``.

Subcubic strategies avoid forming EQKE (Section 4.3): the query side is split into a rank-one part (the mean
query, "mean+diff", or its top singular direction, "SVD only") and a remainder; the key side into its top
singular direction and a remainder. The rank-one products are computed exactly and the remainder-remainder
product is bounded entrywise by ``e_q * f_k`` (Cauchy-Schwarz on rows, a spectral-norm or Frobenius-norm
bound, or one global constant, "quadratic"). The OV circuit is bounded per token by pessimising the wrong
logit separately (quadratic instead of cubic), and the direct path optionally by a rank-one model with a
norm-bounded error ("low-rank EU").

Floating point: everything is float64. A group is certified only when its margin bound exceeds
``1e-9 * (1 + scale)`` where ``scale`` bounds the magnitudes involved; float64 rounding over the O(d_model)
operations behind each number is below 1e-13 relative, so this slack makes every certified group truly
correct for the exact real-valued model. Interval bounds on EQKE get the same relative slack; numerically
computed norms (spectral, Frobenius, row norms) are inflated by a factor (1 + 1e-9). The positional scores
``EQKP`` are computed the same way, so their rounding slack (the same relative size) is added to the token
interval too: every attention score ``EQKE[q,t] + EQKP[q,i]`` is then bracketed, not only its token part.

Unexplained dimension (paper Appendix A.2; accounting as in the official code, ``EffectiveDimensionApproximation``
and ``max_of_K_all_models.py``): the number of real numbers, read off the model without a structural claim, on
which a proof's bound depends. Brute force treats the model as a lookup table from ``V^n`` inputs to ``V_out``
logits (``V^n V_out``; the paper's ``d_vocab^(n_ctx+1)``). The cubic proof evaluates every path table entrywise
(``EU``, ``EVOU``, ``PVOU``, ``EQKE``, ``EQKP``: ``3 V^2 + 2 n V`` when ``V_out = V``, the paper's
``CubicEffectiveDimensionalityEstimate``). A path replaced by a low-rank model plus a norm-bounded error costs only
the parameters of the low-rank factors and of the error bound. Each component below reports its own count
(``unexplained_dimension``); a strategy's count is their sum (:func:`unexplained_dimension`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from reprolab.maxk_proofs.brute_force import brute_force_correct, exhaustive_flops
from reprolab.maxk_proofs.model import MaxKTransformer

__all__ = [
    "STRATEGIES",
    "FlopCounter",
    "ProofResult",
    "ProofStrategy",
    "get_strategy",
    "strategy_names",
    "unexplained_dimension",
]

_REL_TOL = 1e-9
_INFLATE = 1.0 + 1e-9


@dataclass
class FlopCounter:
    """Analytic FLOP count: a matmul [a,b]@[b,c] is 2abc; an elementwise op over N entries is N."""

    flops: int = 0

    def matmul(self, a: int, b: int, c: int) -> None:
        self.flops += 2 * a * b * c

    def elementwise(self, n: int, ops: int = 1) -> None:
        self.flops += int(n) * ops

    def svd(self, rows: int, cols: int) -> None:
        """A thin SVD of a rows x cols matrix, counted as 4 rows cols^2 + 8 cols^3 (Golub-Van Loan order)."""
        small = min(rows, cols)
        self.flops += 4 * max(rows, cols) * small * small + 8 * small**3


@dataclass(frozen=True)
class ProofResult:
    """One proof's outcome: ``bound`` is a certified lower bound on accuracy over all inputs."""

    strategy: str
    bound: float
    certified: int
    total: int
    flops: int
    wall_s: float
    complexity: str
    assumptions: str
    unexplained_dim: int = 0  # Appendix A.2; see :func:`unexplained_dimension`

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Weights:
    """Float64 weights a proof reads: E, P, query-side E+P[-1], M = W_Q W_K^T / sqrt(d_head), W_V W_O, U."""

    E: Tensor
    P: Tensor
    Eq: Tensor
    M: Tensor
    OV: Tensor
    U: Tensor

    @property
    def scale(self) -> float:
        """An upper bound on the magnitude of any product of a residual row through M or OV to U (for tolerances)."""
        rows = max(float(self.Eq.norm(dim=1).max()), float(self.E.norm(dim=1).max()), float(self.P.norm(dim=1).max()))
        mats = 1.0 + float(torch.linalg.matrix_norm(self.M)) + float(torch.linalg.matrix_norm(self.OV))
        cols = max(rows, float(self.U.norm(dim=0).max()))
        return (1.0 + rows) * mats * (1.0 + cols)

    @classmethod
    def of(cls, model: MaxKTransformer, counter: FlopCounter) -> _Weights:
        W = {name: p.detach().to(torch.float64).cpu() for name, p in model.named_parameters()}
        d, h = model.config.d_model, model.config.d_head
        counter.matmul(d, h, d)
        counter.matmul(d, h, d)
        counter.elementwise(model.config.d_vocab * d)
        return cls(
            E=W["W_E"],
            P=W["W_pos"],
            Eq=W["W_E"] + W["W_pos"][-1],
            M=W["W_Q"][0] @ W["W_K"][0].T / model.attn_scale,
            OV=W["W_V"][0] @ W["W_O"][0],
            U=W["W_U"],
        )


# --------------------------------------------------------------------------------------------- QK circuit
@dataclass(frozen=True)
class QKBound:
    """Entrywise interval ``lo <= EQKE <= hi`` and the exact ``EQKP``.

    ``mode``: ``exact`` (form EQKE: O(V^2 d)); ``lowrank`` (rank-one query part + top key direction, remainder
    bounded by ``err``); ``none`` (no structure: |EQKE[q,k]| <= ||(Eq M)[q]|| ||E[k]||).
    ``query``: ``meandiff`` (mean query row) or ``svd`` (top right singular vector of the query embeddings).
    ``err``: ``rowcs`` (Cauchy-Schwarz on rows of the remainder after M), ``spectral`` (||Q2[q]|| sigma_max(M)),
    ``frobenius`` (||Q2[q]|| ||M||_F) or ``global`` (one constant for every entry, the paper's "quadratic").
    """

    mode: str = "exact"
    query: str = "meandiff"
    err: str = "rowcs"

    def complexity(self) -> str:
        return {"exact": "V^2 d", "lowrank": "V d^2 + V^2", "none": "V d^2 + V^2"}[self.mode]

    def unexplained_dimension(self, V: int, n: int) -> int:
        """EQKP (``V n``, always exact) plus: ``exact`` the whole EQKE (``V^2``); ``lowrank`` the rank-two centre
        (``row``, ``Q2 M y`` and ``E y``: ``3V``, plus the query coefficients ``a`` for ``svd``) and the error
        bound (``e_q``, ``f_k``: ``2V``; one number for ``global``); ``none`` the two norm vectors (``2V``)."""
        if self.mode == "exact":
            return V * V + V * n
        if self.mode == "none":
            return 2 * V + V * n
        centre = 3 * V + (V if self.query == "svd" else 0)
        error = 1 if self.err == "global" else 2 * V
        return centre + error + V * n

    def compute(self, w: _Weights, counter: FlopCounter) -> tuple[Tensor, Tensor, Tensor]:
        V, d = w.E.shape
        n = w.P.shape[0]
        EqM = w.Eq @ w.M
        counter.matmul(V, d, d)
        EQKP = EqM @ w.P.T
        counter.matmul(V, d, n)
        # Rounding slack of the token score plus that of the positional score: a score is EQKE[q,t] + EQKP[q,i]
        # and EQKP is computed in float64 just like EQKE, so its rounding error is widened into the token
        # interval (the true score then lies in [lo + EQKP, hi + EQKP] for the computed EQKP).
        slack = 2.0 * _REL_TOL * w.scale
        if self.mode == "exact":
            EQKE = EqM @ w.E.T
            counter.matmul(V, d, V)
            return EQKE - slack, EQKE + slack, EQKP
        if self.mode == "none":
            e = EqM.norm(dim=1) * _INFLATE
            f = w.E.norm(dim=1) * _INFLATE
            counter.elementwise(2 * V * d + 2 * V * V)
            err = e[:, None] * f[None, :] + slack
            return -err, err, EQKP
        if self.mode != "lowrank":
            raise ValueError(f"unknown QK mode {self.mode!r}")
        center, err = self._lowrank(w, counter)
        counter.elementwise(V * V, 4)
        return center - err - slack, center + err + slack, EQKP

    def _lowrank(self, w: _Weights, counter: FlopCounter) -> tuple[Tensor, Tensor]:
        V, d = w.E.shape
        if self.query == "meandiff":
            x = w.Eq.mean(dim=0)  # Q1 = 1 x^T
            a = torch.ones(V, dtype=w.E.dtype)
            counter.elementwise(V * d)
        elif self.query == "svd":
            x = torch.linalg.svd(w.Eq, full_matrices=False).Vh[0]
            a = w.Eq @ x  # Q1 = a x^T
            counter.svd(V, d)
            counter.matmul(V, d, 1)
        else:
            raise ValueError(f"unknown query split {self.query!r}")
        Q2 = w.Eq - a[:, None] * x[None, :]
        counter.elementwise(V * d, 2)
        y = torch.linalg.svd(w.E, full_matrices=False).Vh[0]  # key direction
        counter.svd(V, d)
        Ey = w.E @ y
        K2 = w.E - Ey[:, None] * y[None, :]
        counter.matmul(V, d, 1)
        counter.elementwise(V * d, 2)
        xM = x @ w.M
        counter.matmul(1, d, d)
        row = w.E @ xM  # Q1 M E^T = a row^T
        counter.matmul(V, d, 1)
        Q2My = Q2 @ (w.M @ y)  # Q2 M (E y y^T)^T = (Q2 M y) Ey^T
        counter.matmul(d, d, 1)
        counter.matmul(V, d, 1)
        center = a[:, None] * row[None, :] + Q2My[:, None] * Ey[None, :]
        counter.elementwise(V * V, 3)
        f = K2.norm(dim=1) * _INFLATE
        counter.elementwise(V * d, 2)
        if self.err in ("rowcs", "global"):
            R = Q2 @ w.M
            counter.matmul(V, d, d)
            R = R - (R @ y)[:, None] * y[None, :]  # K2 is orthogonal to y
            counter.elementwise(V * d, 4)
            e = R.norm(dim=1) * _INFLATE
            counter.elementwise(V * d, 2)
        elif self.err == "spectral":
            e = Q2.norm(dim=1) * torch.linalg.matrix_norm(w.M, ord=2) * _INFLATE**2
            counter.svd(d, d)
            counter.elementwise(V * d, 2)
        elif self.err == "frobenius":
            e = Q2.norm(dim=1) * torch.linalg.matrix_norm(w.M) * _INFLATE**2
            counter.elementwise(V * d + d * d, 2)
        else:
            raise ValueError(f"unknown error bound {self.err!r}")
        if self.err == "global":
            err = torch.full((V, V), float(e.max() * f.max()) * _INFLATE, dtype=w.E.dtype)
        else:
            err = e[:, None] * f[None, :]
        counter.elementwise(V * V)
        return center, err


# --------------------------------------------------------------------------------------------- OV and direct
def _max_excluding_diagonal(X: Tensor, V: int, counter: FlopCounter) -> Tensor:
    """``out[r, m] = max_{j != m} X[r, j]`` for every m < V, from the top two of each row (O(rows * cols))."""
    top = X.topk(2, dim=1)
    counter.elementwise(X.numel(), 2)
    cols = torch.arange(V)
    out = top.values[:, :1].expand(X.shape[0], V).clone()
    hit = top.indices[:, :1] == cols[None, :]
    out[hit.expand_as(out)] = top.values[:, 1:2].expand_as(out)[hit.expand_as(out)]
    return out


@dataclass(frozen=True)
class OVBound:
    """A table ``h[m, t]`` with ``h[m,t] <= min_{j != m} (EVOU[t,m] - EVOU[t,j] + pmin[m,j])``.

    ``exact`` computes the minimum (O(V^3)); ``rowmax`` splits it into
    ``EVOU[t,m] - max_{j != m} EVOU[t,j] + min_{j != m} pmin[m,j]`` (O(V^2) after EVOU), exact on the diagonal.
    """

    mode: str = "exact"

    def unexplained_dimension(self, V: int, Vo: int, n: int) -> int:
        """``exact``: EVOU and PVOU entrywise (``V V_out + n V_out``, the official cubic count). ``rowmax``: EVOU
        entrywise plus one pessimised positional number per max token (``V V_out + V``, the official subcubic
        count ``EVOU_cost + subcubic_PVOU_cost``)."""
        return V * Vo + (n * Vo if self.mode == "exact" else V)

    def compute(self, w: _Weights, counter: FlopCounter) -> Tensor:
        V, d = w.E.shape
        n = w.P.shape[0]
        Vo = w.U.shape[1]
        EVOU = (w.E @ w.OV) @ w.U
        PVOU = (w.P @ w.OV) @ w.U
        counter.matmul(V, d, d)
        counter.matmul(V, d, Vo)
        counter.matmul(n, d, d)
        counter.matmul(n, d, Vo)
        m_idx = torch.arange(V)
        # pmin[m, j] = min_i (PVOU[i, m] - PVOU[i, j]); +inf at j = m so it is excluded from minima
        pmin = (PVOU[:, :V, None] - PVOU[:, None, :]).amin(dim=0)
        pmin[m_idx, m_idx] = float("inf")
        counter.elementwise(n * V * Vo, 2)
        if self.mode == "exact":
            # diff[m, t, j] = EVOU[t, m] - EVOU[t, j] + pmin[m, j]
            diff = EVOU[:, :V].T[:, :, None] - EVOU[None, :, :] + pmin[:, None, :]
            counter.elementwise(V * V * Vo, 3)
            return diff.amin(dim=2)
        if self.mode != "rowmax":
            raise ValueError(f"unknown OV mode {self.mode!r}")
        best_wrong = _max_excluding_diagonal(EVOU, V, counter)  # [t, m]
        h = EVOU[:, :V].T - best_wrong.T + pmin.amin(dim=1)[:, None]
        counter.elementwise(V * Vo + V * V, 2)
        diag = (EVOU[m_idx, m_idx][:, None] - EVOU[:V] + pmin).amin(dim=1)  # exact h[m, m]
        counter.elementwise(V * Vo, 3)
        h[m_idx, m_idx] = diag
        return h


@dataclass(frozen=True)
class EUBound:
    """``eumin[q, m] <= min_{j != m} EU[q,m] - EU[q,j]``: ``exact`` (O(V^2 d)) or ``lowrank``
    (mean query row exactly, remainder by ``||Q2[q]|| * 2 max_j ||U[:, j]||``, O(V d))."""

    mode: str = "exact"

    def unexplained_dimension(self, V: int, Vo: int) -> int:
        """``exact``: the EU table (``V V_out``); ``lowrank``: the mean row (``V_out``), the per-query remainder
        norms (``V``) and the largest unembedding column norm (1)."""
        return V * Vo if self.mode == "exact" else Vo + V + 1

    def compute(self, w: _Weights, counter: FlopCounter) -> Tensor:
        V, d = w.E.shape
        Vo = w.U.shape[1]
        if self.mode == "exact":
            EU = w.Eq @ w.U
            counter.matmul(V, d, Vo)
            return EU[:, :V] - _max_excluding_diagonal(EU, V, counter)
        if self.mode != "lowrank":
            raise ValueError(f"unknown EU mode {self.mode!r}")
        mean = w.Eq.mean(dim=0)
        base = (mean @ w.U)[None, :]
        counter.matmul(1, d, Vo)
        margin = base[:, :V] - _max_excluding_diagonal(base, V, counter)  # [1, V]
        Q2 = w.Eq - mean
        err = 2.0 * Q2.norm(dim=1) * w.U.norm(dim=0).max() * _INFLATE**2
        counter.elementwise(2 * V * d + 2 * d * Vo)
        return margin - err[:, None]


# --------------------------------------------------------------------------------------------- grouping
@dataclass
class _Tables:
    lo: Tensor  # [q, m] lower bound on EQKE
    hi_prefix: Tensor  # [q, k] max_{t <= k} upper bound on EQKE[q, t]
    hi: Tensor
    pos_sorted: Tensor  # [q, n-1] EQKP over key positions, ascending
    pos_query: Tensor  # [q] EQKP at the query position
    h: Tensor  # [m, t]
    h_prefix: Tensor  # [m, k] min_{t <= k} h[m, t]
    eumin: Tensor  # [q, m]
    tol: float
    attention: bool


def _group_margin(T: _Tables, q: Tensor, m: Tensor, k: Tensor, c: int, n: int) -> Tensor:
    """Lower bound on the margin of every input in group (q, m, k, c); index tensors broadcast together."""
    q, m, k = torch.broadcast_tensors(q, m, k)
    hmm = T.h[m, m]
    if c == 0:
        u = torch.where(q == m, hmm, T.h[m, q])
    else:
        u = torch.minimum(torch.where(q == m, hmm, T.h[m, q]), T.h_prefix[m, k])
    if T.attention:
        n_max = n - 1 - c
        pos = T.pos_sorted[q]  # [..., n-1]
        s_max = T.lo[q, m][..., None] + pos[..., :n_max]
        s_non = T.hi_prefix[q, k][..., None] + pos[..., n_max:]
        is_max_query = q == m
        s_query = torch.where(is_max_query, T.lo[q, q], T.hi[q, q]) + T.pos_query[q]
        everything = torch.cat([s_max, s_non, s_query[..., None]], dim=-1)
        lse_all = torch.logsumexp(everything, dim=-1)
        with_query = torch.cat([s_max, s_query[..., None]], dim=-1)
        lse_max = torch.where(
            is_max_query,
            torch.logsumexp(with_query, dim=-1),
            torch.logsumexp(s_max, dim=-1) if n_max else torch.full_like(lse_all, float("-inf")),
        )
        a_min = torch.exp(lse_max - lse_all).clamp(0.0, 1.0)
    else:  # no claim about attention: only the all-max input is known to attend to the max token
        a_min = ((q == m) & (c == 0)).to(hmm.dtype)
    body = torch.minimum(hmm, u + a_min * (hmm - u))
    return T.eumin[q, m] + body


def _group_flops(n: int) -> int:
    return 10 * n + 24


def _make_tables(
    lo: Tensor, hi: Tensor, EQKP: Tensor, h: Tensor, eumin: Tensor, attention: bool, scale: float
) -> _Tables:
    V = lo.shape[0]
    return _Tables(
        lo=lo,
        hi=hi,
        hi_prefix=hi.cummax(dim=1).values,
        pos_sorted=EQKP[:, :-1].sort(dim=1).values,
        pos_query=EQKP[:, -1],
        h=h,
        h_prefix=h[:, :V].cummin(dim=1).values,
        eumin=eumin,
        tol=_REL_TOL * scale,
        attention=attention,
    )


def _sum_of_powers(values: Tensor, c: int) -> int:
    """Exact ``sum(v ** c)`` in Python integers (int64 would overflow for long contexts)."""
    counts = torch.bincount(values.flatten().long()).tolist()
    return sum(cnt * v**c for v, cnt in enumerate(counts) if cnt)


def _count_enumerate(T: _Tables, V: int, n: int, counter: FlopCounter) -> int:
    """Cubic grouping: every valid (q, m, k, c) group (q <= m, k < m) is evaluated."""
    idx = torch.arange(V)
    q, m = torch.meshgrid(idx, idx, indexing="ij")
    keep = q <= m
    q, m = q[keep], m[keep]
    certified = int((_group_margin(T, q, m, m, 0, n) > T.tol).sum())
    counter.elementwise(q.numel(), _group_flops(n))
    q3, m3, k3 = torch.meshgrid(idx, idx, idx, indexing="ij")
    for c in range(1, n):
        keep = (q3 <= m3) & (k3 < m3) & ((c <= n - 2) | (q3 == m3))
        q, m, k = q3[keep], m3[keep], k3[keep]
        ok = _group_margin(T, q, m, k, c, n) > T.tol
        counter.elementwise(q.numel(), _group_flops(n))
        per_k = torch.bincount(k[ok], minlength=V).tolist()  # certified groups per largest non-max token
        certified += math.comb(n - 1, c) * sum(cnt * ((kk + 1) ** c - kk**c) for kk, cnt in enumerate(per_k))
    return certified


def _count_tokens(T: _Tables, V: int, n: int, counter: FlopCounter) -> int:
    """Cubic grouping in unnormalised form: per (q, m, c), the set of non-max tokens that are certified.

    Since ``margin >= eumin + sum_i a_i h[m, t_i] = (1/Z) sum_i x_i (eumin + h[m, t_i])`` with
    ``x_i = exp(score_i) > 0``, the sign is that of a sum of *independent* per-position terms. A token ``t`` at
    key position ``i`` contributes at least ``exp(p_i) * gamma[q, m, t]`` with
    ``gamma = min over the EQKE interval of exp(s) (h[m, t] + eumin[q, m])``. For a sequence whose non-max tokens
    have ``gamma >= g``, the sum is at least ``value(g) = min_M [sum_{i in M} e^{p_i} alpha + sum_{i not in M}
    e^{p_i} g] + beta`` (``M``: the max-token positions; the minimum is at the lowest or highest positions), which
    increases with ``g``. So every token ``t`` with ``value(gamma[q, m, t]) > 0`` can be mixed freely: the group
    certifies ``|S|^c`` choices of non-max tokens per placement. O(V^3 n_ctx).
    """
    idx = torch.arange(V)
    p_shift = torch.maximum(T.pos_sorted.max(dim=1).values, T.pos_query)[:, None]
    e_keys = torch.exp(T.pos_sorted - p_shift)  # [q, n-1], ascending, <= 1
    e_query = torch.exp(T.pos_query[:, None] - p_shift)[:, 0]  # [q]
    p_all = e_keys.sum(dim=1)
    counter.elementwise(V * n, 4)
    q3, m3, t3 = idx[:, None, None], idx[None, :, None], idx[None, None, :]
    q2, m2 = idx[:, None], idx[None, :]

    def weighted(value: Tensor, q: Tensor, m: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(lower bound of exp(s - lo[q, m]) * value over the interval of s, flag: exponent too large)."""
        up = T.hi[q, t] - T.lo[q, m]
        down = T.lo[q, t] - T.lo[q, m]
        out = torch.where(value >= 0, torch.exp(down.clamp_max(700.0)) * value, torch.exp(up.clamp_max(700.0)) * value)
        return out, up > 700.0

    # values shifted down by the tolerance, so a positive sum means a margin above every rounding error
    gamma, bad3 = weighted(T.h[m3, t3] + T.eumin[q3, m3] - T.tol, q3, m3, t3)  # [q, m, t]
    counter.elementwise(V**3, 6)
    alpha, bad2 = weighted(T.h[m2, m2] + T.eumin[q2, m2] - T.tol, q2, m2, m2)  # [q, m]
    beta = torch.where(q2 == m2, alpha, gamma[q2, m2, q2]) * e_query[:, None]
    bad2 = bad2 | bad3[q2, m2, q2]
    # exp() underflow hides at most |value| * exp(-700) per position: added to the threshold
    vmax = (T.h.abs().max() + T.eumin.abs().max() + T.tol) * 1e-300
    valid_qm = (q2 <= m2) & ~bad2
    noise0 = 1e-9 * (alpha.abs() * p_all[:, None] + beta.abs()) + vmax * n
    certified = int(((alpha * p_all[:, None] + beta > noise0) & valid_qm).sum())
    cum = torch.cumsum(e_keys, dim=1)
    a = alpha[:, :, None]
    b = beta[:, :, None]
    pa = p_all[:, None, None]
    for c in range(1, n):
        n_max = n - 1 - c
        s_low = (cum[:, n_max - 1] if n_max else torch.zeros(V, dtype=cum.dtype))[:, None, None]
        s_high = (p_all - cum[:, c - 1])[:, None, None]
        value = torch.minimum(gamma * (pa - s_low) + a * s_low, gamma * (pa - s_high) + a * s_high) + b
        noise = 1e-9 * ((a.abs() + gamma.abs()) * pa + b.abs()) + vmax * n
        counter.elementwise(V**3, 14)
        ok = (value > noise) & (t3 < m3) & ~bad3
        sizes = ok.sum(dim=2)  # [q, m]
        fits = valid_qm & ((c <= n - 2) | (q2 == m2))
        certified += math.comb(n - 1, c) * _sum_of_powers(sizes[fits], c)
    return certified


def _joint_paths(w: _Weights, counter: FlopCounter) -> tuple[Tensor, Tensor, Tensor]:
    """``EU`` [V, V_out], ``EVOU`` [V, V_out] and ``pmin[m, j] = min_i PVOU[i, m] - PVOU[i, j]`` [V, V_out]."""
    V, d = w.E.shape
    n, Vo = w.P.shape[0], w.U.shape[1]
    EU = w.Eq @ w.U
    EVOU = (w.E @ w.OV) @ w.U
    PVOU = (w.P @ w.OV) @ w.U
    counter.matmul(V, d, Vo)
    counter.matmul(V, d, d)
    counter.matmul(V, d, Vo)
    counter.matmul(n, d, d)
    counter.matmul(n, d, Vo)
    pmin = (PVOU[:, :V, None] - PVOU[:, None, :]).amin(dim=0)
    counter.elementwise(n * V * Vo, 2)
    return EU, EVOU, pmin


def _count_joint(T: _Tables, EU: Tensor, EVOU: Tensor, pmin: Tensor, V: int, n: int, counter: FlopCounter) -> int:
    """The unnormalised token grouping of :func:`_count_tokens`, with the wrong logit kept joint across paths.

    Since the attention weights sum to one, the margin over wrong logit ``j`` is
    ``sum_i a_i g[q, m, t_i, j]`` with ``g = EU[q,m] - EU[q,j] + EVOU[t,m] - EVOU[t,j] + pmin[m, j]``: one
    number per (query, max, token, wrong logit), instead of the separate minima over ``j`` of the direct path
    (``eumin``) and of each attended token (``h``). For each ``j`` the argument of :func:`_count_tokens` applies
    unchanged, so a token is certified when the placement bound is positive for every ``j``, and certified tokens
    mix freely. Never looser than ``cubic`` (``min_j (x_j + y_j) >= min_j x_j + min_j y_j``), but
    O(V^3 V_out n_ctx): one query token at a time, O(V^2 V_out) memory.
    """
    idx = torch.arange(V)
    Vo = EU.shape[1]
    p_shift = torch.maximum(T.pos_sorted.max(dim=1).values, T.pos_query)[:, None]
    e_keys = torch.exp(T.pos_sorted - p_shift)  # [q, n-1], ascending, <= 1
    e_query = torch.exp(T.pos_query[:, None] - p_shift)[:, 0]
    p_all = e_keys.sum(dim=1)
    cum = torch.cumsum(e_keys, dim=1)
    counter.elementwise(V * n, 4)
    certified = 0
    for q in range(V):
        ms = idx[q:]  # the max token is at least the query token
        mi = torch.arange(ms.numel())
        g = (EU[q, ms][:, None, None] - EU[q][None, None, :]) + (EVOU[:, ms].T[:, :, None] - EVOU[None, :, :])
        g = g + pmin[ms][:, None, :] - T.tol  # [m, t, j], shifted down by the tolerance
        is_right = torch.arange(Vo)[None, None, :] == ms[:, None, None]
        g = torch.where(is_right, torch.ones_like(g), g)  # j = m is not a wrong logit
        up = (T.hi[q][None, :] - T.lo[q, ms][:, None])[:, :, None]
        down = (T.lo[q][None, :] - T.lo[q, ms][:, None])[:, :, None]
        gam = torch.where(g >= 0, torch.exp(down.clamp_max(700.0)) * g, torch.exp(up.clamp_max(700.0)) * g)
        bad = up[:, :, 0] > 700.0  # [m, t]: exponent too large to bound, never certified
        counter.elementwise(g.numel(), 12)
        vmax = float(g.abs().max()) * 1e-300 * n  # exp() underflow hides at most this much
        alpha = gam[mi, ms]  # [m, j]: the max token at a key position
        beta = torch.where((ms == q)[:, None], alpha, gam[:, q]) * e_query[q]  # the query position
        bad_qm = bad[mi, ms] | bad[:, q]
        pa = p_all[q]
        ok0 = (alpha * pa + beta > 1e-9 * (alpha.abs() * pa + beta.abs()) + vmax).all(dim=1) & ~bad_qm
        certified += int(ok0.sum())
        a, b = alpha[:, None, :], beta[:, None, :]
        for c in range(1, n):
            n_max = n - 1 - c
            s_low = cum[q, n_max - 1] if n_max else torch.zeros((), dtype=cum.dtype)
            s_high = pa - cum[q, c - 1]
            value = torch.minimum(gam * (pa - s_low) + a * s_low, gam * (pa - s_high) + a * s_high) + b
            noise = 1e-9 * ((a.abs() + gam.abs()) * pa + b.abs()) + vmax
            counter.elementwise(g.numel(), 14)
            ok = (value > noise).all(dim=2) & (idx[None, :] < ms[:, None]) & ~bad & ~bad_qm[:, None]
            fits = (c <= n - 2) | (ms == q)
            certified += math.comb(n - 1, c) * _sum_of_powers(ok.sum(dim=1)[fits], c)
    return certified


def _count_bisect(T: _Tables, V: int, n: int, counter: FlopCounter, whole: bool = False) -> int:
    """Subcubic grouping: per (q, m, c) the largest certified k by binary search (monotone in k).

    With ``whole`` only k = m - 1 is tried (all non-max tokens allowed), one evaluation per (q, m, c).
    """
    idx = torch.arange(V)
    q, m = idx[:, None].expand(V, V), idx[None, :].expand(V, V)
    ok0 = (_group_margin(T, q, m, m, 0, n) > T.tol) & (q <= m)
    certified = int(ok0.sum())
    counter.elementwise(V * (V + 1) // 2, _group_flops(n))
    for c in range(1, n):
        fits = (q <= m) & (m >= 1) & ((c <= n - 2) | (q == m))
        top = (m - 1).clamp_min(0)
        if whole:
            ok = (_group_margin(T, q, m, top, c, n) > T.tol) & fits
            counter.elementwise(int(fits.sum()), _group_flops(n))
            best = torch.where(ok, top, -1)
        else:
            low = torch.full((V, V), -1)  # largest k known certified (-1: none)
            high = torch.where(fits, top, -1)  # largest k not yet ruled out
            while bool((low < high).any()):
                mid = (low + high + 1) // 2
                active = low < high
                ok = _group_margin(T, q, m, mid.clamp_min(0), c, n) > T.tol
                counter.elementwise(int(active.sum()), _group_flops(n))
                low = torch.where(active & ok, mid, low)
                high = torch.where(active & ~ok, mid - 1, high)
            best = low
        count = _sum_of_powers(best[best >= 0] + 1, c)
        certified += math.comb(n - 1, c) * count
    return certified


# --------------------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class ProofStrategy:
    """A named proof strategy; ``prove(model)`` returns a :class:`ProofResult` (sound lower bound)."""

    name: str
    description: str
    complexity: str
    assumptions: str
    qk: QKBound | None = None
    ov: OVBound = field(default_factory=OVBound)
    eu: EUBound = field(default_factory=EUBound)
    grouping: str = "bisect"  # tokens | joint | enumerate | bisect | whole
    attention: bool = True
    brute_force: bool = False

    def prove(self, model: MaxKTransformer) -> ProofResult:
        start = time.perf_counter()
        c = model.config
        V, n = c.d_vocab, c.n_ctx
        if V < 2 or n < 2:
            raise ValueError(f"proofs need d_vocab >= 2 and n_ctx >= 2, got {V}, {n}")
        total = V**n
        counter = FlopCounter()
        with torch.no_grad():
            if self.brute_force:
                certified = brute_force_correct(model)
                counter.flops = exhaustive_flops(V, n, c.vocab_out) + 2 * V * c.d_model * (V + c.d_model)
            else:
                certified = self._certify(model, counter)
        return ProofResult(
            strategy=self.name,
            bound=certified / total,
            certified=certified,
            total=total,
            flops=counter.flops,
            wall_s=time.perf_counter() - start,
            complexity=self.complexity,
            assumptions=self.assumptions,
            unexplained_dim=self.unexplained_dimension(V, c.vocab_out, n),
        )

    def unexplained_dimension(self, V: int, Vo: int, n: int) -> int:
        """The proof's unexplained dimension (Appendix A.2): ``V^n V_out`` for brute force (a lookup table of every
        input's logits), otherwise the sum of its components' counts (QK, OV and direct path)."""
        if self.brute_force:
            return V**n * Vo
        if self.grouping == "joint":  # exact EU, EVOU, PVOU, EQKE and EQKP, as the cubic proof
            qk, ov = QKBound("exact").unexplained_dimension(V, n), OVBound("exact").unexplained_dimension(V, Vo, n)
            return qk + ov + EUBound("exact").unexplained_dimension(V, Vo)
        qk = (self.qk or QKBound()).unexplained_dimension(V, n) if self.attention else 0
        return qk + self.ov.unexplained_dimension(V, Vo, n) + self.eu.unexplained_dimension(V, Vo)

    def _certify(self, model: MaxKTransformer, counter: FlopCounter) -> int:
        w = _Weights.of(model, counter)
        V, n = model.config.d_vocab, model.config.n_ctx
        if self.grouping == "joint":
            lo, hi, EQKP = QKBound("exact").compute(w, counter)
            EU, EVOU, pmin = _joint_paths(w, counter)
            zeros = torch.zeros(V, V, dtype=torch.float64)
            T = _make_tables(lo, hi, EQKP, zeros, zeros, True, w.scale)
            return _count_joint(T, EU, EVOU, pmin, V, n, counter)
        if self.attention:
            lo, hi, EQKP = (self.qk or QKBound()).compute(w, counter)
        else:
            lo = hi = torch.zeros(V, V, dtype=torch.float64)
            EQKP = torch.zeros(V, n, dtype=torch.float64)
        h = self.ov.compute(w, counter)
        eumin = self.eu.compute(w, counter)
        T = _make_tables(lo, hi, EQKP, h, eumin, self.attention, w.scale)
        counter.elementwise(V * V, 4)
        if self.grouping == "tokens":
            return _count_tokens(T, V, n, counter)
        if self.grouping == "enumerate":
            return _count_enumerate(T, V, n, counter)
        return _count_bisect(T, V, n, counter, whole=self.grouping == "whole")


_MECH = "attention concentrates on the max token (EQKE increasing in the key token);"
STRATEGIES: dict[str, ProofStrategy] = {
    s.name: s
    for s in (
        ProofStrategy(
            "brute_force",
            "run the model on every input (Section 4.1), with per-(token, position) tables",
            "O(V^n_ctx * n_ctx * V)",
            "none (black box)",
            brute_force=True,
        ),
        ProofStrategy(
            "cubic",
            "path decomposition; exact EQKE/OV/EU; per (query, max, count) the set of certified non-max tokens,"
            " which may be mixed freely (convexity in unnormalised attention; Section 4.2)",
            "O(V^3 n_ctx)",
            "three paths; pessimise positional attention and wrong logits per token",
            qk=QKBound("exact"),
            ov=OVBound("exact"),
            grouping="tokens",
        ),
        ProofStrategy(
            "joint_logit",
            "as cubic, but the wrong logit is kept joint across the direct path, the attended tokens and the"
            " positions: per (query, max, non-max token, wrong logit) margins (convexity argument unchanged)",
            "O(V^3 V_out n_ctx)",
            "three paths; pessimise positional attention per wrong logit; wrong logit shared by all paths",
            grouping="joint",
        ),
        ProofStrategy(
            "cubic_prefix",
            "as cubic, but groups by the largest non-max token k and pessimises scores and values over all t <= k",
            "O(V^3 n_ctx^2)",
            "three paths; attention and wrong logits pessimised over every token up to k",
            qk=QKBound("exact"),
            ov=OVBound("exact"),
            grouping="enumerate",
        ),
        ProofStrategy(
            "subcubic",
            "exact EQKE (O(V^2 d)), OV wrong logits pessimised per token, binary search on the largest non-max token",
            "O(V^2 d + V^2 n_ctx^2 log V)",
            _MECH + " OV copies the attended token",
            qk=QKBound("exact"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "subcubic_no_gap",
            "as subcubic but one group per (query, max, count): every non-max token allowed",
            "O(V^2 d + V^2 n_ctx^2)",
            _MECH + " OV copies the attended token; no gap between max and non-max",
            qk=QKBound("exact"),
            ov=OVBound("rowmax"),
            grouping="whole",
        ),
        ProofStrategy(
            "lowrank_qk",
            "EQKE = mean query (mean+diff) x keys + top key direction, remainder by row Cauchy-Schwarz",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            _MECH + " query-independent attention (rank one) plus small remainder",
            qk=QKBound("lowrank", "meandiff", "rowcs"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "lowrank_qk_svd_only",
            "as lowrank_qk but the query part is the top singular direction (no mean+diff)",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            _MECH + " rank-one query side by SVD",
            qk=QKBound("lowrank", "svd", "rowcs"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "lowrank_qk_spectral",
            "as lowrank_qk, remainder bounded by ||Q2[q]|| sigma_max(W_Q W_K^T) ||K2[k]||",
            "O(V d + d^3 + V^2 n_ctx^2 log V)",
            _MECH + " remainder bounded by the spectral norm",
            qk=QKBound("lowrank", "meandiff", "spectral"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "lowrank_qk_frobenius",
            "as lowrank_qk, remainder bounded by ||Q2[q]|| ||W_Q W_K^T||_F ||K2[k]||",
            "O(V d + d^2 + V^2 n_ctx^2 log V)",
            _MECH + " remainder bounded by the Frobenius norm",
            qk=QKBound("lowrank", "meandiff", "frobenius"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "lowrank_eu",
            "exact EQKE; direct path = mean query row + remainder bounded by norms",
            "O(V^2 d + V^2 n_ctx^2 log V)",
            _MECH + " the direct path is nearly query-independent",
            qk=QKBound("exact"),
            ov=OVBound("rowmax"),
            eu=EUBound("lowrank"),
        ),
        ProofStrategy(
            "lowrank_qk_eu",
            "lowrank_qk and lowrank_eu together",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            _MECH + " rank-one QK and direct path",
            qk=QKBound("lowrank", "meandiff", "rowcs"),
            ov=OVBound("rowmax"),
            eu=EUBound("lowrank"),
        ),
        ProofStrategy(
            "quadratic_qk",
            "lowrank_qk with one global bound on the remainder (the paper's quadratic QK)",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            _MECH + " remainder bounded by a single constant",
            qk=QKBound("lowrank", "meandiff", "global"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "quadratic_qk_eu",
            "quadratic_qk with the low-rank direct path",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            _MECH + " remainder a single constant; rank-one direct path",
            qk=QKBound("lowrank", "meandiff", "global"),
            ov=OVBound("rowmax"),
            eu=EUBound("lowrank"),
        ),
        ProofStrategy(
            "no_qk_structure",
            "EQKE bounded only by norms (no rank-one structure): mechanism-free attention bound",
            "O(V d^2 + V^2 n_ctx^2 log V)",
            "none about attention (norm bound only)",
            qk=QKBound("none"),
            ov=OVBound("rowmax"),
        ),
        ProofStrategy(
            "no_attention",
            "no claim about attention at all: worst case over every attention pattern",
            "O(V^2 d + V^2 n_ctx^2)",
            "none about attention",
            ov=OVBound("rowmax"),
            attention=False,
            grouping="whole",
        ),
    )
}


def unexplained_dimension(name: str, d_vocab: int, n_ctx: int, d_vocab_out: int | None = None) -> int:
    """The unexplained dimension (paper Appendix A.2) of strategy ``name`` on a Max-of-``n_ctx`` model."""
    return get_strategy(name).unexplained_dimension(d_vocab, d_vocab_out or d_vocab, n_ctx)


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str) -> ProofStrategy:
    if name not in STRATEGIES:
        raise KeyError(f"unknown proof strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
