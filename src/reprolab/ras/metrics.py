"""The standard salient-object-detection metrics, with their usual definitions.

* MAE: mean absolute difference between the saliency map S in [0, 1] and the binary mask G.
* F-measure (Achanta et al. 2009) with beta^2 = 0.3: for each of 256 thresholds t = 0..255 the map
  ``floor(255 * S) >= t`` is compared with G; ``F = (1 + b2) P R / (b2 P + R)`` (0 when P = R = 0). Per-image
  curves are averaged over the dataset; max-F is the maximum of the mean curve, mean-F its mean over the
  256 thresholds. Precision/recall curves are the dataset means too.
* S-measure (Fan et al., ICCV 2017): ``S = 0.5 S_o + 0.5 S_r``, object-aware plus region-aware (SSIM on
  the four blocks around the mask's centroid).
* E-measure (Fan et al., IJCAI 2018): enhanced-alignment score of the binarised map, per threshold; we
  report the mean over the 256 thresholds of the dataset-mean curve (mean-E) and its maximum (max-E).

Inputs are numpy arrays or tensors of shape H x W; predictions in [0, 1] and masks in {0, 1}.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "EPS",
    "SaliencyScores",
    "e_measure_curve",
    "evaluate_maps",
    "f_measure_curve",
    "mae",
    "precision_recall_curve",
    "s_measure",
]

EPS = np.finfo(np.float64).eps
BETA2 = 0.3
THRESHOLDS = np.arange(256)


def _drop_leading_ones(array: np.ndarray) -> np.ndarray:
    """1 x 1 x H x W or 1 x H x W -> H x W."""
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    return array


def _as_arrays(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    if isinstance(gt, torch.Tensor):
        gt = gt.detach().cpu().numpy()
    pred = _drop_leading_ones(np.asarray(pred, dtype=np.float64))
    gt = _drop_leading_ones(np.asarray(gt)) > 0.5
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and mask {gt.shape} must be equal H x W arrays")
    if pred.size and (pred.min() < 0 or pred.max() > 1):
        raise ValueError("predictions must lie in [0, 1]")
    return pred, gt


def mae(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> float:
    """Mean absolute error between the map and the mask."""
    pred, gt = _as_arrays(pred, gt)
    return float(np.abs(pred - gt).mean())


def _binarised(pred: np.ndarray) -> np.ndarray:
    """256 x H x W boolean stack: ``q >= t`` for t = 0..255, where ``q = floor(255 * pred)`` is the map
    quantised to 8 bits (as saving it as a PNG and the common evaluation toolkits do)."""
    levels = np.floor(pred * 255.0 + 1e-9)
    return levels[None] >= THRESHOLDS[:, None, None]


def precision_recall_curve(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at the 256 thresholds (arrays of length 256; 0/0 counts as 0)."""
    pred, gt = _as_arrays(pred, gt)
    binary = _binarised(pred)
    tp = (binary & gt[None]).sum(axis=(1, 2)).astype(np.float64)
    predicted = binary.sum(axis=(1, 2)).astype(np.float64)
    positives = float(gt.sum())
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / positives if positives > 0 else np.zeros_like(tp)
    return precision, recall


def f_measure_curve(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, beta2: float = BETA2) -> np.ndarray:
    """F-measure at the 256 thresholds."""
    precision, recall = precision_recall_curve(pred, gt)
    numerator = (1 + beta2) * precision * recall
    denominator = beta2 * precision + recall
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _object_score(values: np.ndarray) -> float:
    """Object similarity 2 x / (x^2 + 1 + sigma) of the foreground values (Fan et al. 2017, Eq. 5)."""
    if values.size == 0:
        return 0.0
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return 2.0 * mean / (mean * mean + 1.0 + std + EPS)


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    """The block SSIM of the S-measure's region term (Fan et al. 2017, Eq. 3)."""
    n = pred.size
    if n == 0:
        return 0.0
    x, y = pred.mean(), gt.mean()
    sigma_x = ((pred - x) ** 2).sum() / (n - 1 + EPS)
    sigma_y = ((gt - y) ** 2).sum() / (n - 1 + EPS)
    sigma_xy = ((pred - x) * (gt - y)).sum() / (n - 1 + EPS)
    alpha = 4 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x + sigma_y)
    if alpha != 0:
        return float(alpha / (beta + EPS))
    return 1.0 if beta == 0 else 0.0


def _centroid(gt: np.ndarray) -> tuple[int, int]:
    """(row, column) split point: the 1-based centroid of the mask rounded half up, as in the reference
    MATLAB code (image centre if the mask is empty)."""
    h, w = gt.shape
    if not gt.any():
        return math.floor(h / 2 + 0.5), math.floor(w / 2 + 0.5)
    rows, cols = np.nonzero(gt)
    return math.floor(rows.mean() + 1.5), math.floor(cols.mean() + 1.5)


def s_measure(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, alpha: float = 0.5) -> float:
    """Structure measure ``alpha * S_o + (1 - alpha) * S_r`` (Fan et al., ICCV 2017)."""
    pred, gt = _as_arrays(pred, gt)
    coverage = gt.mean()
    if coverage == 0:
        return float(1.0 - pred.mean())
    if coverage == 1:
        return float(pred.mean())
    object_fg = _object_score(pred[gt])
    object_bg = _object_score(1.0 - pred[~gt])
    s_object = coverage * object_fg + (1 - coverage) * object_bg
    row, col = _centroid(gt)
    h, w = gt.shape
    g = gt.astype(np.float64)
    s_region = 0.0
    for rs, cs in (
        (slice(0, row), slice(0, col)),
        (slice(0, row), slice(col, w)),
        (slice(row, h), slice(0, col)),
        (slice(row, h), slice(col, w)),
    ):
        block = pred[rs, cs]
        s_region += block.size / (h * w) * _ssim(block, g[rs, cs])
    return float(max(0.0, alpha * s_object + (1 - alpha) * s_region))


def _enhanced_alignment(binary: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """E-measure of each binary map in ``binary`` (T x H x W) against ``gt`` (Fan et al. 2018, Eq. 6)."""
    h, w = gt.shape
    fm = binary.astype(np.float64)
    if not gt.any():
        enhanced = 1.0 - fm
    elif gt.all():
        enhanced = fm
    else:
        g = gt.astype(np.float64)
        align_gt = g - g.mean()
        align_fm = fm - fm.mean(axis=(1, 2), keepdims=True)
        align = 2 * align_gt[None] * align_fm / (align_gt[None] ** 2 + align_fm**2 + EPS)
        enhanced = (align + 1) ** 2 / 4
    return enhanced.sum(axis=(1, 2)) / (h * w - 1 + EPS)


def e_measure_curve(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> np.ndarray:
    """E-measure at the 256 thresholds."""
    pred, gt = _as_arrays(pred, gt)
    return _enhanced_alignment(_binarised(pred), gt)


@dataclass
class SaliencyScores:
    """Dataset-level scores and the mean precision/recall/F curves (256 thresholds)."""

    mae: float
    max_f: float
    mean_f: float
    s_measure: float
    max_e: float
    mean_e: float
    precision: np.ndarray
    recall: np.ndarray
    f_curve: np.ndarray

    def as_metrics(self, prefix: str) -> dict[str, float]:
        names = ("mae", "max_f", "mean_f", "s_measure", "max_e", "mean_e")
        return {f"{prefix}_{name}": float(getattr(self, name)) for name in names}


def evaluate_maps(
    preds: Iterable[np.ndarray | torch.Tensor], gts: Iterable[np.ndarray | torch.Tensor]
) -> SaliencyScores:
    """Average every metric over pairs of (map, mask)."""
    maes, s_values, precisions, recalls, f_curves, e_curves = [], [], [], [], [], []
    for pred, gt in zip(preds, gts, strict=True):
        p, g = _as_arrays(pred, gt)
        maes.append(mae(p, g))
        s_values.append(s_measure(p, g))
        precision, recall = precision_recall_curve(p, g)
        precisions.append(precision)
        recalls.append(recall)
        f_curves.append(f_measure_curve(p, g))
        e_curves.append(e_measure_curve(p, g))
    if not maes:
        raise ValueError("evaluate_maps needs at least one (map, mask) pair")
    f_curve = np.mean(f_curves, axis=0)
    e_curve = np.mean(e_curves, axis=0)
    return SaliencyScores(
        mae=float(np.mean(maes)),
        max_f=float(f_curve.max()),
        mean_f=float(f_curve.mean()),
        s_measure=float(np.mean(s_values)),
        max_e=float(e_curve.max()),
        mean_e=float(e_curve.mean()),
        precision=np.mean(precisions, axis=0),
        recall=np.mean(recalls, axis=0),
        f_curve=f_curve,
    )
