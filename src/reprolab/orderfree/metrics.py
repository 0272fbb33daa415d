"""Multi-label metrics as the paper reports them (Sec. 4.1, following Wang et al. 2016).

* Per-class: ``C-P`` = mean of TP_c / (TP_c + FP_c), ``C-R`` = mean of TP_c / (TP_c + FN_c), and
  ``C-F1 = 2 C-P C-R / (C-P + C-R)`` (the harmonic mean of the two means, as in the paper; not the mean of
  per-class F1). The means run over the classes that **occur**: predicted at least once or positive at least
  once in the evaluated set. A class absent from both has no precision and no recall, and counting it as 0
  (what a mean over all K classes does) would punish a perfect prediction of a subset that lacks some
  classes. Within an occurring class an undefined ratio counts as 0 (a positive class never predicted has
  precision 0; a predicted class with no positive has recall 0), i.e. sklearn's
  ``precision_score(..., average="macro", labels=occurring, zero_division=0)``. On full benchmark test sets
  every class has positives, so this equals the mean over all classes there.
* Overall: ``O-P = sum TP / sum (TP + FP)``, ``O-R = sum TP / sum (TP + FN)``, ``O-F1`` their harmonic mean.
* ``mAP``: mean over classes with at least one positive of sklearn's ``average_precision_score`` (step-wise
  area under the precision-recall curve, thresholds at the distinct scores). Tied scores form one threshold,
  so the value does not depend on the order of the rows (a rank-based AP with ties broken by row order does).
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


def _occurring(predicted: Tensor, actual: Tensor) -> Tensor:
    """Classes that are predicted or positive at least once: the classes the per-class means run over."""
    return (predicted > 0) | (actual > 0)


def multilabel_scores(predictions: Tensor, targets: Tensor) -> dict[str, float]:
    """``{cp, cr, cf1, op, or, of1}`` in percent for binary ``N x K`` predictions and targets (module docstring)."""
    tp, predicted, actual = _counts(predictions, targets)
    occurring = _occurring(predicted, actual)
    class_p = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))[occurring]
    class_r = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))[occurring]
    cp = float(class_p.mean()) if len(class_p) else 0.0
    cr = float(class_r.mean()) if len(class_r) else 0.0
    op = float(tp.sum() / predicted.sum()) if predicted.sum() > 0 else 0.0
    orc = float(tp.sum() / actual.sum()) if actual.sum() > 0 else 0.0
    values = {"cp": cp, "cr": cr, "cf1": _harmonic(cp, cr), "op": op, "or": orc, "of1": _harmonic(op, orc)}
    return {key: 100.0 * value for key, value in values.items()}


def per_class_f1(predictions: Tensor, targets: Tensor) -> Tensor:
    """F1 of every class in percent; NaN for a class with neither predictions nor positives (undefined)."""
    tp, predicted, actual = _counts(predictions, targets)
    denominator = predicted + actual
    return 100.0 * torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.full_like(tp, float("nan")))


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Average precision of one class, sklearn's ``average_precision_score``; NaN without positives.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order: rows with tied
    scores enter together, so the value is independent of row order.
    """
    from sklearn.metrics import average_precision_score

    truth = (labels > 0.5).cpu().numpy()
    if not truth.any():
        return float("nan")
    return float(average_precision_score(truth, scores.detach().double().cpu().numpy()))


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """mAP in percent over classes that have at least one positive."""
    _check(scores, targets)
    values = [average_precision(scores[:, k], targets[:, k]) for k in range(targets.shape[1])]
    kept = [v for v in values if v == v]
    return 100.0 * sum(kept) / len(kept) if kept else float("nan")
