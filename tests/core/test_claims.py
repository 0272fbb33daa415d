from __future__ import annotations

import math

import pytest

from reprolab.core.claims import Claim, evaluate_claims


def test_compare_against_a_number_and_a_metric():
    above = Claim.compare("c1", "a > 1", "a", ">", 1.0, paper=2.0)
    versus = Claim.compare("c2", "a > b", "a", ">", "b")
    verdicts, skipped = evaluate_claims([above, versus], {"a": 1.5, "b": 2.0})
    assert [v.passed for v in verdicts] == [True, False]
    assert verdicts[0].to_dict() == {
        "id": "c1",
        "description": "a > 1",
        "passed": True,
        "ours": 1.5,
        "paper": 2.0,
        "paper_source": None,
        "detail": "a=1.5 > 1",
    }
    assert "b=2" in verdicts[1].detail and not skipped


def test_margin_is_part_of_the_claim():
    claim = Claim.compare("c", "a beats b by 0.1", "a", ">=", "b", margin=0.1)
    assert claim.evaluate({"a": 1.05, "b": 1.0}).passed is False
    assert claim.evaluate({"a": 1.1, "b": 1.0}).passed is True


def test_missing_metric_is_not_evaluated_rather_than_passed():
    claim = Claim.compare("real", "needs real data", "enzymes_acc", ">", 0.5)
    verdicts, skipped = evaluate_claims([claim], {"other": 1.0})
    assert verdicts == [] and skipped[0]["id"] == "real" and "enzymes_acc" in skipped[0]["reason"]


def test_nan_never_passes():
    claim = Claim.compare("c", "a <= 0", "a", "<=", 0.0)
    assert claim.evaluate({"a": math.nan}).passed is False


def test_unknown_operator_is_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        Claim.compare("c", "", "a", "==", 0.0)


def test_paper_source_is_recorded_and_shown():
    from reprolab.core.report import paper_cell

    claim = Claim.compare("c", "a > 1", "a", ">", 1.0, paper=62.53, paper_source="recalled")
    verdict = claim.evaluate({"a": 2.0}).to_dict()
    assert verdict["paper_source"] == "recalled"
    assert paper_cell(verdict) == "62.53 (recalled)"
    assert paper_cell({"paper": 0.5, "paper_source": None}) == 0.5
    with pytest.raises(ValueError, match="paper_source"):
        Claim.compare("c", "", "a", ">", 0.0, paper=1.0, paper_source="guessed")
