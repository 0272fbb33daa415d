"""Claims: a paper's finding stated as code, decided over several units with a confidence rule.

A claim never adjusts itself to the data: its threshold, margin and baseline are fixed when it is declared.

**Verdicts are three-valued.** A claim is decided on a per-unit statistic ``d`` (a unit is one seed, or one
fold of one seed when the run records folds with :meth:`RunContext.record_unit`). For ``Claim.compare``,
``d = metric - reference``; for ``Claim.derived``, ``d = value(metrics) - threshold``. With ``n`` finite
units, mean ``m`` and sample standard deviation ``s``, the one-sided 95 % bounds of the mean are
``m -/+ t(0.95, n - 1) * s / sqrt(n)`` (Student t; :func:`mean_bounds`). For ``op`` ``>`` or ``>=`` the claim

* **passes** when the lower bound satisfies ``op margin`` (the mean difference clears the margin with 95 %
  confidence),
* **fails** when the upper bound does not (it falls short of the margin with 95 % confidence),
* is **inconclusive** otherwise;

``<`` and ``<=`` are mirrored. One unit has unbounded bounds, so an empirical claim decided on one seed is
always inconclusive; units with equal differences (zero variance) are decided on the point. Units whose
statistic is not finite (a diverged run; a metric stored as null) are left out and counted in the detail.

**Kinds.** ``empirical``: a finding of the paper, decided over units as above. ``structural``: a fact of the
architecture or arithmetic (parameter counts, FLOPs, model size) -- deterministic, a check rather than a
reproduction, decided per unit and passing only when every unit passes. ``extension``: a claim of ours, not
the paper's, decided like an empirical one and counted apart.

A claim is **not evaluated** (never passed) when its metrics are absent (a real-data claim without the
dataset), when the run did not complete the paper's protocol (``complete=`` names a metric the run sets to
1 when it did), or when it has fewer units than the protocol needs (``min_units=``).

**Underpowered presets** (``units_needed={"quick": n}``). A rule with a fixed confidence level still gives
different verdicts on two runs of the same design when the true effect lies within about two standard errors
of the margin: each run's bound lands on either side. Such a verdict is a coin that a machine's rounding flips
(issue 18). For a preset whose per-unit noise was measured (``benchmarks/verdict_stability.py --power``, from
two runs of that preset), ``units_needed`` states the units beyond which a rerun repeats the verdict with
probability >= 95 % under that noise; a run of that preset with fewer units is **inconclusive** whatever its
bounds say, and its detail names the units needed and what the rule alone gave. Mean and bounds are still
reported. The number is declared before the run, in the claim, from earlier runs: it never looks at the run
being decided, and it never turns an inconclusive verdict into a decision.

Example::

    Claim.compare("demi_beats_infonce", "DEMI estimate > InfoNCE estimate at true MI 20 nats",
                  "demi_k4_at_20", ">", "infonce_at_20", paper=19.2, paper_source="read")
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scipy import stats as _stats

__all__ = [
    "CLAIM_KINDS",
    "CONFIDENCE_RULE",
    "Claim",
    "ClaimResult",
    "RunUnits",
    "decide",
    "evaluate_claims",
    "mean_bounds",
    "verdict_totals",
    "with_units_needed",
]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

CLAIM_KINDS = ("empirical", "structural", "extension")
PAPER_SOURCES = ("read", "recalled")  # how a claim's paper number was obtained: read in the paper, or recalled
VERDICTS = ("pass", "fail", "inconclusive")
CONFIDENCE = 0.95
CONFIDENCE_RULE = "one-sided 95% Student-t bounds of the mean per-unit difference"

Metrics = Mapping[str, float]


# -- the confidence rule -------------------------------------------------------------------------------
def mean_bounds(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """``(mean, lower, upper)``: the one-sided ``confidence`` Student-t bounds of the mean of ``values``.

    ``lower = mean - t(confidence, n-1) * s / sqrt(n)`` and ``upper`` mirrored; with one value the bounds
    are infinite (nothing is known about the spread), with zero spread they equal the mean.
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, -math.inf, math.inf
    spread = statistics.stdev(values)
    half = float(_stats.t.ppf(confidence, n - 1)) * spread / math.sqrt(n)
    return mean, mean - half, mean + half


def decide(op: str, lower: float, upper: float, margin: float = 0.0) -> str:
    """``pass`` / ``fail`` / ``inconclusive`` for "mean difference ``op`` ``margin``" given its bounds."""
    compare = _OPERATORS[op]
    if any(math.isnan(x) for x in (lower, upper, margin)):
        return "inconclusive"
    confirmed, refuted_bound = (lower, upper) if op in (">", ">=") else (upper, lower)
    if compare(confirmed, margin):
        return "pass"
    if not compare(refuted_bound, margin):
        return "fail"
    return "inconclusive"


# -- units ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunUnits:
    """The metrics of one run: its run-level metrics and the units it recorded inside itself (e.g. folds)."""

    seed: int
    metrics: Mapping[str, float | None]
    units: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    preset: str = ""  # the preset the run resolved (a claim's ``units_needed`` is stated per preset)

    @classmethod
    def from_results(cls, results: Mapping[str, Any]) -> RunUnits:
        """From a ``results.json`` dict."""
        return cls(
            int(results.get("seed", 0)), results.get("metrics", {}), results.get("units") or {},
            str(results.get("preset") or ""),
        )  # fmt: skip


def _value(metrics: Mapping[str, float | None], name: str) -> float:
    value = metrics.get(name)
    return math.nan if value is None else float(value)


# -- verdicts ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, in the ``results.json`` contract."""

    id: str
    description: str
    kind: str
    verdict: str
    ours: float | None
    paper: float | None
    detail: str
    paper_source: str | None = None
    n: int = 0
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    values: tuple[float | None, ...] = ()
    unit_ids: tuple[str, ...] = ()
    ours_low: float | None = None
    ours_high: float | None = None
    units_needed: int | None = None  # set when the preset is underpowered for this claim (verdict inconclusive)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "kind": self.kind,
            "verdict": self.verdict,
            "passed": self.passed,  # kept for readers of the older contract: verdict == "pass"
            "ours": _finite_or_none(self.ours),
            "ours_low": _finite_or_none(self.ours_low),
            "ours_high": _finite_or_none(self.ours_high),
            "paper": self.paper,
            "paper_source": self.paper_source,
            "detail": self.detail,
            "n": self.n,
            "mean": _finite_or_none(self.mean),
            "ci_low": _finite_or_none(self.ci_low),
            "ci_high": _finite_or_none(self.ci_high),
            "rule": CONFIDENCE_RULE if self.kind != "structural" else "every unit passes",
            "values": [_finite_or_none(v) for v in self.values],
            "unit_ids": list(self.unit_ids),
            "units_needed": self.units_needed,
        }


# -- claims -----------------------------------------------------------------------------------------------
StructuralCheck = Callable[[Metrics], tuple[bool, float | None, str]]


@dataclass(frozen=True)
class Claim:
    """A claim decided on the per-unit statistic ``statistic(metrics) op margin`` (see the module docstring).

    Build claims with :meth:`compare`, :meth:`derived` or, for structural facts, :meth:`check`.
    """

    id: str
    description: str
    requires: tuple[str, ...]
    statistic: Callable[[Metrics], float] | None = None
    op: str = ">"
    margin: float = 0.0
    kind: str = "empirical"
    shown: str | None = None  # the metric reported as "ours"
    subject: str = ""  # how the per-unit statistic reads in the detail line, e.g. "ours_acc - baseline_acc"
    check_fn: StructuralCheck | None = None
    paper: float | None = None
    paper_source: str | None = None  # "read" or "recalled" (unverified); None: not stated
    min_units: int = 0
    complete: str | None = None  # a metric the run sets to 1 when the paper protocol ran in full
    # (preset, units) pairs: below that many units a run of the preset is inconclusive (module docstring)
    units_needed: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.paper_source is not None and self.paper_source not in PAPER_SOURCES:
            raise ValueError(f"paper_source must be one of {PAPER_SOURCES} or None, got {self.paper_source!r}")
        if self.paper is not None and self.paper_source is None:
            # a paper number without its provenance cannot be checked by a reader: read from the paper, or recalled
            raise ValueError(f"claim {self.id!r}: paper={self.paper} needs paper_source (one of {PAPER_SOURCES})")
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"kind must be one of {CLAIM_KINDS}, got {self.kind!r}")
        if self.op not in _OPERATORS:
            raise ValueError(f"op must be one of {sorted(_OPERATORS)}, got {self.op!r}")
        if (self.check_fn is None) == (self.statistic is None):
            raise ValueError(f"claim {self.id!r}: give exactly one of statistic (compare/derived) or check")
        if self.check_fn is not None and self.kind != "structural":
            raise ValueError(f"claim {self.id!r}: a check function decides structural claims only")
        if self.units_needed and self.kind == "structural":
            raise ValueError(f"claim {self.id!r}: a structural check is deterministic; units_needed is for empirical")
        if any(int(n) < 2 for _, n in self.units_needed):
            raise ValueError(f"claim {self.id!r}: units_needed must be >= 2 per preset, got {dict(self.units_needed)}")

    # -- constructors ---------------------------------------------------------------------------------
    @classmethod
    def compare(
        cls,
        id: str,
        description: str,
        metric: str,
        op: str,
        reference: str | float,
        *,
        margin: float = 0.0,
        paper: float | None = None,
        paper_source: str | None = None,
        kind: str = "empirical",
        min_units: int = 0,
        complete: str | None = None,
        units_needed: Mapping[str, int] | None = None,
    ) -> Claim:
        """``metric op reference + margin``, decided on ``d = metric - reference`` per unit."""
        requires = (metric,) + ((reference,) if isinstance(reference, str) else ())
        if isinstance(reference, str):

            def statistic(metrics: Metrics) -> float:
                return _value(metrics, metric) - _value(metrics, reference)

            subject = f"{metric} - {reference}"
        else:
            ref_value = float(reference)

            def statistic(metrics: Metrics) -> float:
                return _value(metrics, metric) - ref_value

            subject = f"{metric} - {ref_value:.4g}"
        return cls(
            id, description, requires, statistic=statistic, op=op, margin=float(margin), kind=kind, shown=metric,
            subject=subject, paper=paper, paper_source=paper_source, min_units=min_units, complete=complete,
            units_needed=_pairs(units_needed),
        )  # fmt: skip

    @classmethod
    def derived(
        cls,
        id: str,
        description: str,
        value: Callable[[Metrics], float],
        op: str,
        threshold: float,
        *,
        requires: Sequence[str],
        shown: str | None = None,
        paper: float | None = None,
        paper_source: str | None = None,
        kind: str = "empirical",
        min_units: int = 0,
        complete: str | None = None,
        units_needed: Mapping[str, int] | None = None,
    ) -> Claim:
        """``value(metrics) op threshold`` per unit (a quantity derived from several metrics)."""
        threshold = float(threshold)

        def statistic(metrics: Metrics) -> float:
            return float(value(metrics)) - threshold

        name = getattr(value, "__name__", "value").strip("_<>") or "value"
        return cls(
            id, description, tuple(requires), statistic=statistic, op=op, kind=kind, shown=shown,
            subject=f"{name} - {threshold:.4g}", paper=paper, paper_source=paper_source, min_units=min_units,
            complete=complete, units_needed=_pairs(units_needed),
        )  # fmt: skip

    @classmethod
    def check(
        cls,
        id: str,
        description: str,
        check: StructuralCheck,
        *,
        requires: Sequence[str],
        paper: float | None = None,
        paper_source: str | None = None,
    ) -> Claim:
        """A structural fact: ``check(metrics) -> (passed, ours, detail)``, the same on every unit."""
        return cls(
            id, description, tuple(requires), kind="structural", check_fn=check, paper=paper, paper_source=paper_source
        )

    # -- evaluation -----------------------------------------------------------------------------------
    def units(self, runs: Sequence[RunUnits]) -> list[tuple[str, Mapping[str, float | None]]]:
        """The units this claim is decided on: per run, its recorded units that hold every required
        metric, else the run-level metrics when they do."""
        chosen: list[tuple[str, Mapping[str, float | None]]] = []
        for run in runs:
            inner = [(name, m) for name, m in run.units.items() if all(r in m for r in self.requires)]
            if inner:
                chosen += [(f"seed{run.seed}/{name}", m) for name, m in inner]
            elif all(r in run.metrics for r in self.requires):
                chosen.append((f"seed{run.seed}", run.metrics))
        return chosen

    def not_evaluated_reason(self, runs: Sequence[RunUnits]) -> str | None:
        """Why this claim cannot be decided on ``runs`` (None when it can)."""
        units = self.units(runs)
        if not units:
            missing = sorted({r for r in self.requires for run in runs if r not in run.metrics})
            return f"metrics absent: {', '.join(missing) or ', '.join(self.requires)}"
        if self.complete is not None:
            partial = [run.seed for run in runs if _value(run.metrics, self.complete) != 1]
            if partial:
                seeds = ", ".join(map(str, partial))
                return f"partial protocol ({self.complete} != 1 for seed {seeds}): the paper's protocol did not run"
        if len(units) < self.min_units:
            return f"the protocol needs >= {self.min_units} units, the run has {len(units)}"
        return None

    def evaluate(self, runs: Sequence[RunUnits]) -> ClaimResult:
        """The verdict over every unit of ``runs`` (call :meth:`not_evaluated_reason` first)."""
        units = self.units(runs)
        ids = tuple(name for name, _ in units)
        if self.check_fn is not None:
            return self._evaluate_check(units, ids)
        values = [self.statistic(m) for _, m in units]  # type: ignore[misc]
        if self.kind == "structural":
            return self._evaluate_point(units, ids, values)
        finite = [v for v in values if math.isfinite(v)]
        mean, low, high = mean_bounds(finite)
        verdict = decide(self.op, low, high, self.margin) if finite else "inconclusive"
        detail = self._detail(values, mean, low, high)
        needed = self.needed_for(runs)
        if needed is not None and len(finite) < needed:
            preset = runs[0].preset
            detail += (
                f"; preset {preset} is underpowered for this claim: its measured noise needs n >= {needed} units for"
                f" a verdict that a rerun repeats, so inconclusive (the rule alone gives {verdict})"
            )
            verdict = "inconclusive"
        else:
            needed = None
        ours, ours_low, ours_high = self._ours(units)
        return ClaimResult(
            self.id, self.description, self.kind, verdict, ours, self.paper, detail, self.paper_source,
            len(finite), mean, low, high, tuple(values), ids, ours_low, ours_high, needed,
        )  # fmt: skip

    def needed_for(self, runs: Sequence[RunUnits]) -> int | None:
        """The units this claim needs on ``runs``' preset (None: not stated, or the runs mix presets)."""
        presets = {run.preset for run in runs}
        if len(presets) != 1:
            return None
        return dict(self.units_needed).get(presets.pop())

    def _ours(self, units: Sequence[tuple[str, Mapping[str, float | None]]]) -> tuple[float, float, float]:
        """Mean and two-sided 95 % interval of the shown metric over the units."""
        if self.shown is None:
            return math.nan, math.nan, math.nan
        finite = [v for v in (_value(m, self.shown) for _, m in units) if math.isfinite(v)]
        if not finite:
            return math.nan, math.nan, math.nan
        mean, low, high = mean_bounds(finite, confidence=0.975)  # one-sided 97.5 % each = two-sided 95 %
        return mean, low, high

    def _detail(self, values: Sequence[float], mean: float, low: float, high: float) -> str:
        subject = self.subject or "statistic"
        dropped = sum(not math.isfinite(v) for v in values)
        n = len(values) - dropped
        text = f"mean({subject}) = {_fmt(mean)}, 95% bounds [{_fmt(low)}, {_fmt(high)}] {self.op} {self.margin:.4g}"
        text += f" over n={n} unit{'s' if n != 1 else ''}"
        if n == 1:
            text += " (one unit: inconclusive by rule)"
        if dropped:
            text += f"; {dropped} non-finite unit(s) left out"
        return text

    def _evaluate_point(
        self, units: Sequence[tuple[str, Mapping[str, float | None]]], ids: tuple[str, ...], values: list[float]
    ) -> ClaimResult:
        """A structural comparison: a deterministic fact, so it must hold on every unit (no statistics)."""
        compare = _OPERATORS[self.op]
        holds = [math.isfinite(v) and compare(v, self.margin) for v in values]
        ours, _, _ = self._ours(units)
        detail = f"{self.subject} = {_fmt(values[0])} {self.op} {self.margin:.4g}"
        if len(set(values)) > 1:
            detail += f" (differs between units: {', '.join(_fmt(v) for v in values)})"
        detail += f" on {sum(holds)} of {len(values)} unit(s)"
        return ClaimResult(
            self.id, self.description, self.kind, "pass" if all(holds) else "fail", ours, self.paper, detail,
            self.paper_source, len(values), values=tuple(values), unit_ids=ids,
        )  # fmt: skip

    def _evaluate_check(
        self, units: Sequence[tuple[str, Mapping[str, float | None]]], ids: tuple[str, ...]
    ) -> ClaimResult:
        outcomes = [self.check_fn(m) for _, m in units]  # type: ignore[misc]
        all_pass = all(bool(passed) for passed, _, _ in outcomes)
        ours = outcomes[0][1]
        details = sorted({detail for _, _, detail in outcomes})
        detail = details[0] if len(details) == 1 else "; ".join(f"{i}: {d}" for i, (_, _, d) in zip(ids, outcomes))
        values = tuple(None if o is None else float(o) for _, o, _ in outcomes)
        return ClaimResult(
            self.id, self.description, self.kind, "pass" if all_pass else "fail", ours, self.paper, detail,
            self.paper_source, len(units), values=values, unit_ids=ids,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (``reprolab list --json``)."""
        return {
            "id": self.id,
            "description": self.description,
            "kind": self.kind,
            "paper": self.paper,
            "paper_source": self.paper_source,
            "min_units": self.min_units,
            "complete": self.complete,
            "units_needed": dict(self.units_needed),
        }


def evaluate_claims(
    claims: Sequence[Claim], runs: Sequence[RunUnits] | Mapping[str, float | None]
) -> tuple[list[ClaimResult], list[dict[str, Any]]]:
    """Decide every claim over ``runs`` (or one run's metrics); return (verdicts, not-evaluated with reasons)."""
    if isinstance(runs, Mapping):
        runs = [RunUnits(0, runs)]
    verdicts: list[ClaimResult] = []
    skipped: list[dict[str, Any]] = []
    for claim in claims:
        reason = claim.not_evaluated_reason(runs)
        if reason is None:
            verdicts.append(claim.evaluate(runs))
        else:
            skipped.append({**claim.describe(), "reason": reason})
    return verdicts, skipped


def with_units_needed(claims: Sequence[Claim], preset: str, needed: Mapping[str, int]) -> tuple[Claim, ...]:
    """``claims`` with ``units_needed[preset]`` set from ``needed`` (claim id -> units, from the power table of
    ``benchmarks/verdict_stability.py --power``); an id that names no claim is refused, so a renamed claim cannot
    silently lose its requirement."""
    from dataclasses import replace

    unknown = sorted(set(needed) - {claim.id for claim in claims})
    if unknown:
        raise ValueError(f"units_needed for unknown claim(s): {', '.join(unknown)}")
    out = []
    for claim in claims:
        if claim.id in needed:
            merged = {**dict(claim.units_needed), preset: int(needed[claim.id])}
            claim = replace(claim, units_needed=_pairs(merged))
            claim.__post_init__()  # validate the new requirement like a declared one
        out.append(claim)
    return tuple(out)


def verdict_totals(claims: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts for reports: the paper's empirical claims, structural checks and extensions, each apart."""
    totals: dict[str, dict[str, int]] = {kind: dict.fromkeys(VERDICTS, 0) for kind in CLAIM_KINDS}
    for kind in CLAIM_KINDS:
        totals[kind]["not evaluated"] = 0
    for claim in claims:
        totals[claim.get("kind", "empirical")][claim_verdict(claim)] += 1
    for claim in skipped:
        totals[claim.get("kind", "empirical")]["not evaluated"] += 1
    return totals


def claim_verdict(claim: Mapping[str, Any]) -> str:
    """A claim dict's verdict (results written before verdicts existed hold only ``passed``)."""
    return str(claim.get("verdict") or ("pass" if claim.get("passed") else "fail"))


def _pairs(mapping: Mapping[str, int] | None) -> tuple[tuple[str, int], ...]:
    """A per-preset mapping as sorted pairs (claims are frozen and hashable)."""
    return tuple(sorted((str(k), int(v)) for k, v in (mapping or {}).items()))


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "-inf" if value < 0 else "+inf"
    return f"{value:+.4g}"


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
