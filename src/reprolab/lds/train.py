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
    GCNParams,
    gcn_forward,
    init_gcn,
    normalize_adjacency,
    train_objective,
)

__all__ = [
    "GCNSettings",
    "LDSResult",
    "LDSSettings",
    "hypergradient",
    "logistic_regression",
    "mean_prediction",
    "train_gcn",
    "train_lds",
]


@dataclass(frozen=True)
class LDSSettings:
    """Hyperparameters of LDS; defaults are the paper's / official code's values."""

    hidden: int = 16
    dropout: float = 0.5  # keep_prob 0.5 in the official grid
    l2_reg: float = 5e-4  # on the first layer only
    inner_lr: float = 0.02  # Adam on the GCN weights
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


@dataclass
class LDSResult:
    es_accuracy: float
    test_accuracy: float
    best_iteration: int
    outer_iterations: int
    hyper_steps: int
    theta: torch.Tensor  # theta at the best early-stopping iteration (upper triangle)
    history: list[dict[str, float]] = field(default_factory=list)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    return float((logits[mask].argmax(1) == labels[mask]).float().mean())


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
) -> tuple[GCNParams, torch.Tensor, list[float]]:
    """tau differentiable inner steps from ``params`` and the gradient of the validation loss in theta.

    Returns the new (detached) weights, d F / d theta (truncated reverse mode, Eq. 7 with the
    straight-through estimator when ``sample``; with ``sample=False`` the expected graph theta + theta^T
    is used, which makes the result an exact derivative, as the finite-difference test checks), and the
    inner losses.
    """
    weights = [p.detach().requires_grad_(True) for p in params.as_list()]
    optimizer.detach_()
    losses = []
    for _ in range(tau):
        graph = dist.sample(generator) if sample else dist.expected()
        current = GCNParams.from_list(weights)
        logits = gcn_forward(current, data.features, graph, dropout=settings.dropout, generator=generator)
        loss = train_objective(current, logits, data.labels, data.train_mask, settings.l2_reg)
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        weights = optimizer.step(weights, list(grads))
        losses.append(float(loss.detach()))
    graph = dist.sample(generator) if sample else dist.expected()
    logits = gcn_forward(GCNParams.from_list(weights), data.features, graph)
    outer = F.cross_entropy(logits[data.val_mask], data.labels[data.val_mask])
    (grad_theta,) = torch.autograd.grad(outer, dist.theta)
    optimizer.detach_()
    return GCNParams.from_list([w.detach() for w in weights]), grad_theta, losses


@torch.no_grad()
def mean_prediction(dist: EdgeDistribution, params: GCNParams, data: GraphData, n_sample: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    """Model output averaged over ``n_sample`` graphs drawn from P_theta (Sec. 3.3)."""
    total = torch.zeros(data.num_nodes, data.num_classes, device=data.features.device)
    for _ in range(n_sample):
        total += gcn_forward(params, data.features, dist.sample(generator, straight_through=False))
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
    best = LDSResult(-1.0, float("nan"), -1, 0, 0, dist.theta.detach().clone())
    hyper_steps, waited = 0, 0
    for outer in range(settings.max_outer):
        params = init_gcn(data.features.shape[1], settings.hidden, data.num_classes, generator=generator,
                          device=data.features.device)
        optimizer = DifferentiableAdam(settings.inner_lr)
        best_loss, inner_wait, steps = float("inf"), settings.inner_patience, 0
        while steps < settings.inner_max_steps and inner_wait > 0:
            params, grad, losses = hypergradient(dist, params, optimizer, data, settings.tau, settings, generator)
            lr = settings.outer_lr / (1.0 + settings.outer_lr_decay * hyper_steps)
            dist.project_step(grad, lr)
            hyper_steps += 1
            steps += len(losses)
            for loss in losses:
                if loss < best_loss * (1.0 - settings.min_decrease):
                    best_loss, inner_wait = loss, settings.inner_patience
                else:
                    inner_wait -= 1
        logits = mean_prediction(dist, params, data, settings.n_sample, generator)
        es_acc = _accuracy(logits, data.labels, data.es_mask)
        record = {"outer": outer, "es_acc": es_acc, "inner_steps": steps, "edges": dist.num_expected_edges(),
                  "train_loss": best_loss}
        best.history.append(record)
        if on_iteration is not None:
            on_iteration(record)
        if es_acc > best.es_accuracy:
            best.es_accuracy, best.best_iteration = es_acc, outer
            best.test_accuracy = _accuracy(logits, data.labels, data.test_mask)
            best.theta = dist.theta.detach().clone()
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
    optimizer = torch.optim.Adam(params.as_list(), lr=settings.lr)
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
