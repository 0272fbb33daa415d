"""Claim checks: a paper's claim stated as code, evaluated on a run's metrics, reported as pass/fail.

A claim never adjusts itself to the data: its threshold, margin and baseline are fixed when it is
declared. A claim whose metrics are absent (for example a real-data claim when the dataset is not on
disk) is reported as *not evaluated*, never as passed.

Example::

    Claim.compare("demi_beats_infonce", "DEMI estimate > InfoNCE estimate at true MI 20 nats",
                  "demi_k4_at_20", ">", "infonce_at_20")
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Claim", "ClaimResult", "evaluate_claims"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

Metrics = Mapping[str, float]


@dataclass(frozen=True)
class ClaimResult:
    """The verdict on one claim, in the ``results.json`` contract."""

    id: str
    description: str
    passed: bool
    ours: float | None
    paper: float | None
    detail: str
    paper_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "passed": bool(self.passed),
            "ours": _finite_or_none(self.ours),
            "paper": self.paper,
            "paper_source": self.paper_source,
            "detail": self.detail,
        }


PAPER_SOURCES = ("read", "recalled")  # how a claim's paper number was obtained: read in the paper, or recalled


@dataclass(frozen=True)
class Claim:
    """A claim: ``check(metrics) -> (passed, ours, detail)``, applicable when ``requires`` are present."""

    id: str
    description: str
    check: Callable[[Metrics], tuple[bool, float | None, str]]
    paper: float | None = None
    requires: tuple[str, ...] = field(default_factory=tuple)
    paper_source: str | None = None  # "read" or "recalled" (unverified); None: not stated

    def __post_init__(self) -> None:
        if self.paper_source is not None and self.paper_source not in PAPER_SOURCES:
            raise ValueError(f"paper_source must be one of {PAPER_SOURCES} or None, got {self.paper_source!r}")

    def evaluate(self, metrics: Metrics) -> ClaimResult | None:
        """The verdict, or ``None`` when a required metric is absent (claim not applicable to this run)."""
        if any(name not in metrics for name in self.requires):
            return None
        passed, ours, detail = self.check(metrics)
        return ClaimResult(self.id, self.description, bool(passed), ours, self.paper, detail, self.paper_source)

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
    ) -> Claim:
        """``metrics[metric] op reference + margin``, where ``reference`` is a number or a metric name."""
        if op not in _OPERATORS:
            raise ValueError(f"op must be one of {sorted(_OPERATORS)}, got {op!r}")
        compare = _OPERATORS[op]
        requires = (metric,) + ((reference,) if isinstance(reference, str) else ())

        def check(metrics: Metrics) -> tuple[bool, float | None, str]:
            ours = float(metrics[metric])
            ref_value = float(metrics[reference]) if isinstance(reference, str) else float(reference)
            target = ref_value + margin
            ref_text = f"{reference}={ref_value:.4g}" if isinstance(reference, str) else f"{ref_value:.4g}"
            if margin:
                ref_text += f" {'+' if margin > 0 else '-'} {abs(margin):.4g}"
            passed = math.isfinite(ours) and math.isfinite(target) and compare(ours, target)
            return passed, ours, f"{metric}={ours:.4g} {op} {ref_text}"

        return cls(id, description, check, paper, requires, paper_source)

    @classmethod
    def custom(
        cls,
        id: str,
        description: str,
        check: Callable[[Metrics], tuple[bool, float | None, str]],
        *,
        requires: tuple[str, ...] = (),
        paper: float | None = None,
        paper_source: str | None = None,
    ) -> Claim:
        """A claim with its own check function (kept small and stated in the description)."""
        return cls(id, description, check, paper, tuple(requires), paper_source)


def evaluate_claims(
    claims: list[Claim] | tuple[Claim, ...], metrics: Metrics
) -> tuple[list[ClaimResult], list[dict[str, str]]]:
    """Evaluate every claim; return (verdicts, not-evaluated claims with the reason)."""
    verdicts: list[ClaimResult] = []
    skipped: list[dict[str, str]] = []
    for claim in claims:
        verdict = claim.evaluate(metrics)
        if verdict is None:
            missing = [name for name in claim.requires if name not in metrics]
            skipped.append(
                {"id": claim.id, "description": claim.description, "reason": f"metrics absent: {', '.join(missing)}"}
            )
        else:
            verdicts.append(verdict)
    return verdicts, skipped


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
