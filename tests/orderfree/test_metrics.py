"""Multi-label metrics against hand computation."""

from __future__ import annotations

import pytest
import torch

from reprolab.orderfree.metrics import average_precision, mean_average_precision, multilabel_scores, per_class_f1


def test_scores_match_hand_computation():
    targets = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float)
    preds = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float)
    # class 0: tp 2, predicted 3, actual 2; class 1: tp 1, pred 1, actual 2; class 2: tp 1, pred 1, actual 2
    cp = (2 / 3 + 1 + 1) / 3
    cr = (1 + 0.5 + 0.5) / 3
    op, orc = 4 / 5, 4 / 6
    scores = multilabel_scores(preds, targets)
    assert scores["cp"] == pytest.approx(100 * cp)
    assert scores["cr"] == pytest.approx(100 * cr)
    assert scores["cf1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    assert scores["op"] == pytest.approx(100 * op)
    assert scores["or"] == pytest.approx(100 * orc)
    assert scores["of1"] == pytest.approx(100 * 2 * op * orc / (op + orc))
    f1 = per_class_f1(preds, targets)
    assert f1.tolist() == pytest.approx([100 * 2 * 2 / 5, 100 * 2 / 3, 100 * 2 / 3])


def test_never_predicted_class_counts_as_zero_precision():
    targets = torch.tensor([[1, 1], [1, 0]], dtype=torch.float)
    preds = torch.tensor([[1, 0], [1, 0]], dtype=torch.float)
    scores = multilabel_scores(preds, targets)
    assert scores["cp"] == pytest.approx(50.0) and scores["cr"] == pytest.approx(50.0)
    assert scores["op"] == pytest.approx(100.0)


def test_average_precision_hand_case():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)
    both = mean_average_precision(torch.stack([scores, scores], 1), torch.stack([labels, 1 - labels], 1))
    assert both == pytest.approx(100 * ((1 + 2 / 3) / 2 + (1 / 2 + 2 / 4) / 2) / 2)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="N x K"):
        multilabel_scores(torch.zeros(3, 2), torch.zeros(3, 3))
