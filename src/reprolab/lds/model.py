"""The pieces of LDS (Franceschi et al., ICML 2019): edge distribution, dense GCN, differentiable Adam.

* :class:`EdgeDistribution`: independent Bernoulli variables ``A_ij ~ Ber(theta_ij)`` for every unordered
  pair ``i < j`` (Sec. 3, Eq. 4), sampled symmetrically, with the straight-through estimator of Sec. 3.2
  (the derivative with respect to a sampled ``A`` is used as the derivative with respect to ``theta``).
* :func:`gcn_forward`: the 2-layer GCN of Kipf & Welling (Eq. 1 of the paper) on a dense adjacency,
  written functionally so that the inner optimisation can be unrolled.
* :class:`DifferentiableAdam`: Adam updates built from tensors that stay in the autograd graph, so the
  hypergradient can flow back through the last ``tau`` inner steps (Sec. 3.2, Eq. 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "DifferentiableAdam",
    "EdgeDistribution",
    "GCNParams",
    "gcn_forward",
    "init_gcn",
    "normalize_adjacency",
    "train_objective",
]


class EdgeDistribution:
    """Bernoulli edge probabilities ``theta`` in [0, 1] on the strict upper triangle (Sec. 3, Eq. 4).

    ``theta`` is stored as a dense (n, n) leaf tensor whose lower triangle and diagonal are kept at zero;
    the symmetric matrix ``theta + theta^T`` is the expected adjacency.
    """

    def __init__(self, init: torch.Tensor, *, init_value: float = 0.0) -> None:
        if init.ndim != 2 or init.shape[0] != init.shape[1]:
            raise ValueError(f"theta needs a square matrix, got shape {tuple(init.shape)}")
        n = init.shape[0]
        self.upper = torch.ones(n, n, dtype=torch.bool, device=init.device).triu(diagonal=1)
        theta = (init + init_value).clamp(0.0, 1.0) * self.upper
        self.theta = theta.detach().clone().requires_grad_(True)

    @property
    def num_nodes(self) -> int:
        return int(self.theta.shape[0])

    def expected(self) -> torch.Tensor:
        """E[A] = theta + theta^T (differentiable)."""
        return self.theta + self.theta.T

    def sample(self, generator: torch.Generator | None = None, *, straight_through: bool = True) -> torch.Tensor:
        """One symmetric 0/1 graph A ~ P_theta. With ``straight_through`` its value is the sample and
        its gradient goes to theta as if A were theta (the estimator of Sec. 3.2)."""
        noise = torch.rand(self.theta.shape, generator=generator, device=self.theta.device, dtype=self.theta.dtype)
        upper = (noise < self.theta.detach()).to(self.theta.dtype) * self.upper
        hard = upper + upper.T
        if not straight_through:
            return hard
        soft = self.expected()
        return soft + (hard - soft).detach()

    @torch.no_grad()
    def project_step(self, gradient: torch.Tensor, lr: float) -> None:
        """theta <- Proj_[0,1](theta - lr * gradient), upper triangle only (Algorithm 1)."""
        self.theta.sub_(lr * gradient * self.upper).clamp_(0.0, 1.0)
        self.theta.mul_(self.upper)

    def num_expected_edges(self) -> float:
        return float(self.theta.detach().sum())


def normalize_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """D^{-1/2} (A + I) D^{-1/2} (Kipf & Welling's renormalisation), differentiable in A."""
    with_loops = adjacency + torch.eye(adjacency.shape[0], dtype=adjacency.dtype, device=adjacency.device)
    inv_sqrt = with_loops.sum(1).clamp_min(1e-12).rsqrt()
    return inv_sqrt[:, None] * with_loops * inv_sqrt[None, :]


@dataclass
class GCNParams:
    """Weights of the 2-layer GCN (no biases, as in Kipf & Welling's reference code)."""

    w1: torch.Tensor
    w2: torch.Tensor

    def as_list(self) -> list[torch.Tensor]:
        return [self.w1, self.w2]

    @staticmethod
    def from_list(tensors: list[torch.Tensor]) -> GCNParams:
        return GCNParams(tensors[0], tensors[1])


def _glorot(fan_in: int, fan_out: int, generator: torch.Generator | None, dtype: torch.dtype,
            device: torch.device | str) -> torch.Tensor:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    uniform = torch.rand(fan_in, fan_out, generator=generator, dtype=dtype, device=device)
    return (2.0 * uniform - 1.0) * bound


def init_gcn(in_dim: int, hidden: int, out_dim: int, *, generator: torch.Generator | None = None,
             dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> GCNParams:
    """Glorot-uniform initialisation (Kipf & Welling)."""
    return GCNParams(
        _glorot(in_dim, hidden, generator, dtype, device).requires_grad_(True),
        _glorot(hidden, out_dim, generator, dtype, device).requires_grad_(True),
    )


def gcn_forward(params: GCNParams, features: torch.Tensor, adjacency: torch.Tensor | None, *,
                dropout: float = 0.0, generator: torch.Generator | None = None,
                normalized: bool = False) -> torch.Tensor:
    """Logits of f_w(X, A) = Â ReLU(Â X W1) W2 (Eq. 1), with dropout on the inputs of both layers.

    ``adjacency=None`` gives the graph-free network (Â = I), i.e. a 2-layer MLP with the same shape.
    """
    norm = None
    if adjacency is not None:
        norm = adjacency if normalized else normalize_adjacency(adjacency)
    x = _dropout(features, dropout, generator)
    hidden = x @ params.w1
    hidden = torch.relu(hidden if norm is None else norm @ hidden)
    hidden = _dropout(hidden, dropout, generator)
    out = hidden @ params.w2
    return out if norm is None else norm @ out


def _dropout(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    if rate <= 0.0:
        return x
    keep = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate).to(x.dtype)
    return x * keep / (1.0 - rate)


def train_objective(params: GCNParams, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                    l2_reg: float) -> torch.Tensor:
    """Inner objective L(w, A) (Eq. 5): cross-entropy on training nodes + l2_reg * ||W1||^2 / 2."""
    return F.cross_entropy(logits[mask], labels[mask]) + l2_reg * 0.5 * (params.w1**2).sum()


class DifferentiableAdam:
    """Adam (Kingma & Ba) whose update w_{t+1} = Phi(w_t, A_t) stays differentiable (Sec. 3.2).

    The square root uses ``sqrt(v_hat + eps^2)`` instead of ``sqrt(v_hat) + eps`` so that its derivative is
    finite when a gradient entry is exactly zero; the two agree to within eps.
    """

    def __init__(self, lr: float = 0.02, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m: list[torch.Tensor] | None = None
        self.v: list[torch.Tensor] | None = None
        self.t = 0

    def reset(self) -> None:
        self.m, self.v, self.t = None, None, 0

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        b1, b2 = self.betas
        if self.m is None or self.v is None:
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
        self.t += 1
        new_params, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            new_params.append(p - self.lr * m_hat / torch.sqrt(v_hat + self.eps**2))
            new_m.append(m)
            new_v.append(v)
        self.m, self.v = new_m, new_v
        return new_params

    def detach_(self) -> None:
        """Cut the history (truncation point of the reverse-mode hypergradient)."""
        if self.m is not None and self.v is not None:
            self.m = [m.detach() for m in self.m]
            self.v = [v.detach() for v in self.v]
