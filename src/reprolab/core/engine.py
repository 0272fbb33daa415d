"""Execution engine: what runs a list of independent runs (method x preset x seed x overrides).

``reproduce`` (and later sweeps) build a list of :class:`RunSpec`, hand it to :func:`execute`, then aggregate
the results in spec order. The serial path here imports nothing beyond the runner; distributed execution
plugs in behind the same :func:`execute` signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolab.core.errors import ReproError

__all__ = ["RunOutcome", "RunSpec", "execute"]

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class RunSpec:
    """One independent run: the arguments of :func:`reprolab.core.runner.run_experiment`."""

    method: str
    preset: str
    seed: int
    out: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data: str | Path | None = None
    device: str = "cpu"
    threads: int | None = None
    perturb: float = 0.0

    def should_resume(self) -> bool:
        """Resume when the folder already holds a finished run or a checkpoint (a re-run after a kill)."""
        return (self.out / RESULTS_FILE).exists() or (self.out / "checkpoints" / "last.pt").exists()


@dataclass(frozen=True)
class RunOutcome:
    """The results.json of a finished run, or the one-line error of a failed one."""

    spec: RunSpec
    results: dict[str, Any] | None = None
    error: str | None = None


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Run one spec in this process and return its results.json."""
    from reprolab.core.runner import run_experiment

    return run_experiment(
        spec.method,
        spec.preset,
        spec.overrides,
        seed=spec.seed,
        out=spec.out,
        data=spec.data,
        resume=spec.should_resume(),
        device=spec.device,
        threads=spec.threads,
        perturb=spec.perturb,
    )


def _run_caught(spec: RunSpec) -> RunOutcome:
    try:
        return RunOutcome(spec, results=run_spec(spec))
    except ReproError as err:
        return RunOutcome(spec, error=str(err))
    except Exception as err:  # a crashing method must not hide the other runs' results
        return RunOutcome(spec, error=f"{type(err).__name__}: {err}")


def execute(specs: Sequence[RunSpec], *, log: Callable[[str], None] | None = None) -> list[RunOutcome]:
    """Run every spec (serially, in order) and return their outcomes in spec order."""
    outcomes = []
    for spec in specs:
        if log:
            log(f"{spec.method}: seed {spec.seed} -> {spec.out}")
        outcomes.append(_run_caught(spec))
    return outcomes
