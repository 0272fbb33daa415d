"""The paper's Table-1 baselines that ``train.py`` does not have (Franceschi et al. 2019, Sec. 5.2).

Supervised: linear SVM, RBF SVM and random forest (scikit-learn), trained on the training nodes.
Semi-supervised: label propagation (Zhu & Ghahramani 2002; scikit-learn's ``LabelPropagation``, hard clamping of
the training labels, harmonic solution by iteration) on the same kNN graph the kNN-GCN uses. Not here (stated gaps
in docs/lds.md): ManiReg, SemiEmb, Sparse-GCN, Dense-GCN and RBF-GCN.

Every baseline picks its hyperparameters by accuracy on the validation + early-stopping nodes (never the test
nodes), as :func:`reprolab.lds.train.logistic_regression` does, and returns (selection accuracy, test accuracy).
The paper's tuning text for these baselines was not available; the grids below are small, documented in
docs/lds.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from reprolab.lds.data import GraphData

__all__ = [
    "label_propagation",
    "linear_svm",
    "random_forest",
    "rbf_svm",
]

SVM_CS = (0.01, 0.1, 1.0, 10.0, 100.0)  # the grid logistic_regression uses
RBF_GAMMA_SCALES = (0.1, 1.0, 10.0)  # times scikit-learn's "scale" gamma, 1 / (d * var(X))
RF_TREES = (10, 100)
RF_DEPTHS: tuple[int | None, ...] = (None, 5)


def _arrays(data: GraphData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = data.features.cpu().numpy().astype(np.float64)
    y = data.labels.cpu().numpy()
    select = (data.val_mask | data.es_mask).cpu().numpy()
    return x, y, data.train_mask.cpu().numpy(), select, data.test_mask.cpu().numpy()


def _select(data: GraphData, candidates: Iterable[Callable[[], Any]]) -> tuple[float, float]:
    """Fit each candidate on the training nodes; keep the first with the best validation accuracy."""
    x, y, train, select, test = _arrays(data)
    best = (-1.0, float("nan"))
    for make in candidates:
        model = make().fit(x[train], y[train])
        acc = float(np.mean(model.predict(x[select]) == y[select]))
        if acc > best[0]:
            best = (acc, float(np.mean(model.predict(x[test]) == y[test])))
    return best


def linear_svm(data: GraphData, cs: tuple[float, ...] = SVM_CS) -> tuple[float, float]:
    """Linear SVM (Table 1 "Linear SVM"), C chosen on validation."""
    from sklearn.svm import SVC

    return _select(data, (lambda c=c: SVC(kernel="linear", C=c) for c in cs))


def rbf_svm(data: GraphData, cs: tuple[float, ...] = SVM_CS,
            gamma_scales: tuple[float, ...] = RBF_GAMMA_SCALES) -> tuple[float, float]:
    """RBF-kernel SVM (Table 1 "RBF SVM"), C x gamma chosen on validation; gamma relative to 1 / (d var(X))."""
    from sklearn.svm import SVC

    x, _, train, _, _ = _arrays(data)
    variance = float(x[train].var())
    base = 1.0 / (x.shape[1] * variance) if variance > 0 else 1.0
    return _select(data, (lambda c=c, g=g: SVC(kernel="rbf", C=c, gamma=g * base)
                          for c in cs for g in gamma_scales))


def random_forest(data: GraphData, seed: int, trees: tuple[int, ...] = RF_TREES,
                  depths: tuple[int | None, ...] = RF_DEPTHS) -> tuple[float, float]:
    """Random forest (Table 1 "RF"), number of trees x depth chosen on validation; one thread, seeded."""
    from sklearn.ensemble import RandomForestClassifier

    return _select(data, (lambda t=t, d=d: RandomForestClassifier(t, max_depth=d, random_state=seed, n_jobs=1)
                          for t in trees for d in depths))


def label_propagation(data: GraphData, graph: torch.Tensor, max_iter: int = 1000) -> tuple[float, float]:
    """Label propagation on ``graph`` (Table 1 "LP"): scikit-learn's ``LabelPropagation`` with the graph as its
    kernel, training labels clamped, every other node unlabelled; the transductive labels are the prediction.

    scikit-learn's class is Zhu & Ghahramani's (2002) algorithm (row-normalised propagation, hard clamping);
    ``LabelSpreading`` would be Zhou et al.'s (2004) variant with soft clamping, which the paper does not cite.
    Nodes that the graph leaves unconnected to any labelled node keep a uniform distribution (class 0 on ties).
    """
    import warnings

    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.semi_supervised import LabelPropagation

    _, y, train, select, test = _arrays(data)
    weights = sparse.csr_matrix(graph.detach().cpu().double().numpy())
    isolated = np.asarray(weights.sum(1)).ravel() == 0
    if isolated.any():  # a row of zeros would divide by zero in the row normalisation: give it a self loop
        weights = (weights + sparse.diags(isolated.astype(np.float64))).tocsr()

    def kernel(a: np.ndarray, b: np.ndarray) -> sparse.csr_matrix:
        return weights.copy()  # the graph is the kernel on node indices (scikit-learn normalises it in place)

    targets = np.where(train, y, -1)
    model = LabelPropagation(kernel=kernel, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.arange(len(y))[:, None], targets)
    predicted = model.transduction_
    return float(np.mean(predicted[select] == y[select])), float(np.mean(predicted[test] == y[test]))
