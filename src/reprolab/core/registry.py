"""The experiment registry: every method registers one :class:`Experiment` from its ``experiment.py``.

Discovery needs no change to ``core/``: every subpackage ``reprolab.<method>`` that has an
``experiment`` module is imported by :func:`discover`, and that module calls :func:`register`. An
``experiment.py`` must stay light to import (metadata, config dataclass, claims); the heavy model code
and field libraries are imported inside its ``run`` function.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reprolab.core.claims import PAPER_SOURCES, Claim
from reprolab.core.config import config_to_dict
from reprolab.core.data import DatasetInfo, register_dataset
from reprolab.core.errors import ConfigError

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["Experiment", "Paper", "discover", "get_experiment", "list_experiments", "register"]


@dataclass(frozen=True)
class Paper:
    """Citation of the paper a method implements."""

    title: str
    authors: str
    venue: str
    year: int
    url: str = ""

    def cite(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}. {self.venue}." + (f" {self.url}" if self.url else "")


@dataclass(frozen=True)
class Experiment:
    """One registered experiment: a paper, a config with presets, claims, datasets, and ``run``.

    ``run(config, ctx)`` trains/evaluates and returns a flat ``{metric: number}`` dict; the core writes
    ``results.json``, evaluates ``claims`` on those metrics and renders the report. ``paper_metrics``
    maps metric names to the paper's own numbers for the side-by-side table, or is a function of the run's
    resolved config returning that mapping (when the paper's numbers hold for one setting only, e.g. one
    sequence length: a run of another setting then shows only the numbers the paper gives for it);
    ``paper_sources`` optionally says, per metric name, whether its paper number was ``"read"`` or
    ``"recalled"`` (shown beside it). ``summary_metrics`` lists the metrics shown in the ``reproduce`` summary
    (all metrics when empty).
    """

    name: str
    paper: Paper
    description: str
    config_cls: type
    presets: Mapping[str, Mapping[str, Any]]
    run: Callable[[Any, RunContext], Mapping[str, float]]
    claims: tuple[Claim, ...] = ()
    datasets: tuple[DatasetInfo, ...] = ()
    paper_metrics: Mapping[str, float] | Callable[[Any], Mapping[str, float]] = field(default_factory=dict)
    paper_sources: Mapping[str, str] = field(default_factory=dict)
    summary_metrics: tuple[str, ...] = ()
    seeds: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for required in ("quick", "paper"):
            if required not in self.presets:
                raise ValueError(f"experiment {self.name!r} must define a {required!r} preset")
        for preset, count in self.seeds.items():
            if preset not in self.presets or int(count) < 1:
                raise ValueError(f"experiment {self.name!r}: seeds[{preset!r}] must name a preset and be >= 1")
        for info in self.datasets:
            unknown = [name for name in info.presets if name not in self.presets]
            if unknown:
                raise ValueError(f"experiment {self.name!r}: dataset {info.name!r} names unknown presets {unknown}")
        for metric, source in self.paper_sources.items():
            if source not in PAPER_SOURCES:
                raise ValueError(f"experiment {self.name!r}: paper_sources[{metric!r}] must be one of {PAPER_SOURCES}")

    def seeds_for(self, preset: str) -> int:
        """How many seeds (units) ``reprolab reproduce`` runs for ``preset``: what the method states, else 1."""
        return int(self.seeds.get(preset, 1))

    def paper_metrics_for(self, config: Any) -> dict[str, float]:
        """The paper's numbers for a run of ``config`` (the method's resolved config dataclass)."""
        metrics = self.paper_metrics(config) if callable(self.paper_metrics) else self.paper_metrics
        return dict(metrics)

    def paper_sources_for(self, paper_metrics: Mapping[str, float]) -> dict[str, str]:
        """The stated source of each of ``paper_metrics`` (those without one are left out)."""
        return {name: self.paper_sources[name] for name in paper_metrics if name in self.paper_sources}

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description, used by ``reprolab list --json``."""
        return {
            "name": self.name,
            "description": self.description,
            "paper": {
                "title": self.paper.title,
                "authors": self.paper.authors,
                "venue": self.paper.venue,
                "year": self.paper.year,
                "url": self.paper.url,
            },
            "presets": {name: dict(values) for name, values in self.presets.items()},
            "seeds": {name: self.seeds_for(name) for name in self.presets},
            "defaults": config_to_dict(self.config_cls()),
            "claims": [claim.describe() for claim in self.claims],
            "datasets": [info.to_dict() for info in self.datasets],
        }


_REGISTRY: dict[str, Experiment] = {}
_DISCOVERED = False


def register(experiment: Experiment) -> Experiment:
    """Register ``experiment`` under its name (called at import time of a method's ``experiment.py``)."""
    existing = _REGISTRY.get(experiment.name)
    if existing is not None and existing.run.__module__ != experiment.run.__module__:
        raise ValueError(f"experiment name {experiment.name!r} is already registered by {existing.run.__module__}")
    _REGISTRY[experiment.name] = experiment
    for info in experiment.datasets:
        register_dataset(info)
    return experiment


def discover() -> None:
    """Import ``reprolab.<pkg>.experiment`` for every subpackage that has one (once)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import reprolab

    for module in pkgutil.iter_modules(reprolab.__path__):
        if not module.ispkg or module.name in {"core"}:
            continue
        spec_name = f"reprolab.{module.name}.experiment"
        if importlib.util.find_spec(spec_name) is not None:
            importlib.import_module(spec_name)
    _DISCOVERED = True


def get_experiment(name: str) -> Experiment:
    discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return _REGISTRY[name]


def list_experiments() -> list[Experiment]:
    discover()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
