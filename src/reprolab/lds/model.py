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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reprolab.core.seeding import perturb_initial

__all__ = [
    "DifferentiableAdam",
    "LearnedRate",
    "FactorSink",
    "SampledGraph",
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
        its gradient goes to theta as if A were theta + theta^T (the estimator of Sec. 3.2)."""
        if straight_through:
            return _StraightThroughSample.apply(self.theta, generator)
        return _symmetric_bernoulli(self.theta.detach(), generator)

    @torch.no_grad()
    def project_step(self, gradient: torch.Tensor, lr: float) -> None:
        """theta <- Proj_[0,1](theta - lr * gradient), upper triangle only (Algorithm 1)."""
        self.theta.sub_(lr * gradient * self.upper).clamp_(0.0, 1.0)
        self.theta.mul_(self.upper)

    def sample_sparse(self, generator: torch.Generator | None, token: torch.Tensor, sink: FactorSink) -> SampledGraph:
        """One sample for the factored engine (its gradient reaches theta through ``sink``)."""
        return SampledGraph(torch.bernoulli(self.theta.detach(), generator=generator), token, sink)

    def num_expected_edges(self) -> float:
        return float(self.theta.detach().sum())


def _symmetric_bernoulli(theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # theta is zero on and below the diagonal, and uniform noise is < 1, so no mask is needed here.
    upper = torch.bernoulli(theta, generator=generator)
    return upper + upper.T


class _StraightThroughSample(torch.autograd.Function):
    """Forward: a symmetric Bernoulli sample; backward: d/dtheta_ij = g_ij + g_ji (straight-through).

    The lower triangle of the returned gradient is meaningless; callers mask it (theta is upper-triangular).
    """

    @staticmethod
    def forward(ctx: object, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return _symmetric_bernoulli(theta.detach(), generator)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad + grad.T, None


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
    # perturb_initial: the --perturb float-noise check must reach these plain-tensor weights too (issue 18)
    return GCNParams(
        perturb_initial(_glorot(in_dim, hidden, generator, dtype, device)).requires_grad_(True),
        perturb_initial(_glorot(hidden, out_dim, generator, dtype, device)).requires_grad_(True),
    )


def gcn_forward(params: GCNParams, features: torch.Tensor, adjacency: torch.Tensor | SampledGraph | None, *,
                dropout: float = 0.0, generator: torch.Generator | None = None,
                normalized: bool = False, input_dropout: bool = True) -> torch.Tensor:
    """Logits of f_w(X, A) = Â ReLU(Â X W1) W2 (Eq. 1), with dropout on the hidden layer.

    ``input_dropout=True`` also drops the input features (Kipf & Welling's GCN, used by our GCN/MLP
    baselines); the official LDS model (``dense_gcn_2l_tensor``) drops the hidden representation only.

    Â = D^{-1/2}(A + I)D^{-1/2} is never formed: Â H = d * (A (d * H) + d * H) with d = (rowsum(A) + 1)^{-1/2},
    which saves several n x n passes per step (and their backward). ``normalized=True`` takes a ready Â.
    ``adjacency=None`` gives the graph-free network (Â = I), i.e. a 2-layer MLP with the same shape.
    """
    propagate = _propagator(adjacency, normalized)
    x = _dropout(features, dropout, generator) if input_dropout else features
    hidden = torch.relu(propagate(x @ params.w1))
    hidden = _dropout(hidden, dropout, generator)
    return propagate(hidden @ params.w2)


def _propagator(
    adjacency: torch.Tensor | SampledGraph | None, normalized: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    if adjacency is None:
        return lambda h: h
    if isinstance(adjacency, SampledGraph):
        return sampled_propagator(adjacency)
    if normalized:
        return lambda h: adjacency @ h
    scale = (adjacency.sum(1) + 1.0).rsqrt()[:, None]

    def propagate(h: torch.Tensor) -> torch.Tensor:
        scaled = scale * h
        return scale * (adjacency @ scaled + scaled)

    return propagate


def _dropout(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    if rate <= 0.0:
        return x
    keep = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate).to(x.dtype)
    return x * keep / (1.0 - rate)


def train_objective(params: GCNParams, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                    l2_reg: float) -> torch.Tensor:
    """Inner objective L(w, A) (Eq. 5): cross-entropy on training nodes + l2_reg * ||W1||^2 / 2."""
    return F.cross_entropy(logits[mask], labels[mask]) + l2_reg * 0.5 * (params.w1**2).sum()


@dataclass
class LearnedRate:
    """The inner learning rate as a hyperparameter (official LDS code): ``lr = a + sigmoid(lam) (b - a)``.

    ``lam`` is optimised by the same truncated hypergradient and outer gradient step as theta; the bounds keep
    the rate in ``[a, b]`` (official grid: start 0.02 in [1e-4, 0.05]).
    """

    low: float
    high: float
    logit: float

    @classmethod
    def starting_at(cls, start: float, low: float, high: float) -> LearnedRate:
        if not low < start < high:
            raise ValueError(f"inner_lr {start} must lie strictly inside its bounds ({low}, {high})")
        fraction = (start - low) / (high - low)
        return cls(low, high, math.log(fraction / (1.0 - fraction)))

    def value(self, logit: torch.Tensor | float | None = None) -> torch.Tensor:
        lam = torch.as_tensor(self.logit if logit is None else logit, dtype=torch.float64)
        return self.low + torch.sigmoid(lam) * (self.high - self.low)


class DifferentiableAdam:
    """Adam (Kingma & Ba) whose update w_{t+1} = Phi(w_t, A_t) stays differentiable (Sec. 3.2).

    The square root uses ``sqrt(v_hat + eps^2)`` instead of ``sqrt(v_hat) + eps`` so that its derivative is
    finite when a gradient entry is exactly zero; the two agree to within eps.
    """

    def __init__(
        self, lr: float | torch.Tensor = 0.02, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        learned: LearnedRate | None = None,
    ) -> None:
        """``learned``: the rate is a hyperparameter (``lr`` is then ignored); see :class:`LearnedRate`."""
        self.lr, self.betas, self.eps = lr, betas, eps
        self.learned = learned
        self.lr_logit_grad = 0.0  # d F / d lam after a hypergradient, when the rate is learned
        if learned is not None:
            self.lr = float(learned.value())
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


# ------------------------------------------------------------------------------------------------
# Factored hypergradient engine: sparse message passing, low-rank accumulation of d F / d A.
#
# Every use of a sampled graph A in the unrolled computation is a product A @ S (or a row sum of A).
# The derivative of the outer loss with respect to A through such a use is an outer product g S^T (or
# g 1^T), so d F / d A over the last tau steps is U V^T with thin U, V. Recording those factors during the
# outer backward pass and forming (U V^T + V U^T) on the upper triangle once per hypergradient replaces
# about a dozen dense n x n products per inner step with one; the forward and inner backward passes use
# the sparse sample. The result equals the dense straight-through hypergradient (tests check this).
# ------------------------------------------------------------------------------------------------
class FactorSink:
    """Collects (u, v) factor pairs of d F / d A while ``active`` (the outer backward pass only)."""

    def __init__(self) -> None:
        self.active = False
        self.left: list[torch.Tensor] = []
        self.right: list[torch.Tensor] = []
        self.row_constant: torch.Tensor | None = None  # sum of the u of all (u, 1) pairs: one column

    def add(self, u: torch.Tensor, v: torch.Tensor) -> None:
        self.left.append(u)
        self.right.append(v)

    def add_row_constant(self, u: torch.Tensor) -> None:
        """d F / d A_ij += u_i for every j (the derivative through row sums)."""
        self.row_constant = u if self.row_constant is None else self.row_constant + u

    def symmetric_gradient(self, upper: torch.Tensor) -> torch.Tensor:
        """(G + G^T) on the strict upper triangle, G = sum_k u_k v_k^T (straight-through, Sec. 3.2)."""
        left, right = list(self.left), list(self.right)
        if self.row_constant is not None:
            left.append(self.row_constant[:, None])
            right.append(torch.ones_like(self.row_constant)[:, None])
        if not left:
            return torch.zeros(upper.shape, dtype=torch.float32, device=upper.device)
        g = torch.cat(left, dim=1) @ torch.cat(right, dim=1).T
        return (g + g.T) * upper


class SampledGraph:
    """A sampled 0/1 graph held sparse, whose gradient goes to ``sink`` instead of a dense tensor."""

    def __init__(self, upper: torch.Tensor, token: torch.Tensor, sink: FactorSink) -> None:
        """``upper``: the sampled strict upper triangle (0/1, dense); the graph is upper + upper^T."""
        n = upper.shape[0]
        i, j = upper.nonzero(as_tuple=True)
        rows, cols = torch.cat([i, j]), torch.cat([j, i])
        self.degree = torch.bincount(rows, minlength=n).to(upper.dtype)
        values = torch.ones(rows.shape[0], dtype=upper.dtype, device=upper.device)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with a dense matrix is all we use
            warnings.simplefilter("ignore", UserWarning)
            self.sparse = coo.to_sparse_csr() if upper.device.type == "cpu" else coo
        self.num_edges = int(i.shape[0])
        self.token = token  # scalar leaf that puts every use of A on the autograd path
        self.sink = sink


class _SparsePropagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, token: torch.Tensor, s: torch.Tensor, graph: SampledGraph) -> torch.Tensor:
        ctx.save_for_backward(token, s)
        ctx.graph = graph
        return graph.sparse @ s

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        token, s = ctx.saved_tensors
        graph: SampledGraph = ctx.graph
        if graph.sink.active:
            graph.sink.add(grad.detach(), s.detach())  # d<grad, A s>/dA = grad s^T
        grad_s = _SparsePropagate.apply(token, grad, graph) if ctx.needs_input_grad[1] else None  # A symmetric
        return torch.zeros_like(token), grad_s, None


class _Degree(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, token: torch.Tensor, graph: SampledGraph) -> torch.Tensor:
        ctx.save_for_backward(token)
        ctx.graph = graph
        return graph.degree.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (token,) = ctx.saved_tensors
        graph: SampledGraph = ctx.graph
        if graph.sink.active:
            graph.sink.add_row_constant(grad.detach())  # d rowsum_i / dA_ij = 1
        return torch.zeros_like(token), None


def sampled_propagator(graph: SampledGraph) -> Callable[[torch.Tensor], torch.Tensor]:
    """Â H for a :class:`SampledGraph`, with Â = D^{-1/2}(A + I)D^{-1/2} as in :func:`gcn_forward`."""
    scale = (_Degree.apply(graph.token, graph) + 1.0).rsqrt()[:, None]

    def propagate(h: torch.Tensor) -> torch.Tensor:
        scaled = scale * h
        return scale * (_SparsePropagate.apply(graph.token, scaled, graph) + scaled)

    return propagate
