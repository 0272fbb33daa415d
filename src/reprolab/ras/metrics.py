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


def _levels(pred: np.ndarray) -> np.ndarray:
    """``q = floor(255 * pred)``: the map quantised to 8 bits (as saving it as a PNG and the common evaluation
    toolkits do), as integers 0..255; the binary map at threshold t is ``q >= t``. A NaN pixel gets -1: it is in
    no binary map (``NaN >= t`` is false)."""
    levels = np.minimum(np.floor(pred * 255.0 + 1e-9), 255)
    return np.where(np.isnan(levels), -1, levels).astype(np.int16)


def _at_or_above(levels: np.ndarray) -> np.ndarray:
    """How many of ``levels`` are ``>= t`` for t = 0..255 (float64 counts, exact): the pixel count of each
    binary map, from one histogram instead of 256 thresholded copies of the map."""
    histogram = np.bincount(levels.ravel() + 1, minlength=257)[1:]  # levels 0..255 (NaN pixels dropped)
    return histogram[::-1].cumsum()[::-1].astype(np.float64)


def _precision_recall(levels: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp = _at_or_above(levels[gt])
    predicted = _at_or_above(levels)
    positives = float(gt.sum())
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / positives if positives > 0 else np.zeros_like(tp)
    return precision, recall


def precision_recall_curve(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at the 256 thresholds (arrays of length 256; 0/0 counts as 0)."""
    pred, gt = _as_arrays(pred, gt)
    return _precision_recall(_levels(pred), gt)


def f_measure_curve(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, beta2: float = BETA2) -> np.ndarray:
    """F-measure at the 256 thresholds."""
    return _f_measure(*precision_recall_curve(pred, gt), beta2)


def _f_measure(precision: np.ndarray, recall: np.ndarray, beta2: float = BETA2) -> np.ndarray:
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


def _enhanced_alignment(levels: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """E-measure of the binary maps ``levels >= t``, t = 0..255, against ``gt`` (Fan et al. 2018, Eq. 6).

    A binary map FM and the mask take two values each, so the enhanced alignment of a pixel is one of four
    numbers per threshold, fixed by the map's and the mask's means: they are computed once (a 256 x 2 x 2 table)
    and looked up per pixel by (8-bit level, mask value) rather than recomputed for every pixel of every
    threshold. Each number comes from the same floating-point expression as a per-pixel evaluation, so the
    256 x H x W array of values, and its sums, are the same.
    """
    h, w = gt.shape
    fm_count = _at_or_above(levels)  # pixels of each binary map (an exact integer sum of its 0/1 values)
    if not gt.any():  # enhanced = 1 - FM: its sum counts the pixels off the map (integers, exact)
        return (h * w - fm_count) / (h * w - 1 + EPS)
    if gt.all():  # enhanced = FM
        return fm_count / (h * w - 1 + EPS)
    g_mean = gt.astype(np.float64).mean()
    align_gt = np.array([0.0, 1.0])[None, :, None] - g_mean  # 1 x 2 (mask value) x 1
    align_fm = np.array([0.0, 1.0])[None, None, :] - (fm_count / (h * w))[:, None, None]  # T x 1 x 2 (FM value)
    align = 2 * align_gt * align_fm / (align_gt**2 + align_fm**2 + EPS)
    table = (align + 1) ** 2 / 4  # [t, mask value, FM value]
    on = np.arange(-1, 256)[None, :] >= THRESHOLDS[:, None]  # [t, level + 1]: FM at a pixel of that level
    lookup = np.empty((len(THRESHOLDS), 257, 2))  # [t, level + 1, mask value] -> enhanced alignment
    for value in (0, 1):
        lookup[:, :, value] = np.where(on, table[:, value, 1:], table[:, value, :1])
    key = (levels.astype(np.intp).ravel() + 1) * 2 + gt.ravel()
    enhanced = np.take(lookup.reshape(len(THRESHOLDS), -1), key, axis=1).reshape(len(THRESHOLDS), h, w)
    return enhanced.sum(axis=(1, 2)) / (h * w - 1 + EPS)


def e_measure_curve(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> np.ndarray:
    """E-measure at the 256 thresholds."""
    pred, gt = _as_arrays(pred, gt)
    return _enhanced_alignment(_levels(pred), gt)


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
        levels = _levels(p)  # quantised once for the precision/recall, F and E curves
        precision, recall = _precision_recall(levels, g)
        precisions.append(precision)
        recalls.append(recall)
        f_curves.append(_f_measure(precision, recall))
        e_curves.append(_enhanced_alignment(levels, g))
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
