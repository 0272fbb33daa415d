"""The confidence rule and claim kinds, checked against hand computations."""

from __future__ import annotations

import math

import pytest

from reprolab.core.claims import Claim, RunUnits, decide, evaluate_claims, mean_bounds, verdict_totals

# Student t quantiles t(0.95, df), from a printed table: df=1 6.3138, df=2 2.9200, df=4 2.1318
T95 = {1: 6.313752, 2: 2.919986, 4: 2.131847}


def _runs(*per_seed: dict[str, float | None]) -> list[RunUnits]:
    return [RunUnits(seed, metrics) for seed, metrics in enumerate(per_seed)]


def test_mean_bounds_match_a_hand_computation():
    # values 1, 2, 3: mean 2, s = 1, half width t(0.95, 2) * 1 / sqrt(3)
    mean, low, high = mean_bounds([1.0, 2.0, 3.0])
    half = T95[2] / math.sqrt(3)
    assert mean == 2.0
    assert low == pytest.approx(2.0 - half, abs=1e-5) and high == pytest.approx(2.0 + half, abs=1e-5)
    # five values: 0.1, 0.3, 0.2, 0.4, 0.0 -> mean 0.2, s = sqrt(0.025)
    mean, low, _ = mean_bounds([0.1, 0.3, 0.2, 0.4, 0.0])
    assert low == pytest.approx(0.2 - T95[4] * math.sqrt(0.025) / math.sqrt(5), abs=1e-6)


def test_one_unit_is_unbounded_and_zero_variance_is_a_point():
    assert mean_bounds([0.7]) == (0.7, -math.inf, math.inf)
    assert mean_bounds([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(x) for x in mean_bounds([]))


def test_decide_is_three_valued_and_mirrored():
    assert decide(">", 0.1, 0.5) == "pass"
    assert decide(">", -0.5, -0.1) == "fail"
    assert decide(">", -0.1, 0.5) == "inconclusive"
    assert decide("<", -0.5, -0.1) == "pass"
    assert decide("<", 0.1, 0.5) == "fail"
    assert decide("<", -0.1, 0.1) == "inconclusive"
    assert decide(">=", 0.0, 0.0) == "pass" and decide(">", 0.0, 0.0) == "fail"
    assert decide(">", 0.2, 0.9, margin=0.1) == "pass" and decide(">", 0.05, 0.9, margin=0.1) == "inconclusive"
    assert decide(">", -math.inf, math.inf) == "inconclusive"


def test_paired_comparison_passes_fails_and_is_inconclusive():
    claim = Claim.compare("a_beats_b", "a > b", "a", ">", "b")
    # differences 1, 2, 3: lower bound 2 - 2.92/sqrt(3) = 0.314 > 0 -> pass
    passing = claim.evaluate(_runs({"a": 11, "b": 10}, {"a": 12, "b": 10}, {"a": 13, "b": 10}))
    assert passing.verdict == "pass" and passing.n == 3
    assert passing.mean == 2.0 and passing.ci_low == pytest.approx(2 - T95[2] / math.sqrt(3), abs=1e-5)
    assert passing.values == (1.0, 2.0, 3.0) and passing.unit_ids == ("seed0", "seed1", "seed2")
    # differences -1, -2, -3: upper bound -0.314 < 0 -> fail
    failing = claim.evaluate(_runs({"a": 9, "b": 10}, {"a": 8, "b": 10}, {"a": 7, "b": 10}))
    assert failing.verdict == "fail"
    # differences +1, -1, +1: mean 1/3, s = 1.155, bounds straddle 0 -> inconclusive
    unsure = claim.evaluate(_runs({"a": 11, "b": 10}, {"a": 9, "b": 10}, {"a": 11, "b": 10}))
    assert unsure.verdict == "inconclusive" and unsure.ci_low < 0 < unsure.ci_high


def test_pairing_removes_shared_noise():
    # a and b both move a lot between seeds, but a - b is always +0.1: paired, that is a clear pass
    claim = Claim.compare("paired", "a > b", "a", ">", "b")
    runs = _runs({"a": 50.1, "b": 50.0}, {"a": 70.1, "b": 70.0}, {"a": 30.1, "b": 30.0})
    assert claim.evaluate(runs).verdict == "pass"


def test_threshold_claim_uses_the_same_bounds_and_margin():
    claim = Claim.compare("reaches", "a >= 0.5", "a", ">=", 0.5)
    assert claim.evaluate(_runs({"a": 0.6}, {"a": 0.62}, {"a": 0.61})).verdict == "pass"
    assert claim.evaluate(_runs({"a": 0.3}, {"a": 0.32}, {"a": 0.31})).verdict == "fail"
    margin = Claim.compare("by_margin", "a beats b by 0.1", "a", ">", "b", margin=0.1)
    assert margin.evaluate(_runs({"a": 1.05, "b": 1.0}, {"a": 1.05, "b": 1.0})).verdict == "fail"
    assert margin.evaluate(_runs({"a": 1.2, "b": 1.0}, {"a": 1.2, "b": 1.0})).verdict == "pass"


def test_one_unit_is_inconclusive_for_an_empirical_claim():
    claim = Claim.compare("c", "a > b", "a", ">", "b")
    verdict = claim.evaluate(_runs({"a": 100.0, "b": 0.0}))
    assert verdict.verdict == "inconclusive" and verdict.passed is False and "one unit" in verdict.detail
    extension = Claim.compare("e", "a > b", "a", ">", "b", kind="extension")
    assert extension.evaluate(_runs({"a": 100.0, "b": 0.0})).verdict == "inconclusive"


def test_zero_variance_units_decide_on_the_point():
    claim = Claim.compare("c", "a > b", "a", ">", "b")
    assert claim.evaluate(_runs({"a": 2.0, "b": 1.0}, {"a": 2.0, "b": 1.0})).verdict == "pass"
    assert claim.evaluate(_runs({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0})).verdict == "fail"


def test_nan_units_are_left_out_and_counted():
    claim = Claim.compare("c", "a > b", "a", ">", "b")
    verdict = claim.evaluate(
        _runs({"a": 11, "b": 10}, {"a": math.nan, "b": 10}, {"a": 12, "b": 10}, {"a": 13, "b": 10}, {"a": None, "b": 1})
    )
    assert verdict.n == 3 and verdict.verdict == "pass" and "2 non-finite" in verdict.detail
    assert verdict.to_dict()["values"] == [1.0, None, 2.0, 3.0, None]
    only_nan = claim.evaluate(_runs({"a": math.nan, "b": 1.0}, {"a": math.nan, "b": 1.0}))
    assert only_nan.verdict == "inconclusive" and only_nan.n == 0


def test_structural_claims_are_checks_on_every_unit():
    size = Claim.compare("size", "under 1%", "fraction", "<", 0.01, kind="structural")
    assert size.evaluate(_runs({"fraction": 0.002})).verdict == "pass"  # one unit is enough for a fact
    assert size.evaluate(_runs({"fraction": 0.002}, {"fraction": 0.05})).verdict == "fail"
    check = Claim.check("c", "is 81 MB", lambda m: (abs(m["mb"] - 81) < 1, m["mb"], "close"), requires=("mb",))
    assert check.kind == "structural" and check.evaluate(_runs({"mb": 80.9})).verdict == "pass"
    with pytest.raises(ValueError, match="structural"):
        Claim(id="x", description="", requires=(), check_fn=lambda m: (True, None, ""), kind="empirical")


def test_derived_claim_is_decided_on_its_value():
    def gain_gap(metrics):
        return metrics["x"] - 0.5 * metrics["y"]

    claim = Claim.derived("d", "x > y / 2", gain_gap, ">", 0.0, requires=("x", "y"), shown="x")
    verdict = claim.evaluate(_runs({"x": 3, "y": 4}, {"x": 3.2, "y": 4}, {"x": 3.1, "y": 4}))
    assert verdict.verdict == "pass" and verdict.ours == pytest.approx(3.1) and "gain_gap" in verdict.detail


def test_units_recorded_inside_runs_are_used_over_seeds():
    claim = Claim.compare("folds", "a > b", "a", ">", "b")
    runs = [
        RunUnits(0, {"a": 0.6, "b": 0.5}, {f"fold{k}": {"a": 0.6 + k / 100, "b": 0.5} for k in range(3)}),
        RunUnits(1, {"a": 0.6, "b": 0.5}, {f"fold{k}": {"a": 0.62, "b": 0.5} for k in range(3)}),
    ]
    verdict = claim.evaluate(runs)
    assert verdict.n == 6 and verdict.unit_ids[0] == "seed0/fold0" and verdict.verdict == "pass"
    # a claim whose metrics are not in the recorded units falls back to run level
    other = Claim.compare("run_level", "c > 0", "c", ">", 0.0)
    assert other.units([RunUnits(0, {"c": 1.0}, {"fold0": {"a": 1.0}})]) == [("seed0", {"c": 1.0})]


def test_missing_metric_is_not_evaluated_rather_than_passed():
    claim = Claim.compare("real", "needs real data", "enzymes_acc", ">", 0.5)
    verdicts, skipped = evaluate_claims([claim], {"other": 1.0})
    assert verdicts == [] and skipped[0]["id"] == "real" and "enzymes_acc" in skipped[0]["reason"]


def test_partial_protocols_are_not_evaluated():
    complete = Claim.compare("c", "a > b", "a", ">", "b", complete="protocol_complete")
    runs = _runs({"a": 2, "b": 1, "protocol_complete": 1}, {"a": 2, "b": 1, "protocol_complete": 0})
    verdicts, skipped = evaluate_claims([complete], runs)
    assert not verdicts and "partial protocol" in skipped[0]["reason"] and "seed 1" in skipped[0]["reason"]
    folds = Claim.compare("f", "a > b", "a", ">", "b", min_units=10)
    verdicts, skipped = evaluate_claims([folds], _runs({"a": 2, "b": 1}, {"a": 2, "b": 1}))
    assert not verdicts and ">= 10 units" in skipped[0]["reason"]


def test_to_dict_keeps_passed_and_adds_the_verdict_fields():
    claim = Claim.compare("c", "a > 1", "a", ">", 1.0, paper=2.0, paper_source="read")
    data = claim.evaluate(_runs({"a": 1.5}, {"a": 1.7}, {"a": 1.6})).to_dict()
    assert data["passed"] is True and data["verdict"] == "pass" and data["kind"] == "empirical"
    for key in ("n", "mean", "ci_low", "ci_high", "values", "unit_ids", "rule", "ours_low", "ours_high"):
        assert key in data
    assert data["ours"] == pytest.approx(1.6) and data["ours_low"] < 1.6 < data["ours_high"]


def test_totals_count_kinds_apart():
    claims = [
        {"kind": "empirical", "verdict": "pass"},
        {"kind": "empirical", "verdict": "inconclusive"},
        {"kind": "structural", "verdict": "pass"},
        {"kind": "extension", "verdict": "fail"},
        {"passed": True},  # an older results.json: no kind, no verdict
    ]
    totals = verdict_totals(claims, [{"kind": "empirical"}])
    assert totals["empirical"] == {"pass": 2, "fail": 0, "inconclusive": 1, "not evaluated": 1}
    assert totals["structural"]["pass"] == 1 and totals["extension"]["fail"] == 1


def test_unknown_operator_kind_and_source_are_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        Claim.compare("c", "", "a", "==", 0.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Claim.compare("c", "", "a", ">", 0.0, kind="anecdotal")
    with pytest.raises(ValueError, match="paper_source"):
        Claim.compare("c", "", "a", ">", 0.0, paper=1.0, paper_source="guessed")
    with pytest.raises(ValueError, match="needs paper_source"):
        Claim.compare("c", "", "a", ">", 0.0, paper=1.0)


def test_every_registered_paper_number_states_its_source():
    """Issue 18: every ``paper=`` number of every method says whether it was read from the paper or recalled."""
    from reprolab.core.registry import get_experiment, list_experiments

    for experiment in list_experiments():
        for claim in get_experiment(experiment.name).claims:
            if claim.paper is not None:
                assert claim.paper_source in ("read", "recalled"), (experiment.name, claim.id)


def test_paper_source_is_recorded_and_shown():
    from reprolab.core.report import paper_cell

    claim = Claim.compare("c", "a > 1", "a", ">", 1.0, paper=62.53, paper_source="recalled")
    verdict = claim.evaluate(_runs({"a": 2.0})).to_dict()
    assert verdict["paper_source"] == "recalled"
    assert paper_cell(verdict) == "62.53 (recalled)"
    assert paper_cell({"paper": 0.5, "paper_source": None}) == 0.5


def _preset_runs(preset: str, *diffs: float) -> list[RunUnits]:
    return [RunUnits(seed, {"a": 10.0 + d, "b": 10.0}, preset=preset) for seed, d in enumerate(diffs)]


def test_units_needed_makes_an_underpowered_preset_inconclusive_and_says_why():
    claim = Claim.compare("a_beats_b", "a > b", "a", ">", "b", units_needed={"quick": 5})
    # differences 1, 2, 3 pass by the rule (lower bound 0.314 > 0), but quick needs 5 units
    result = claim.evaluate(_preset_runs("quick", 1.0, 2.0, 3.0))
    assert result.verdict == "inconclusive" and result.units_needed == 5
    assert "n >= 5" in result.detail and "the rule alone gives pass" in result.detail
    assert result.mean == 2.0 and result.ci_low == pytest.approx(2 - T95[2] / math.sqrt(3), abs=1e-5)
    assert result.to_dict()["units_needed"] == 5
    # enough units: the rule decides, and nothing is added to the detail
    enough = claim.evaluate(_preset_runs("quick", 1.0, 2.0, 3.0, 2.0, 2.0))
    assert enough.verdict == "pass" and enough.units_needed is None and "underpowered" not in enough.detail
    # another preset (e.g. paper) is not bound by the quick miniature's noise; nor are runs without a preset
    assert claim.evaluate(_preset_runs("paper", 1.0, 2.0, 3.0)).verdict == "pass"
    assert claim.evaluate(_runs({"a": 11, "b": 10}, {"a": 12, "b": 10}, {"a": 13, "b": 10})).verdict == "pass"
    # a fail is made inconclusive the same way; an inconclusive stays inconclusive
    assert claim.evaluate(_preset_runs("quick", -1.0, -2.0, -3.0)).verdict == "inconclusive"
    assert claim.evaluate(_preset_runs("quick", 1.0, -1.0, 1.0)).verdict == "inconclusive"


def test_units_needed_is_declared_per_preset_and_not_for_checks():
    claim = Claim.derived("d", "x > 0", lambda m: m["x"], ">", 0.0, requires=["x"], units_needed={"quick": 8})
    assert claim.describe()["units_needed"] == {"quick": 8}
    with pytest.raises(ValueError, match="units_needed"):
        Claim.compare("c", "a > b", "a", ">", "b", units_needed={"quick": 1})
    with pytest.raises(ValueError, match="structural"):
        Claim("s", "fact", ("x",), kind="structural", check_fn=lambda m: (True, 1.0, ""), units_needed=(("q", 4),))
    # results.json carries the preset, so a re-rendered or aggregated run is judged the same way
    run = RunUnits.from_results({"seed": 3, "preset": "quick", "metrics": {"a": 1.0}})
    assert run.preset == "quick" and run.seed == 3


def test_with_units_needed_sets_the_preset_and_refuses_unknown_ids():
    from reprolab.core.claims import with_units_needed

    claims = (Claim.compare("a", "a > b", "a", ">", "b"), Claim.compare("c", "c > b", "c", ">", "b"))
    out = with_units_needed(claims, "quick", {"a": 12})
    assert out[0].units_needed == (("quick", 12),) and out[1].units_needed == ()
    assert with_units_needed(out, "paper", {"a": 3})[0].units_needed == (("paper", 3), ("quick", 12))
    with pytest.raises(ValueError, match="unknown claim"):
        with_units_needed(claims, "quick", {"typo": 5})


def test_report_marks_underpowered_claims_in_the_table_and_the_totals():
    from reprolab.core.report import _verdict_cell, totals_text

    claim = Claim.compare("a_beats_b", "a > b", "a", ">", "b", units_needed={"quick": 5})
    result = claim.evaluate(_preset_runs("quick", 1.0, 2.0, 3.0)).to_dict()
    assert _verdict_cell(result) == "INCONCLUSIVE (needs n ≥ 5)"
    assert "1 inconclusive (1 of the inconclusive need more units than this preset runs)" in totals_text([result], [])
    decided = claim.evaluate(_preset_runs("paper", 1.0, 2.0, 3.0)).to_dict()
    assert _verdict_cell(decided) == "PASS" and "need more units" not in totals_text([decided], [])
