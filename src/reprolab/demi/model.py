"""DEMI: Decomposed Estimation of Mutual Information (Sordoni et al., ICML 2021, arXiv 2106.13401).

Notation follows the paper. Two views ``x`` and ``y``; ``x`` is split into sub-views and the chain rule
gives (paper, Sec. 3)::

    I(x; y) >= I(x''; y) + I(x'; y | x'')                                   (chain rule + data processing)

and, with ``k`` progressively more informed sub-views x_(1) ⊂ x_(2) ⊂ ... ⊂ x_(k) = x::

    I(x; y) >= I(x_(1); y) + sum_{j=2..k} I(x_(j); y | x_(j-1)).

Each term is estimated contrastively, so each is capped at log N instead of the whole sum:

* unconditional InfoNCE (van den Oord et al. 2018), with critic psi and N samples in the batch::

      I_NCE = E[ log e^{psi(x, y_1)} / (1/N sum_k e^{psi(x, y_k)}) ] <= log N,   y_{2..N} ~ p(y)

* the paper's conditional contrastive bound, negatives drawn from p(y | x'')::

      I_CNCE = E[ log e^{phi(x'', x', y_1)} / (1/N sum_k e^{phi(x'', x', y_k)}) ],   y_{2..N} ~ p(y | x'')

* its tractable approximation by importance sampling: p(y|x'') ∝ p(y) e^{psi*(x'', y)}, so marginal
  negatives (the rest of the batch) are re-weighted with the unconditional critic psi, self-normalised
  over the N-1 negatives::

      I_IS = E[ log e^{phi_11} / (1/N (e^{phi_11} + (N-1) sum_{k>=2} w_k e^{phi_1k})) ],
      w_k = e^{psi(x'', y_k)} / sum_{l>=2} e^{psi(x'', y_l)}      (weights carry no gradient)

For ``k > 2`` the weights of term ``j`` use the *cumulative* critic psi_1 + phi_2 + ... + phi_{j-1}, the
chain-rule estimate of log p(y | x_(j-1)) / p(y) up to a function of x.

Extra baselines: NWJ (Nguyen, Wainwright & Jordan 2010) and Donsker-Varadhan (MINE without the moving
average), both unbounded by log N but high-variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "BilinearCritic",
    "ConcatCritic",
    "DEMIEstimator",
    "InfoNCEEstimator",
    "SeparableCritic",
    "conditional_infonce_exact",
    "conditional_infonce_is",
    "dv_lower_bound",
    "infonce_lower_bound",
    "make_critic",
    "nwj_lower_bound",
]


NegativeSampler = Callable[[Tensor, int], Tensor]


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden`` then a linear map to ``out_dim``."""
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, out_dim))
    return nn.Sequential(*modules)


class Critic(nn.Module):
    """A critic f(x, y). ``forward`` returns the all-pairs score matrix ``S[i, j] = f(x_i, y_j)``."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # x: N x Dx, y: M x Dy -> N x M
        raise NotImplementedError

    def score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of each ``x_i`` with its own candidates ``y[i, k]``: x N x Dx, y N x K x Dy -> N x K."""
        raise NotImplementedError


class SeparableCritic(Critic):
    """f(x, y) = g(x)^T h(y) with MLP encoders g, h (the 'separable' critic of Poole et al. 2019)."""

    def __init__(self, dim_x: int, dim_y: int, *, hidden: int = 256, embed: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.g = mlp(dim_x, hidden, embed, layers)
        self.h = mlp(dim_y, hidden, embed, layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.g(x) @ self.h(y).T

    def score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.einsum("nd,nkd->nk", self.g(x), self.h(y))


class BilinearCritic(Critic):
    """f(x, y) = x^T W y + a^T x^2 + b^T y^2: exact family of log-density ratios of Gaussians."""

    def __init__(self, dim_x: int, dim_y: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(dim_x, dim_y))
        self.a = nn.Parameter(torch.zeros(dim_x))
        self.b = nn.Parameter(torch.zeros(dim_y))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x @ self.W @ y.T + (x.pow(2) @ self.a)[:, None] + (y.pow(2) @ self.b)[None, :]

    def score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.einsum("nd,de,nke->nk", x, self.W, y) + (x.pow(2) @ self.a)[:, None] + y.pow(2) @ self.b


class ConcatCritic(Critic):
    """f(x, y) = MLP([x, y]): the most expressive and most expensive (N^2 MLP evaluations) critic."""

    def __init__(self, dim_x: int, dim_y: int, *, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.net = mlp(dim_x + dim_y, hidden, 1, layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        n, m = x.shape[0], y.shape[0]
        pairs = torch.cat([x[:, None, :].expand(n, m, -1), y[None, :, :].expand(n, m, -1)], dim=-1)
        return self.net(pairs).squeeze(-1)

    def score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        k = y.shape[1]
        return self.net(torch.cat([x[:, None, :].expand(-1, k, -1), y], dim=-1)).squeeze(-1)


CRITICS = ("separable", "bilinear", "concat")


def make_critic(kind: str, dim_x: int, dim_y: int, *, hidden: int = 256, embed: int = 64, layers: int = 2) -> Critic:
    """Build a critic by name: ``separable``, ``bilinear`` or ``concat``."""
    if kind == "separable":
        return SeparableCritic(dim_x, dim_y, hidden=hidden, embed=embed, layers=layers)
    if kind == "bilinear":
        return BilinearCritic(dim_x, dim_y)
    if kind == "concat":
        return ConcatCritic(dim_x, dim_y, hidden=hidden, layers=layers)
    raise ValueError(f"critic must be one of {CRITICS}, got {kind!r}")


# -- bounds on a score matrix ------------------------------------------------------------------------


def infonce_lower_bound(scores: Tensor) -> Tensor:
    """I_NCE from ``scores[i, j] = f(x_i, y_j)`` (positives on the diagonal); always <= log N.

    Returns the per-anchor terms (shape N); their mean is the bound.
    """
    n = scores.shape[0]
    return scores.diagonal() - torch.logsumexp(scores, dim=1) + math.log(n)


def conditional_infonce_is(scores: Tensor, proposal_scores: Tensor) -> Tensor:
    """I_IS, the importance-sampled conditional InfoNCE bound (module docstring), per anchor (shape N).

    ``scores[i, j] = phi(x''_i, x'_i, y_j)``; ``proposal_scores[i, j]`` estimates log p(y_j|x''_i)/p(y_j)
    up to a function of i (for 2 sub-views the unconditional critic psi(x''_i, y_j)); it is detached.
    """
    n = scores.shape[0]
    if n < 2:
        raise ValueError("conditional_infonce_is needs a batch of at least 2")
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    log_w = torch.log_softmax(proposal_scores.detach().masked_fill(eye, float("-inf")), dim=1)
    positive = scores.diagonal()
    weighted_negatives = torch.logsumexp((log_w + scores).masked_fill(eye, float("-inf")), dim=1)
    log_denominator = torch.logaddexp(positive, math.log(n - 1) + weighted_negatives) - math.log(n)
    return positive - log_denominator


def conditional_infonce_exact(positive: Tensor, negatives: Tensor) -> Tensor:
    """I_CNCE with negatives truly drawn from p(y | x''); ``positive`` N, ``negatives`` N x (K-1) -> N.

    Only possible when p(y|x'') can be sampled (the Gaussian benchmark); a reference for I_IS.
    """
    all_scores = torch.cat([positive[:, None], negatives], dim=1)
    return positive - torch.logsumexp(all_scores, dim=1) + math.log(all_scores.shape[1])


def nwj_lower_bound(scores: Tensor) -> Tensor:
    """I_NWJ = E_p[f] - e^{-1} E_{p(x)p(y)}[e^f] on the N x N matrix (off-diagonal = product of marginals)."""
    n = scores.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    joint = scores.diagonal().mean()
    log_marginal = torch.logsumexp(scores.masked_fill(eye, float("-inf")), dim=(0, 1)) - math.log(n * (n - 1))
    return joint - torch.exp(log_marginal - 1.0)


def dv_lower_bound(scores: Tensor) -> Tensor:
    """Donsker-Varadhan I_DV = E_p[f] - log E_{p(x)p(y)}[e^f] (biased in mini-batches, as in MINE)."""
    n = scores.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    log_marginal = torch.logsumexp(scores.masked_fill(eye, float("-inf")), dim=(0, 1)) - math.log(n * (n - 1))
    return scores.diagonal().mean() - log_marginal


# -- estimators ------------------------------------------------------------------------------------


class InfoNCEEstimator(nn.Module):
    """The non-decomposed baseline: one critic on the whole view x, I_NCE <= log N."""

    def __init__(self, dim_x: int, dim_y: int, *, critic: str = "separable", **critic_kwargs: int) -> None:
        super().__init__()
        self.critic = make_critic(critic, dim_x, dim_y, **critic_kwargs)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """The estimate (a scalar to maximise)."""
        return infonce_lower_bound(self.critic(x, y)).mean()


class DEMIEstimator(nn.Module):
    """DEMI with ``k = len(subview_dims)`` progressively more informed sub-views of x.

    ``subview_dims[j]`` is the number of coordinates of x that sub-view ``j`` adds; sub-view ``j`` is
    the prefix ``x[:, :sum(subview_dims[:j+1])]`` (x_(1) ⊂ ... ⊂ x_(k) = x). Term 1 is I_NCE(x_(1); y);
    term j >= 2 is I_IS(x_(j); y | x_(j-1)) with a critic phi_j on (x_(j), y), which sees x_(j-1) ⊂ x_(j).
    """

    def __init__(
        self, subview_dims: Sequence[int], dim_y: int, *, critic: str = "separable", **critic_kwargs: int
    ) -> None:
        super().__init__()
        if len(subview_dims) < 1 or any(d <= 0 for d in subview_dims):
            raise ValueError(f"subview_dims must be positive sizes, got {list(subview_dims)}")
        self.prefix_dims = [sum(subview_dims[: j + 1]) for j in range(len(subview_dims))]
        self.critics = nn.ModuleList(make_critic(critic, d, dim_y, **critic_kwargs) for d in self.prefix_dims)

    @property
    def k(self) -> int:
        return len(self.prefix_dims)

    def term_scores(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Score matrices of each term's critic on (x_(j), y)."""
        return [critic(x[:, :d], y) for critic, d in zip(self.critics, self.prefix_dims)]

    def terms(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """The per-term estimates [I_NCE(x_(1);y), I_IS(x_(2);y|x_(1)), ...] as scalars."""
        scores = self.term_scores(x, y)
        values = [infonce_lower_bound(scores[0]).mean()]
        cumulative = scores[0]
        for term_scores in scores[1:]:
            values.append(conditional_infonce_is(term_scores, cumulative).mean())
            cumulative = cumulative.detach() + term_scores.detach()
        return values

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """The DEMI estimate: the sum of the terms (a scalar to maximise)."""
        return torch.stack(self.terms(x, y)).sum()

    def terms_exact(self, x: Tensor, y: Tensor, sample_negatives: NegativeSampler) -> list[Tensor]:
        """Terms with the exact conditional bound I_CNCE: negatives of term j drawn from p(y | x_(j-1)).

        ``sample_negatives(x, prefix_dim)`` returns N x K x Dy draws of y given ``x[:, :prefix_dim]``.
        Each conditional term is then a true lower bound (capped at log(K+1)); only possible when the
        conditional can be sampled, as on the Gaussian benchmark.
        """
        first = self.critics[0](x[:, : self.prefix_dims[0]], y)
        values = [infonce_lower_bound(first).mean()]
        for j in range(1, self.k):
            critic, dim = self.critics[j], self.prefix_dims[j]
            negatives = sample_negatives(x, self.prefix_dims[j - 1])
            positive = critic.score_pairs(x[:, :dim], y[:, None, :]).squeeze(1)
            values.append(conditional_infonce_exact(positive, critic.score_pairs(x[:, :dim], negatives)).mean())
        return values

    def forward_exact(self, x: Tensor, y: Tensor, sample_negatives: NegativeSampler) -> Tensor:
        """The DEMI estimate with exact conditional negatives (see :meth:`terms_exact`)."""
        return torch.stack(self.terms_exact(x, y, sample_negatives)).sum()
