"""Training: the LDS bilevel loop (Algorithm 1), its truncated hypergradient, and the baselines.

Bilevel problem (Sec. 3, Eqs. 5-6)::

    min_theta  E_{A ~ Ber(theta)} [ F(w_theta, A) ]          (outer: validation loss)
    w_theta  = argmin_w E_{A ~ Ber(theta)} [ L(w, A) ]        (inner: training loss + l2 on W1)

The inner problem is approximated by tau steps of Adam on graphs sampled from theta; the hypergradient is
reverse-mode differentiation through those steps only (truncated back-propagation, Sec. 3.2), with the
straight-through estimator for the sampled graphs. theta is updated by projected gradient descent with
an inverse-time-decayed learning rate; the outer loop stops early on the early-stopping accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from reprolab.lds.data import GraphData
from reprolab.lds.model import (
    DifferentiableAdam,
    EdgeDistribution,
    FactorSink,
    GCNParams,
    LearnedRate,
    SampledGraph,
    gcn_forward,
    init_gcn,
    normalize_adjacency,
    train_objective,
)

__all__ = [
    "GCNSettings",
    "LDSModel",
    "LDSResult",
    "LDSSettings",
    "hypergradient",
    "logistic_regression",
    "mean_prediction",
    "train_gcn",
    "train_lds",
    "train_mlp",
]


@dataclass(frozen=True)
class LDSSettings:
    """Hyperparameters of LDS; defaults are the paper's / official code's values, except ``es_tiebreak_loss``
    (ours, for the 10-node early-stopping sets of the quick tables; the official rule is ``False``)."""

    hidden: int = 16
    dropout: float = 0.5  # keep_prob 0.5 in the official grid
    input_dropout: bool = False  # official dense_gcn_2l_tensor: dropout on the hidden layer only
    l2_reg: float = 5e-4  # on the first layer only
    inner_lr: float = 0.02  # Adam on the GCN weights (the starting value when it is learned)
    learn_inner_lr: bool = True  # official code: the rate is a hyperparameter in inner_lr_bounds
    inner_lr_bounds: tuple[float, float] = (1e-4, 0.05)
    freeze_theta: bool = False  # control experiment: hyper-steps move only the inner rate
    tau: int = 5  # truncation: hypergradient through the last tau inner steps
    outer_lr: float = 1.0  # gradient descent on theta ...
    outer_lr_decay: float = 1e-3  # ... with lr / (1 + decay * hyper_step)
    n_sample: int = 16  # graphs averaged at prediction time
    patience: int = 20  # outer iterations without early-stopping improvement
    max_outer: int = 1000
    inner_max_steps: int = 400  # per outer iteration
    inner_patience: int = 20  # inner steps without a relative decrease of min_decrease
    min_decrease: float = 1e-3
    init_value: float = 0.0  # added to the initial graph (est_p_edge)
    es_tiebreak_loss: bool = True  # equal early-stopping accuracy: accept a lower early-stopping loss


@dataclass
class LDSResult:
    es_accuracy: float
    test_accuracy: float
    es_loss: float
    best_iteration: int
    outer_iterations: int
    hyper_steps: int
    theta: torch.Tensor  # theta at the best early-stopping iteration (upper triangle)
    history: list[dict[str, float]] = field(default_factory=list)
    params: GCNParams | None = None  # the GCN weights of the best early-stopping iteration
    sample_state: torch.Tensor | None = None  # the CPU generator state its mean prediction started from

    def model(self, n_sample: int) -> LDSModel:
        """The best iteration as an :class:`LDSModel` (weights, theta and the sampling state of its prediction)."""
        assert self.params is not None
        state = self.sample_state if self.sample_state is not None else torch.zeros(0, dtype=torch.uint8)
        model = LDSModel(self.theta.shape[0], *self.params.w1.shape, self.params.w2.shape[1], n_sample, state.numel())
        with torch.no_grad():
            for target, value in ((model.w1, self.params.w1), (model.w2, self.params.w2), (model.theta, self.theta)):
                target.copy_(value.detach())
            model.sample_state.copy_(state)
        return model


class LDSModel(torch.nn.Module):
    """A trained LDS model kept by a run: the 2-layer GCN's weights ``w1``, ``w2`` and the learned edge
    probabilities ``theta`` (upper triangle, Sec. 3). ``forward(features)`` is the paper's prediction (Sec. 3.3),
    the GCN's output averaged over ``n_sample`` graphs drawn from P_theta; with the saved ``sample_state`` (the
    run's generator state) the draws, and so the logits, are the run's own."""

    def __init__(self, num_nodes: int, in_dim: int, hidden: int, num_classes: int, n_sample: int,
                 state_bytes: int = 0) -> None:
        super().__init__()
        self.n_sample = n_sample
        self.w1 = torch.nn.Parameter(torch.zeros(in_dim, hidden))
        self.w2 = torch.nn.Parameter(torch.zeros(hidden, num_classes))
        self.theta = torch.nn.Parameter(torch.zeros(num_nodes, num_nodes))
        self.register_buffer("sample_state", torch.zeros(state_bytes, dtype=torch.uint8))

    @torch.no_grad()
    def forward(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean logits over ``n_sample`` sampled graphs; ``generator`` defaults to one at the saved state."""
        if generator is None and self.sample_state.numel():
            generator = torch.Generator()
            generator.set_state(self.sample_state.cpu())
        dist = EdgeDistribution(self.theta.detach())  # as mean_prediction, on the saved weights
        total = torch.zeros(features.shape[0], self.w2.shape[1], device=features.device)
        token, sink = torch.zeros((), device=features.device), FactorSink()
        params = GCNParams(self.w1, self.w2)
        for _ in range(self.n_sample):
            total += gcn_forward(params, features, dist.sample_sparse(generator, token, sink))
        return total / self.n_sample


def _accuracy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    return float((logits[mask].argmax(1) == labels[mask]).double().mean())


def hypergradient(
    dist: EdgeDistribution,
    params: GCNParams,
    optimizer: DifferentiableAdam,
    data: GraphData,
    tau: int,
    settings: LDSSettings,
    generator: torch.Generator | None,
    *,
    sample: bool = True,
    engine: str = "factored",
) -> tuple[GCNParams, torch.Tensor, list[float]]:
    """tau differentiable inner steps from ``params`` and the gradient of the validation loss in theta.

    Returns the new (detached) weights, d F / d theta on the upper triangle (truncated reverse mode,
    Eq. 7, with the straight-through estimator for sampled graphs), and the inner losses. When the
    optimizer's rate is learned (``optimizer.learned``), d F / d lam of its logit is left in
    ``optimizer.lr_logit_grad``.

    ``engine="factored"`` (default) runs message passing on sparse samples and accumulates d F / d A as
    low-rank factors (see :class:`~reprolab.lds.model.FactorSink`); ``engine="dense"`` lets autograd
    differentiate dense samples. Both give the same numbers. ``sample=False`` uses the expected graph
    theta + theta^T instead of samples, which makes the result an exact derivative (the finite-difference
    test checks it).
    """
    if engine not in ("factored", "dense"):
        raise ValueError(f"engine must be 'factored' or 'dense', got {engine!r}")
    factored = sample and engine == "factored"
    sink = FactorSink()
    token = torch.zeros((), dtype=dist.theta.dtype, device=dist.theta.device, requires_grad=True)

    def draw() -> torch.Tensor | SampledGraph:
        if factored:
            return dist.sample_sparse(generator, token, sink)
        return dist.sample(generator) if sample else dist.expected()

    weights = [p.detach().requires_grad_(True) for p in params.as_list()]
    optimizer.detach_()
    lr_logit = None
    if optimizer.learned is not None:  # the inner learning rate is a hyperparameter too (official LDS code)
        lr_logit = torch.tensor(optimizer.learned.logit, dtype=torch.float64, requires_grad=True)
        optimizer.lr = optimizer.learned.value(lr_logit).to(weights[0].dtype)
    losses = []
    for _ in range(tau):
        graph = draw()
        current = GCNParams.from_list(weights)
        logits = gcn_forward(current, data.features, graph, dropout=settings.dropout, generator=generator,
                             input_dropout=settings.input_dropout)
        loss = train_objective(current, logits, data.labels, data.train_mask, settings.l2_reg)
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        weights = optimizer.step(weights, list(grads))
        losses.append(float(loss.detach()))
    logits = gcn_forward(GCNParams.from_list(weights), data.features, draw())
    outer = F.cross_entropy(logits[data.val_mask], data.labels[data.val_mask])
    extra = [lr_logit] if lr_logit is not None else []
    if factored:
        sink.active = True
        grads = torch.autograd.grad(outer, [token, *extra], allow_unused=True)
        sink.active = False
        grad_theta = sink.symmetric_gradient(dist.upper).to(dist.theta.dtype)
    else:
        grads = torch.autograd.grad(outer, [dist.theta, *extra], allow_unused=True)
        grad_theta = grads[0] * dist.upper
    if lr_logit is not None:
        optimizer.lr_logit_grad = float(grads[1]) if grads[1] is not None else 0.0
        optimizer.lr = float(optimizer.lr.detach())
    optimizer.detach_()
    return GCNParams.from_list([w.detach() for w in weights]), grad_theta, losses


@torch.no_grad()
def mean_prediction(dist: EdgeDistribution, params: GCNParams, data: GraphData, n_sample: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    """Model output averaged over ``n_sample`` graphs drawn from P_theta (Sec. 3.3)."""
    total = torch.zeros(data.num_nodes, data.num_classes, device=data.features.device)
    token, sink = torch.zeros((), device=data.features.device), FactorSink()
    for _ in range(n_sample):
        total += gcn_forward(params, data.features, dist.sample_sparse(generator, token, sink))
    return total / n_sample


def train_lds(
    data: GraphData,
    initial_graph: torch.Tensor,
    settings: LDSSettings,
    generator: torch.Generator,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
) -> LDSResult:
    """Algorithm 1 of the paper with early stopping on the early-stopping set."""
    dist = EdgeDistribution(initial_graph, init_value=settings.init_value)
    rate = LearnedRate.starting_at(settings.inner_lr, *settings.inner_lr_bounds) if settings.learn_inner_lr else None
    best = LDSResult(-1.0, float("nan"), float("inf"), -1, 0, 0, dist.theta.detach().clone())
    hyper_steps, waited = 0, 0
    for outer in range(settings.max_outer):
        params = init_gcn(data.features.shape[1], settings.hidden, data.num_classes, generator=generator,
                          device=data.features.device)
        optimizer = DifferentiableAdam(settings.inner_lr, learned=rate)
        best_loss, inner_wait, steps = float("inf"), settings.inner_patience, 0
        while steps < settings.inner_max_steps and inner_wait > 0:
            params, grad, losses = hypergradient(dist, params, optimizer, data, settings.tau, settings, generator)
            lr = settings.outer_lr / (1.0 + settings.outer_lr_decay * hyper_steps)
            if not settings.freeze_theta:
                dist.project_step(grad, lr)
            if rate is not None:  # the same outer gradient step on the rate's logit
                rate.logit -= lr * optimizer.lr_logit_grad
            hyper_steps += 1
            steps += len(losses)
            for loss in losses:
                if loss < best_loss * (1.0 - settings.min_decrease):
                    best_loss, inner_wait = loss, settings.inner_patience
                else:
                    inner_wait -= 1
        # the state this prediction starts from, kept with the best iteration (a copy: no draw is consumed)
        state = generator.get_state() if generator is not None and generator.device.type == "cpu" else None
        logits = mean_prediction(dist, params, data, settings.n_sample, generator)
        es_acc = _accuracy(logits, data.labels, data.es_mask)
        es_loss = float(F.cross_entropy(logits[data.es_mask], data.labels[data.es_mask]))
        record = {"outer": outer, "es_acc": es_acc, "es_loss": es_loss, "inner_steps": steps,
                  "edges": dist.num_expected_edges(), "train_loss": best_loss, "inner_lr": float(optimizer.lr)}
        best.history.append(record)
        if on_iteration is not None:
            on_iteration(record)
        tie_better = settings.es_tiebreak_loss and es_acc == best.es_accuracy and es_loss < best.es_loss
        if es_acc > best.es_accuracy or tie_better:
            best.es_accuracy, best.es_loss, best.best_iteration = es_acc, es_loss, outer
            best.test_accuracy = _accuracy(logits, data.labels, data.test_mask)
            best.theta = dist.theta.detach().clone()
            best.params, best.sample_state = GCNParams(params.w1.detach().clone(), params.w2.detach().clone()), state
            waited = 0
        else:
            waited += 1
            if waited >= settings.patience:
                break
    best.outer_iterations = len(best.history)
    best.hyper_steps = hyper_steps
    return best


# ------------------------------------------------------------------------------------- baselines
@dataclass(frozen=True)
class GCNSettings:
    """Kipf & Welling's training recipe: Adam 0.01, 200 epochs, dropout 0.5, l2 5e-4 on W1, hidden 16."""

    hidden: int = 16
    dropout: float = 0.5
    l2_reg: float = 5e-4
    lr: float = 0.01
    epochs: int = 200


def train_gcn(data: GraphData, adjacency: torch.Tensor | None, settings: GCNSettings,
              generator: torch.Generator) -> tuple[float, float]:
    """Train a GCN on a fixed graph (``None``: the same network without a graph, i.e. an MLP).

    The epoch with the best accuracy on validation + early-stopping nodes (ties: lower loss) is kept.
    Returns (selection accuracy, test accuracy).
    """
    norm = None if adjacency is None else normalize_adjacency(adjacency)
    params = init_gcn(data.features.shape[1], settings.hidden, data.num_classes, generator=generator,
                      device=data.features.device)
    optimizer = torch.optim.Adam(params.as_list(), lr=settings.lr, foreach=True)
    select = data.val_mask | data.es_mask
    best = (-1.0, float("inf"), float("nan"))
    for _ in range(settings.epochs):
        optimizer.zero_grad()
        logits = gcn_forward(params, data.features, norm, dropout=settings.dropout, generator=generator,
                             normalized=True)
        train_objective(params, logits, data.labels, data.train_mask, settings.l2_reg).backward()
        optimizer.step()
        with torch.no_grad():
            logits = gcn_forward(params, data.features, norm, normalized=True)
            acc = _accuracy(logits, data.labels, select)
            loss = float(F.cross_entropy(logits[select], data.labels[select]))
        if acc > best[0] or (acc == best[0] and loss < best[1]):
            best = (acc, loss, _accuracy(logits, data.labels, data.test_mask))
    return best[0], best[2]


def train_mlp(data: GraphData, settings: GCNSettings, generator: torch.Generator,
              hiddens: tuple[int, ...] = (16, 64), dropouts: tuple[float, ...] = (0.0, 0.5)) -> tuple[float, float]:
    """Graph-free 2-layer network (the paper's FFNN baseline), width and dropout chosen on validation."""
    best = (-1.0, float("nan"))
    for hidden in hiddens:
        for dropout in dropouts:
            trial = GCNSettings(hidden, dropout, settings.l2_reg, settings.lr, settings.epochs)
            result = train_gcn(data, None, trial, generator)
            if result[0] > best[0]:
                best = result
    return best


def logistic_regression(data: GraphData, cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)) -> tuple[float, float]:
    """L2 logistic regression on the training nodes, C chosen on validation + early-stopping nodes."""
    from sklearn.linear_model import LogisticRegression

    x = data.features.cpu().numpy()
    y = data.labels.cpu().numpy()
    train, test = data.train_mask.cpu().numpy(), data.test_mask.cpu().numpy()
    select = (data.val_mask | data.es_mask).cpu().numpy()
    best = (-1.0, float("nan"))
    for c in cs:
        model = LogisticRegression(C=c, max_iter=2000).fit(x[train], y[train])
        acc = float(np.mean(model.predict(x[select]) == y[select]))
        if acc > best[0]:
            best = (acc, float(np.mean(model.predict(x[test]) == y[test])))
    return best
