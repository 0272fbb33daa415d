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


def test_classes_absent_from_prediction_and_truth_do_not_count():
    """A perfect prediction on a set where 8 of 10 classes never occur scores 100, not 20."""
    targets = torch.zeros(3, 10)
    targets[0, 1] = targets[1, 1] = targets[1, 4] = targets[2, 4] = 1.0
    scores = multilabel_scores(targets.clone(), targets)
    assert all(value == pytest.approx(100.0) for value in scores.values())
    # hand case: class 0 predicted once but never true (P 0, R 0/0 -> 0), class 1 true twice, found once
    # (P 1/1, R 1/2), class 2 never predicted and never true (left out); mean over classes 0 and 1
    targets = torch.tensor([[0, 1, 0], [0, 1, 0]], dtype=torch.float)
    preds = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.float)
    scores = multilabel_scores(preds, targets)
    cp, cr = (0 + 1) / 2, (0 + 0.5) / 2
    assert scores["cp"] == pytest.approx(100 * cp) and scores["cr"] == pytest.approx(100 * cr)
    assert scores["cf1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    assert scores["op"] == pytest.approx(50.0) and scores["or"] == pytest.approx(50.0)
    # the same as sklearn's macro averages restricted to the occurring classes, zero_division=0
    from sklearn.metrics import precision_score, recall_score

    kwargs = {"average": "macro", "labels": [0, 1], "zero_division": 0}
    assert scores["cp"] == pytest.approx(100 * precision_score(targets.numpy(), preds.numpy(), **kwargs))
    assert scores["cr"] == pytest.approx(100 * recall_score(targets.numpy(), preds.numpy(), **kwargs))
    assert torch.isnan(per_class_f1(preds, targets)[2])


def test_average_precision_hand_case():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2)
    both = mean_average_precision(torch.stack([scores, scores], 1), torch.stack([labels, 1 - labels], 1))
    assert both == pytest.approx(100 * ((1 + 2 / 3) / 2 + (1 / 2 + 2 / 4) / 2) / 2)
    # ties: one threshold for the tied rows. Scores 0.9 (pos), 0.5 (pos), 0.5 (neg), 0.1 (neg):
    # recall steps 1/2 at precision 1, then 1 at precision 2/3 -> AP = 1/2 + 1/2 * 2/3
    tied = torch.tensor([0.9, 0.5, 0.5, 0.1])
    assert average_precision(tied, torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(tied, torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_map_does_not_depend_on_row_order_with_ties():
    from sklearn.metrics import average_precision_score

    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (200, 5), generator=generator).float() / 4  # heavily tied scores
    targets = (torch.rand(200, 5, generator=generator) < 0.3).float()
    reference = mean_average_precision(scores, targets)
    for seed in range(3):
        order = torch.randperm(200, generator=torch.Generator().manual_seed(seed))
        assert mean_average_precision(scores[order], targets[order]) == pytest.approx(reference, abs=1e-12)
    expected = 100 * average_precision_score(targets.numpy(), scores.numpy(), average="macro")
    assert reference == pytest.approx(expected)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="N x K"):
        multilabel_scores(torch.zeros(3, 2), torch.zeros(3, 3))
