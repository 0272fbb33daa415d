from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reprolab.ras.metrics import (
    EPS,
    e_measure_curve,
    evaluate_maps,
    f_measure_curve,
    mae,
    precision_recall_curve,
    s_measure,
)

PRED = np.array([[1.0, 0.0], [0.5, 0.0]])
GT = np.array([[1, 0], [1, 0]])


def test_mae_by_hand():
    assert mae(PRED, GT) == pytest.approx((0 + 0 + 0.5 + 0) / 4)
    assert mae(torch.tensor(PRED), torch.tensor(GT)) == pytest.approx(0.125)


def test_f_measure_curve_by_hand():
    # 8-bit levels: 255, 0, 127, 0. t=0: all four predicted (P=1/2, R=1); t=1..127: {255,127} (P=R=1);
    # t=128..255: {255} (P=1, R=1/2).
    f_t0 = 1.3 * 0.5 * 1 / (0.3 * 0.5 + 1)
    f_high = 1.3 * 1 * 0.5 / (0.3 * 1 + 0.5)
    curve = f_measure_curve(PRED, GT)
    assert curve.shape == (256,)
    assert curve[0] == pytest.approx(f_t0)
    assert np.allclose(curve[1:128], 1.0)
    assert np.allclose(curve[128:], f_high)
    scores = evaluate_maps([PRED], [GT])
    assert scores.max_f == pytest.approx(1.0)
    assert scores.mean_f == pytest.approx((f_t0 + 127 * 1.0 + 128 * f_high) / 256)
    precision, recall = precision_recall_curve(PRED, GT)
    assert precision[0] == pytest.approx(0.5) and recall[0] == 1.0 and recall[200] == 0.5


def test_f_measure_is_zero_when_nothing_is_salient_or_predicted():
    assert np.all(f_measure_curve(np.zeros((3, 3)), np.zeros((3, 3))) == 0)
    curve = f_measure_curve(np.zeros((3, 3)), np.eye(3))
    assert curve[0] > 0 and np.all(curve[1:] == 0)  # t=0 marks everything salient


def test_dataset_f_is_the_max_of_the_mean_curve_not_the_mean_of_maxima():
    a, b = np.array([[1.0, 0.2]]), np.array([[0.2, 1.0]])
    gt_a, gt_b = np.array([[1, 0]]), np.array([[1, 0]])
    scores = evaluate_maps([a, b], [gt_a, gt_b])
    mean_curve = (f_measure_curve(a, gt_a) + f_measure_curve(b, gt_b)) / 2
    assert scores.max_f == pytest.approx(mean_curve.max())
    assert np.allclose(scores.f_curve, mean_curve)


def test_s_measure_by_hand():
    # object term: foreground values [1, .5] (mean .75, std .3536), background 1 - [0, 0] = [1, 1]
    o_fg = 2 * 0.75 / (0.75**2 + 1 + math.sqrt(0.125))
    s_object = 0.5 * o_fg + 0.5 * 1.0
    # region term: centroid (row 2, col 1, 1-based) -> left column (SSIM 0: sigma_xy = 0, beta > 0),
    # right column (all zeros on both: SSIM 1), empty bottom blocks; weights 1/2, 1/2
    s_region = 0.5 * 0.0 + 0.5 * 1.0
    assert s_measure(PRED, GT) == pytest.approx(0.5 * s_object + 0.5 * s_region)


def test_s_measure_degenerate_masks_and_perfect_prediction():
    pred = np.array([[0.2, 0.4], [0.0, 0.6]])
    assert s_measure(pred, np.zeros((2, 2))) == pytest.approx(1 - pred.mean())
    assert s_measure(pred, np.ones((2, 2))) == pytest.approx(pred.mean())
    gt = np.zeros((8, 8))
    gt[2:6, 3:7] = 1
    assert s_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-6)
    assert s_measure(1 - gt.astype(float), gt) < 0.1


def test_e_measure_by_hand():
    pred = np.array([[1.0, 0.0], [1.0, 1.0]])
    gt = np.array([[1, 0], [1, 0]])
    # threshold >= 1: the map itself. align_gt = +-.5, align_fm = [[.25, -.75], [.25, .25]]
    xi = [0.8, 0.75 / 0.8125, 0.8, -0.8]
    expected = sum((x + 1) ** 2 / 4 for x in xi) / (4 - 1)
    curve = e_measure_curve(pred, gt)
    assert np.allclose(curve[1:], expected)
    assert curve[0] == pytest.approx(1 / 3)  # t=0: all ones, no alignment -> 1/4 per pixel, 4 pixels / 3
    scores = evaluate_maps([pred], [gt])
    assert scores.max_e == pytest.approx(expected)
    assert scores.mean_e == pytest.approx((1 / 3 + 255 * expected) / 256)


def test_e_measure_empty_mask_scores_the_background():
    pred = np.array([[0.0, 0.0], [1.0, 0.0]])
    curve = e_measure_curve(pred, np.zeros((2, 2)))
    assert curve[10] == pytest.approx(3 / 3)  # three background pixels predicted 0, divided by hw - 1
    assert curve[0] == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal H x W"):
        mae(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mae(np.full((2, 2), 2.0), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="at least one"):
        evaluate_maps([], [])


def _reference_curves(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and E-measure curves evaluated pixel by pixel on the 256 x H x W stack of binary maps
    (the definitions, written out; the module computes them from a histogram and a lookup table)."""
    binary = np.floor(pred * 255.0 + 1e-9)[None] >= np.arange(256)[:, None, None]
    tp = (binary & gt[None]).sum(axis=(1, 2)).astype(np.float64)
    predicted = binary.sum(axis=(1, 2)).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = tp / gt.sum() if gt.any() else np.zeros_like(tp)
    fm, g = binary.astype(np.float64), gt.astype(np.float64)
    if not gt.any():
        enhanced = 1.0 - fm
    elif gt.all():
        enhanced = fm
    else:
        align_gt, align_fm = g - g.mean(), fm - fm.mean(axis=(1, 2), keepdims=True)
        enhanced = (2 * align_gt[None] * align_fm / (align_gt[None] ** 2 + align_fm**2 + EPS) + 1) ** 2 / 4
    return precision, recall, enhanced.sum(axis=(1, 2)) / (gt.size - 1 + EPS)


@pytest.mark.parametrize("case", range(8))
def test_curves_equal_the_per_pixel_definitions_bit_for_bit(case):
    rng = np.random.default_rng(case)
    shape = (int(rng.integers(1, 24)), int(rng.integers(2, 24)))
    pred = 1 / (1 + np.exp(-rng.normal(0, 4, shape))) if case % 2 else rng.uniform(size=shape)
    gt = rng.uniform(size=shape) < rng.uniform(0.1, 0.9)
    gt = np.zeros(shape, bool) if case == 6 else np.ones(shape, bool) if case == 7 else gt
    if case == 5:
        pred.flat[::3] = np.nan  # a NaN pixel is in no binary map
    precision, recall, e_curve = _reference_curves(pred, gt)
    got = precision_recall_curve(pred, gt)
    assert np.array_equal(got[0], precision) and np.array_equal(got[1], recall)
    assert np.array_equal(e_measure_curve(pred, gt), e_curve)
