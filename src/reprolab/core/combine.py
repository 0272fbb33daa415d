"""Runs of one protocol split by model, decided together.

A long protocol that compares models (GraIL vs CoMPILE over five repeats, DiffPool vs DiffPool-NoLP over ten
folds) can be run as one process per model, each on its own core: the same method, preset, seed and settings,
only ``models`` differs. Every model's units are seeded by their own names (``fold3/diffpool``,
``train/grail/2``), so each half holds exactly the numbers a joint run would; :func:`combine_runs` merges the
halves' metrics and units and decides the method's claims on them with the same rule as a single run, instead of
a hand computation. Anything the halves disagree on (a setting, a shared metric such as a control's score, the
value of a unit) is refused with one line naming it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprolab.core.claims import RunUnits, evaluate_claims, verdict_totals
from reprolab.core.config import config_from_dict
from reprolab.core.errors import ReproError
from reprolab.core.io import atomic_write_json, atomic_write_text
from reprolab.core.registry import get_experiment
from reprolab.core.report import render_run_report
from reprolab.core.runner import RESULTS_FILE, paper_numbers, read_results

__all__ = ["SPLIT_KEY", "combine_runs"]

SPLIT_KEY = "models"  # the one setting in which the halves of a split protocol may differ


def combine_runs(run_dirs: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Merge finished runs that differ only in ``models`` into one results folder ``out`` and decide the claims.

    ``out`` must not exist yet; it is written completely or not at all. Returns the combined results.
    """
    if len(run_dirs) < 2:
        raise ReproError("combine needs at least two run folders")
    out = Path(out)
    if out.exists():
        raise ReproError(f"{out}: already exists; combine writes a new folder")
    runs = [(Path(path), read_results(path)) for path in run_dirs]
    first_path, first = runs[0]
    experiment = get_experiment(first["method"])
    _check_same_protocol(runs)
    models = [name for _, results in runs for name in results["config"][SPLIT_KEY]]
    config_dict = {**first["config"], SPLIT_KEY: models}
    config = config_from_dict(experiment.config_cls, config_dict, source=f"{first_path}/{RESULTS_FILE}")
    metrics = _merge_flat([(path, results["metrics"]) for path, results in runs], "metric")
    units = _merge_units(runs)
    verdicts, skipped = evaluate_claims(
        experiment.claims, [RunUnits(int(first["seed"]), metrics, units, str(first["preset"]))]
    )
    claims = [verdict.to_dict() for verdict in verdicts]
    combined = {
        "method": experiment.name,
        "preset": first["preset"],
        "seed": first["seed"],
        "config": config_dict,
        "metrics": metrics,
        "claims": claims,
        "claims_not_evaluated": skipped,
        "totals": verdict_totals(claims, skipped),
        "units": units,
        "runtime_s": round(sum(float(results["runtime_s"]) for _, results in runs), 3),
        "cpu_s": round(sum(float(results.get("cpu_s") or 0.0) for _, results in runs), 3),
        "versions": first.get("versions", {}),
        "device": first.get("device", "cpu"),
        "paper": first.get("paper", {}),
        **paper_numbers(experiment, experiment.paper_metrics_for(config)),
        "tables": [table for _, results in runs for table in results.get("tables", [])],
        "notes": [
            f"Combined from {len(runs)} runs split by `{SPLIT_KEY}` (runtime and CPU time are their sums): "
            + "; ".join(f"{path} ({', '.join(results['config'][SPLIT_KEY])})" for path, results in runs) + ".",
            *dict.fromkeys(note for _, results in runs for note in results.get("notes", [])),
        ],
        "overrides": {**{k: v for k, v in (first.get("overrides") or {}).items() if k != SPLIT_KEY}, SPLIT_KEY: models},
        "combined_from": [
            {"path": str(path.resolve()), SPLIT_KEY: results["config"][SPLIT_KEY],
             "fingerprint": results.get("fingerprint"), "runtime_s": results["runtime_s"],
             "cpu_s": results.get("cpu_s")}
            for path, results in runs
        ],
    }
    _write_folder(out, combined)
    return combined


def _check_same_protocol(runs: Sequence[tuple[Path, Mapping[str, Any]]]) -> None:
    """Same method, preset and seed; configs equal but for disjoint ``models`` lists."""
    first_path, first = runs[0]
    for path, results in runs[1:]:
        for key in ("method", "preset", "seed"):
            if results[key] != first[key]:
                raise ReproError(f"{path}: {key} {results[key]!r} differs from {first_path}'s {first[key]!r}")
    configs = [(path, results.get("config")) for path, results in runs]
    for path, config in configs:
        if not isinstance(config, dict) or not isinstance(config.get(SPLIT_KEY), list):
            raise ReproError(f"{path}/{RESULTS_FILE}: no `{SPLIT_KEY}` list in its config; only runs split by "
                             f"`{SPLIT_KEY}` can be combined")
    reference = {k: v for k, v in configs[0][1].items() if k != SPLIT_KEY}
    seen: dict[str, Path] = {}
    for path, config in configs:
        for key in sorted(set(reference) | set(config) - {SPLIT_KEY}):
            if config.get(key) != reference.get(key):
                raise ReproError(f"{path}: setting {key}={config.get(key)!r} differs from {first_path}'s "
                                 f"{reference.get(key)!r}; only `{SPLIT_KEY}` may differ")
        for name in config[SPLIT_KEY]:
            if name in seen:
                raise ReproError(f"{path}: model {name!r} is also in {seen[name]}; each model in one run only")
            seen[name] = path


def _merge_flat(parts: Sequence[tuple[Path, Mapping[str, Any]]], what: str) -> dict[str, Any]:
    """The union of ``parts``' entries; an entry in several parts must have the same value in each."""
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path, values in parts:
        for key, value in values.items():
            if key in merged and merged[key] != value:
                raise ReproError(f"{path}: {what} {key}={value!r} differs from {origin[key]}'s {merged[key]!r}; "
                                 "the runs are not halves of one protocol")
            merged.setdefault(key, value)
            origin.setdefault(key, path)
    return merged


def _merge_units(runs: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each unit (fold, repeat) with the metrics every run recorded for it."""
    names = list(dict.fromkeys(name for _, results in runs for name in (results.get("units") or {})))
    return {
        name: _merge_flat([(path, (results.get("units") or {}).get(name, {})) for path, results in runs],
                          f"unit {name} metric")
        for name in names
    }


def _write_folder(out: Path, results: dict[str, Any]) -> None:
    """``out`` with results.json and report.md, written in a sibling temporary folder and renamed at the end."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        atomic_write_json(staging / RESULTS_FILE, results)
        atomic_write_text(staging / "report.md", render_run_report(results, out))
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
