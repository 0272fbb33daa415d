"""Multi-label metrics as the paper reports them (Sec. 4.1, following Wang et al. 2016).

* Per-class: ``C-P`` = mean over classes of TP_c / (TP_c + FP_c) (0 when a class is never predicted),
  ``C-R`` = mean over classes of TP_c / (TP_c + FN_c) (0 when a class never occurs), and
  ``C-F1 = 2 C-P C-R / (C-P + C-R)``.
* Overall: ``O-P = sum TP / sum (TP + FP)``, ``O-R = sum TP / sum (TP + FN)``, ``O-F1`` their harmonic mean.
* ``mAP``: mean over classes (with at least one positive) of the average precision of the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["average_precision", "mean_average_precision", "multilabel_scores", "per_class_f1"]


def _check(predictions: Tensor, targets: Tensor) -> None:
    if predictions.shape != targets.shape or predictions.dim() != 2:
        shapes = f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)}"
        raise ValueError(f"{shapes} must both be N x K")


def _harmonic(p: float, r: float) -> float:
    return 2.0 * p * r / (p + r) if p + r > 0 else 0.0


def _counts(predictions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    _check(predictions, targets)
    pred, true = predictions > 0.5, targets > 0.5
    tp = (pred & true).sum(dim=0).double()
    return tp, pred.sum(dim=0).double(), true.sum(dim=0).double()


def multilabel_scores(predictions: Tensor, targets: Tensor) -> dict[str, float]:
    """``{cp, cr, cf1, op, or, of1}`` in percent for binary ``N x K`` predictions and targets."""
    tp, predicted, actual = _counts(predictions, targets)
    class_p = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    class_r = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    cp, cr = float(class_p.mean()), float(class_r.mean())
    op = float(tp.sum() / predicted.sum()) if predicted.sum() > 0 else 0.0
    orc = float(tp.sum() / actual.sum()) if actual.sum() > 0 else 0.0
    values = {"cp": cp, "cr": cr, "cf1": _harmonic(cp, cr), "op": op, "or": orc, "of1": _harmonic(op, orc)}
    return {key: 100.0 * value for key, value in values.items()}


def per_class_f1(predictions: Tensor, targets: Tensor) -> Tensor:
    """F1 of every class in percent (0 when the class has neither predictions nor positives)."""
    tp, predicted, actual = _counts(predictions, targets)
    denominator = predicted + actual
    return 100.0 * torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Average precision of one class: mean of the precision at the rank of every positive.

    Tied scores are broken by sample order after a stable descending sort.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    hits = (labels[order] > 0.5).double()
    if hits.sum() == 0:
        return float("nan")
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1, dtype=torch.double)
    return float((precision * hits).sum() / hits.sum())


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """mAP in percent over classes that have at least one positive."""
    _check(scores, targets)
    values = [average_precision(scores[:, k], targets[:, k]) for k in range(targets.shape[1])]
    kept = [v for v in values if v == v]
    return 100.0 * sum(kept) / len(kept) if kept else float("nan")
