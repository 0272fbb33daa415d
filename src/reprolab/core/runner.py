"""Running experiments: one run into a run folder, or a reproduction over methods and seeds.

``results.json`` contract (other tools depend on it)::

    method, preset, seed, config, metrics {name: number|null}, claims [{id, description, passed, ours,
    paper, paper_source, detail}], runtime_s, cpu_s, versions {python, torch, reprolab, numpy}
    # also: device, paper {citation,...}, paper_metrics (for the run's config), paper_sources (when stated),
    # claims_not_evaluated, tables, notes, fingerprint
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import platform
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import reprolab
from reprolab.core.checkpoint import config_fingerprint
from reprolab.core.claims import RunUnits, claim_verdict, evaluate_claims, verdict_totals
from reprolab.core.config import check_seed, config_from_dict, config_to_dict, resolve_config
from reprolab.core.data import cache_home, data_home
from reprolab.core.device import resolve_device
from reprolab.core.engine import RunOutcome, RunSpec, execute
from reprolab.core.errors import ConfigError, ReproError, missing_dependency
from reprolab.core.io import atomic_write_json, atomic_write_text, atomic_write_yaml, read_json
from reprolab.core.registry import Experiment, get_experiment, list_experiments
from reprolab.core.report import (
    aggregate_metrics,
    claims_csv,
    metrics_csv,
    render_reproduce_report,
    render_run_report,
)
from reprolab.core.runlock import LOCK_NAME, RunFolderLock, remove_stale_temp_files
from reprolab.core.runs import RunContext
from reprolab.core.seeding import perturbed_parameters, seed_everything

__all__ = ["rebuild_report", "reproduce", "resume_settings", "run_experiment", "versions"]

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "reprolab": reprolab.__version__,
    }


def resolve_threads(threads: int | None = None) -> int:
    """The CPU thread count for a run: the argument, else ``$REPROLAB_THREADS``, else 1."""
    if threads is None:
        raw = os.environ.get("REPROLAB_THREADS", "1")
        try:
            threads = int(raw)
        except ValueError:
            raise ConfigError(f"REPROLAB_THREADS must be a positive integer, got {raw!r}") from None
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    return threads


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Limit torch and the BLAS/OpenMP pools numpy and scikit-learn use to ``count`` threads, then restore them.

    Multi-threaded BLAS on small matrices mostly spins on a shared machine, and the thread count also changes
    reduction order; ``--threads`` therefore governs both libraries.
    """
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)


def default_run_dir(method: str, preset: str, seed: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{method}-{preset}-seed{seed}-{stamp}"


@contextlib.contextmanager
def _perturbed_cache(perturb: float) -> Iterator[None]:
    """Under ``--perturb``, cached artefacts (pretrained embedded models) live in their own cache folder:
    a perturbed pretraining must neither reuse nor overwrite the unperturbed cache entry."""
    if not perturb:
        yield
        return
    previous = os.environ.get("REPROLAB_CACHE")
    os.environ["REPROLAB_CACHE"] = str(cache_home() / f"perturbed-{perturb:g}")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("REPROLAB_CACHE", None)
        else:
            os.environ["REPROLAB_CACHE"] = previous


def _tensorboard_wanted(asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return os.environ.get("REPROLAB_TENSORBOARD", "0").strip().lower() not in {"0", "false", "no", "off", ""}


def _plain_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    return config_to_dict_values(dict(overrides or {}))


def config_to_dict_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides as plain YAML/JSON values (tuples as lists)."""
    return {str(k): list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def resume_settings(
    out_dir: str | Path,
    method: str,
    preset: str | None,
    seed: int | None,
    overrides: Mapping[str, Any],
    perturb: float,
) -> dict[str, Any]:
    """The settings a ``--resume`` continues with: the run's own ``config.yaml``.

    Options given again on the command line must agree with it (refused in one line naming the setting);
    options left out are taken from it, so a run started with ``--set`` resumes without repeating them.
    """
    config_path = Path(out_dir) / CONFIG_FILE
    if not config_path.is_file():  # nothing saved yet (killed before its first write): start as asked
        return {"preset": preset, "seed": seed, "overrides": dict(overrides), "perturb": perturb}
    saved = _read_run_config(config_path)
    if not isinstance(saved.get("config"), dict):
        raise ConfigError(f"{config_path}: not a reprolab run config (expected a mapping with a config section)")
    if saved.get("method") != method:
        raise ConfigError(f"{config_path}: this run folder holds a {saved.get('method')!r} run, not {method!r}")
    for name, given in (("preset", preset), ("seed", seed)):
        if given is not None and given != saved.get(name):
            raise ConfigError(f"{config_path}: --{name} {given} differs from the run's {name} {saved.get(name)}")
    if perturb and perturb != saved.get("perturb", 0.0):
        raise ConfigError(f"{config_path}: --perturb {perturb} differs from the run's {saved.get('perturb', 0.0)}")
    experiment = get_experiment(method)
    saved_config = saved["config"]
    if overrides:
        asked = config_to_dict(resolve_config(experiment.config_cls, experiment.presets, saved["preset"], overrides))
        differing = sorted(k for k in overrides if asked.get(k) != saved_config.get(k))
        if differing:
            key = differing[0]
            raise ConfigError(
                f"{config_path}: --set {key}={overrides[key]} differs from the run's {key}={saved_config.get(key)}"
            )
    return {
        "preset": saved["preset"],
        "seed": int(saved["seed"]),
        # the overrides the run was started with; a config.yaml written before they were recorded gives its whole
        # resolved config instead, which resolves to the same settings and so the same fingerprint
        "overrides": dict(saved["overrides"]) if isinstance(saved.get("overrides"), dict) else dict(saved_config),
        "perturb": float(saved.get("perturb", 0.0)),
    }


def _check_run_dir(out_dir: Path, resume: bool, fingerprint: str, identity: Mapping[str, Any] | None = None) -> None:
    """Refuse to overwrite an existing run unless resuming the same configuration (caller holds the folder lock)."""
    config_path = out_dir / CONFIG_FILE
    if not out_dir.exists() or not any(p.name != LOCK_NAME for p in out_dir.iterdir()):
        return
    if not resume:
        raise ConfigError(
            f"{out_dir}: folder already holds files; use --resume to continue that run or choose a new --out"
        )
    if config_path.exists():
        saved = _read_run_config(config_path)
        if saved.get("fingerprint") != fingerprint:
            differing = _differing_settings(saved, identity or {})
            raise ConfigError(
                f"{config_path}: this run folder was made with other settings "
                f"({differing or 'fingerprint ' + str(saved.get('fingerprint')) + ' != ' + fingerprint}); "
                "--resume needs the same method, preset, overrides and seed"
            )


def _read_run_config(path: Path) -> dict[str, Any]:
    """A run folder's ``config.yaml`` as a mapping, or one line naming the file."""
    try:
        saved = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: unreadable run config ({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: unreadable run config (not UTF-8 text at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: unreadable run config ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise ConfigError(f"{path}: unreadable run config (nested too deeply)") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: unreadable run config (expected a mapping, got {type(saved).__name__})")
    return saved


def _differing_settings(saved: Mapping[str, Any], current: Mapping[str, Any], limit: int = 5) -> str:
    """``seed 1 != 2, config.lr 0.1 != 0.01`` for the settings a resume would change."""
    diffs = [
        f"{key} {saved.get(key)!r} != {current[key]!r}"
        for key in ("method", "preset", "seed", "perturb")
        if key in current and (saved.get(key) or 0 if key == "perturb" else saved.get(key)) != current[key]
    ]
    old_config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    new_config = current.get("config", {})
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            diffs.append(f"config.{key} {old_config.get(key)!r} != {new_config.get(key)!r}")
    shown = ", ".join(diffs[:limit]) + (f" (+{len(diffs) - limit} more)" if len(diffs) > limit else "")
    return shown


def _clean_metrics(metrics: Mapping[str, Any], method: str) -> dict[str, float | None]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"{method}.run must return a dict of metrics, got {type(metrics).__name__}")
    clean: dict[str, float | None] = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{method}: metric {name!r} is {type(value).__name__}, expected a number")
        value = float(value) if not isinstance(value, int) else value
        clean[str(name)] = value if (isinstance(value, int) or math.isfinite(value)) else None
    return clean


def run_experiment(
    method: str,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    data: str | Path | None = None,
    resume: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    perturb: float = 0.0,
    tensorboard: bool | None = None,
) -> dict[str, Any]:
    """Run ``method`` with ``preset`` + ``overrides`` into a run folder and return ``results.json``.

    ``tensorboard`` (default ``$REPROLAB_TENSORBOARD``, else off) also writes every logged scalar and the
    figures as TensorBoard events under ``tensorboard/`` in the run folder.

    ``perturb`` (default 0) multiplies every module's initial parameters by ``1 + perturb * N(0, 1)``
    (:func:`reprolab.core.seeding.perturbed_parameters`): the verdict-stability check's stand-in for another CPU.

    ``threads`` is torch's CPU thread count for the run (default ``$REPROLAB_THREADS`` or 1): the models
    here are small, extra threads mostly spin on a busy 2-core machine, and a fixed count keeps float
    reductions, hence metrics, identical from run to run.
    """
    experiment = get_experiment(method)
    check_seed(seed)
    config = resolve_config(experiment.config_cls, experiment.presets, preset, overrides)
    torch_device = resolve_device(device)
    thread_count = resolve_threads(threads)
    config_dict = config_to_dict(config)
    if not math.isfinite(perturb) or perturb < 0:
        raise ConfigError(f"--perturb must be a finite number >= 0, got {perturb}")
    identity: dict[str, Any] = {"method": method, "config": config_dict, "seed": seed}
    if perturb:
        identity["perturb"] = perturb  # a perturbed run never resumes an unperturbed one
    fingerprint = config_fingerprint(identity)
    out_dir = Path(out) if out is not None else default_run_dir(method, preset, seed)
    settings = {"method": method, "preset": preset, "seed": seed, "perturb": perturb, "config": config_dict}
    lock = RunFolderLock(out_dir).acquire()  # one owner per run folder, for the whole run
    was_empty = not any(p.name != LOCK_NAME for p in out_dir.iterdir())
    try:
        _check_run_dir(out_dir, resume, fingerprint, settings)
        return _run_locked(
            experiment,
            preset,
            seed,
            out_dir,
            config,
            config_dict,
            fingerprint,
            torch_device,
            data,
            resume,
            thread_count,
            perturb,
            overrides,
            tensorboard,
        )
    except BaseException:
        if not (out_dir / RESULTS_FILE).exists() and not (out_dir / "checkpoints" / "last.pt").exists():
            _discard_unfinished(lock, out_dir, was_empty)
        raise
    finally:
        lock.release()


def _discard_unfinished(lock: RunFolderLock, out_dir: Path, was_empty: bool) -> None:
    """A run that failed before anything resumable was written leaves no folder behind (only what it created)."""
    if lock.created:
        lock.discard()
    elif was_empty:
        for child in out_dir.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _run_locked(
    experiment: Experiment,
    preset: str,
    seed: int,
    out_dir: Path,
    config: Any,
    config_dict: dict[str, Any],
    fingerprint: str,
    torch_device: torch.device,
    data: str | Path | None,
    resume: bool,
    thread_count: int,
    perturb: float,
    overrides: Mapping[str, Any] | None,
    tensorboard: bool | None,
) -> dict[str, Any]:
    method = experiment.name
    finished = out_dir / RESULTS_FILE
    if resume and finished.exists():
        return read_json(finished)  # the run had already completed; nothing to redo
    if resume:
        remove_stale_temp_files(out_dir)  # left by a process killed inside an atomic write

    atomic_write_yaml(
        out_dir / CONFIG_FILE,
        {
            "method": method,
            "preset": preset,
            "seed": seed,
            "device": str(torch_device),
            "fingerprint": fingerprint,
            **({"perturb": perturb} if perturb else {}),
            "overrides": _plain_overrides(overrides),
            "config": config_dict,
        },
    )
    seed_everything(seed)
    ctx = RunContext(
        out_dir=out_dir,
        method=method,
        preset=preset,
        seed=seed,
        device=torch_device,
        data_home=data_home(data),
        fingerprint=fingerprint,
        resume=resume,
        tensorboard=_tensorboard_wanted(tensorboard),
    )
    if not resume or not ctx.checkpoint_path.exists():
        ctx.metrics_path.write_text("")  # a resume without a checkpoint starts over: drop the killed run's lines
    with cpu_threads(thread_count), perturbed_parameters(perturb, seed), _perturbed_cache(perturb):
        try:
            metrics = _clean_metrics(experiment.run(config, ctx), method)
        except ImportError as err:  # an optional field library: one line naming the extra, not 85
            friendly = missing_dependency(err, method)
            if friendly is None:
                raise
            raise friendly from err
    ctx.close_tensorboard()
    paper_metrics = experiment.paper_metrics_for(config)
    results = _assemble_results(experiment, preset, seed, config_dict, metrics, ctx, paper_metrics)
    results["overrides"] = _plain_overrides(overrides)
    if perturb:
        results["perturb"] = perturb
    atomic_write_json(finished, results)
    atomic_write_text(out_dir / "report.md", render_run_report(results, out_dir))
    return results


def _assemble_results(
    experiment: Experiment,
    preset: str,
    seed: int,
    config_dict: dict[str, Any],
    metrics: dict[str, float | None],
    ctx: RunContext,
    paper_metrics: Mapping[str, float],
) -> dict[str, Any]:
    verdicts, skipped = evaluate_claims(experiment.claims, [RunUnits(seed, metrics, ctx.units, preset)])
    return {
        "method": experiment.name,
        "preset": preset,
        "seed": seed,
        "config": config_dict,
        "metrics": metrics,
        "claims": [v.to_dict() for v in verdicts],
        "claims_not_evaluated": skipped,
        "totals": verdict_totals([v.to_dict() for v in verdicts], skipped),
        "units": ctx.units,
        "runtime_s": round(ctx.elapsed_s(), 3),
        "cpu_s": round(ctx.cpu_s(), 3),
        "versions": versions(),
        "device": str(ctx.device),
        "fingerprint": ctx.fingerprint,
        "paper": {
            "title": experiment.paper.title,
            "citation": experiment.paper.cite(),
            "url": experiment.paper.url,
        },
        **paper_numbers(experiment, paper_metrics),  # the paper's numbers for this run's config
        "tables": ctx.tables,
        "notes": ctx.notes,
    }


def paper_numbers(experiment: Experiment, paper_metrics: Mapping[str, float]) -> dict[str, Any]:
    """``paper_metrics`` of a run's or a summary's entry, with ``paper_sources`` only where the method states any."""
    sources = experiment.paper_sources_for(paper_metrics)
    return {"paper_metrics": dict(paper_metrics), **({"paper_sources": sources} if sources else {})}


def _config_paper_metrics(experiment: Experiment, config_dict: Mapping[str, Any], source: str) -> dict[str, float]:
    """The paper's numbers for a finished run's config (a config that no longer reads gets none: never another
    setting's numbers)."""
    if not callable(experiment.paper_metrics):
        return dict(experiment.paper_metrics)
    try:
        return experiment.paper_metrics_for(config_from_dict(experiment.config_cls, config_dict, source=source))
    except ConfigError:
        return {}


def rebuild_report(run_dir: str | Path) -> Path:
    """Re-render ``report.md`` of a finished run from its ``results.json`` (claims re-evaluated)."""
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    results_path = run_dir / RESULTS_FILE
    try:
        experiment = get_experiment(results["method"])
    except ConfigError:
        experiment = None
    if experiment is not None:
        verdicts, skipped = evaluate_claims(experiment.claims, [RunUnits.from_results(results)])
        results["claims"] = [v.to_dict() for v in verdicts]
        results["claims_not_evaluated"] = skipped
        results["totals"] = verdict_totals(results["claims"], skipped)
        # keep the config readable as the method's dataclass (validates an edited config.yaml)
        config = config_from_dict(experiment.config_cls, results.get("config", {}), source=str(results_path))
        results.pop("paper_sources", None)
        results.update(paper_numbers(experiment, experiment.paper_metrics_for(config)))
    results.setdefault("versions", {})
    report_path = run_dir / "report.md"
    atomic_write_text(report_path, render_run_report(results, run_dir))
    return report_path


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's ``results.json``, checked for the fields and types ``report`` reads (one-line errors)."""
    run_dir = Path(run_dir)
    results_path = run_dir / RESULTS_FILE
    if not results_path.is_file():
        raise ReproError(f"{run_dir}: no {RESULTS_FILE} here; is this a finished run folder?")
    try:
        results = read_json(results_path)
    except ReproError:
        raise
    except ValueError as err:
        raise ReproError(f"{results_path}: not valid JSON ({err})") from err
    if not isinstance(results, dict):
        raise ReproError(f"{results_path}: expected a JSON object, got {type(results).__name__}")
    missing = [key for key in ("method", "preset", "seed", "metrics", "claims", "runtime_s") if key not in results]
    if missing:
        raise ReproError(f"{results_path}: missing field(s) {', '.join(missing)}")
    _check_results_types(results, results_path)
    return results


def _check_results_types(results: Mapping[str, Any], path: Path) -> None:
    """The fields ``report`` reads have the contract's types (a hand-edited results.json is one line)."""
    expected = {"method": str, "preset": str, "seed": int, "metrics": dict, "claims": list, "runtime_s": (int, float)}
    for key, kind in expected.items():
        if not isinstance(results[key], kind) or isinstance(results[key], bool):
            raise ReproError(f"{path}: field {key!r} has the wrong type ({type(results[key]).__name__})")


def reproduce(
    methods: Sequence[str] | None = None,
    *,
    preset: str = "quick",
    seeds: int | None = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    device: str = "cpu",
    overrides: Mapping[str, Any] | None = None,
    log: Any = None,
    threads: int | None = None,
    perturb: float = 0.0,
    jobs: int | None = 1,
    address: str | None = None,
    gpus_per_task: float = 0,
) -> dict[str, Any]:
    """Run every requested method over its seeds and write an aggregated ``report.md``/``summary.json``.

    ``seeds`` (seeds 0..N-1) defaults to the number the method states for ``preset`` (``Experiment.seeds``).
    A method that raises is reported with its error and the others still run. ``jobs``/``address``/
    ``gpus_per_task`` choose where the runs execute (:func:`reprolab.core.engine.execute`; default serial here,
    the CLI defaults to every core).
    """
    selected = _select_methods(methods)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out) if out is not None else Path("runs") / f"reproduce-{preset}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        experiment.name: [
            RunSpec(experiment.name, preset, seed, out_dir / experiment.name / f"seed{seed}", dict(overrides or {}),
                    data, device, threads, perturb)
            for seed in range(seeds if seeds is not None else experiment.seeds_for(preset))
        ]
        for experiment in selected
    }
    outcomes = execute(
        [spec for specs in plan.values() for spec in specs],
        jobs=jobs,
        address=address,
        gpus_per_task=gpus_per_task,
        log=log,
    )
    summary: dict[str, Any] = {
        "preset": preset,
        "seeds": seeds,
        "overrides": _plain_overrides(overrides),
        "out_dir": str(out_dir),
        "methods": [],
    }
    if perturb:
        summary["perturb"] = perturb
    for experiment in selected:
        mine = [o for o in outcomes if o.spec.method == experiment.name]
        summary["methods"].append(_summarise_method(experiment, mine))
    summary["versions"] = versions()
    _write_summary(summary, out_dir)
    return summary


def _write_summary(summary: Mapping[str, Any], out_dir: Path) -> None:
    """summary.json, claims.csv, metrics.csv and report.md of a reproduce folder."""
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "claims.csv", claims_csv(summary))
    atomic_write_text(out_dir / "metrics.csv", metrics_csv(summary))
    atomic_write_text(out_dir / "report.md", render_reproduce_report(summary, out_dir))


def rebuild_reproduce_report(out_dir: str | Path) -> Path:
    """Re-render a reproduce folder's report.md and CSV files from its summary.json."""
    out_dir = Path(out_dir)
    try:
        summary = read_json(out_dir / "summary.json")
    except ValueError as err:
        raise ReproError(f"{out_dir / 'summary.json'}: not valid JSON ({err})") from err
    if not isinstance(summary, dict) or not isinstance(summary.get("methods"), list):
        raise ReproError(f"{out_dir / 'summary.json'}: not a reprolab reproduce summary (no methods list)")
    _write_summary(summary, out_dir)
    return out_dir / "report.md"


def _select_methods(methods: Sequence[str] | None) -> list[Experiment]:
    if not methods or list(methods) == ["all"]:
        return list_experiments()
    return [get_experiment(name) for name in methods]


def _summarise_method(experiment: Experiment, outcomes: Sequence[RunOutcome]) -> dict[str, Any]:
    """One method's entry of summary.json: metrics over seeds and every claim decided over all units."""
    entry: dict[str, Any] = {"method": experiment.name, "citation": experiment.paper.cite()}
    errors = [f"seed {o.spec.seed}: {o.error}" for o in outcomes if o.error is not None]
    if errors:
        entry["error"] = "; ".join(errors)
        return entry
    per_seed = [o.results for o in outcomes if o.results is not None]
    run_dirs = [str(o.spec.out) for o in outcomes]
    stats = aggregate_metrics([r["metrics"] for r in per_seed])
    verdicts, skipped = evaluate_claims(experiment.claims, [RunUnits.from_results(r) for r in per_seed])
    claims = [v.to_dict() for v in verdicts]
    figures = sorted(str(p) for p in (Path(run_dirs[0]) / "figures").glob("*.png"))
    entry.update(
        {
            "metrics": stats,
            **paper_numbers(
                experiment, _config_paper_metrics(experiment, per_seed[0].get("config", {}), run_dirs[0])
            ),
            "claims": claims,
            "claims_not_evaluated": skipped,
            "totals": verdict_totals(claims, skipped),
            "seeds": [r["seed"] for r in per_seed],
            "runtime_s": sum(r["runtime_s"] for r in per_seed),
            # None when a reused run predates cpu_s (its CPU time is unknown, not zero)
            "cpu_s": None if any(r.get("cpu_s") is None for r in per_seed) else sum(r["cpu_s"] for r in per_seed),
            "run_dirs": run_dirs,
            "figures": figures,
            "summary_metrics": list(experiment.summary_metrics),
        }
    )
    return entry


def print_summary(summary: Mapping[str, Any], stream: Any = None) -> None:
    """A plain-text summary table for the terminal: per method, the paper's empirical claims as
    pass/fail/inconclusive/not evaluated, then structural checks, and the claims that did not pass."""
    from reprolab.core.report import totals_cell

    stream = sys.stdout if stream is None else stream  # looked up at call time (tests swap sys.stdout)
    rows = []
    for method in summary["methods"]:
        if method.get("error"):
            rows.append((method["method"], "ERROR", "", method["error"][:70]))
            continue
        claims = method["claims"]
        open_claims = [f"{c['id']} ({claim_verdict(c)})" for c in claims if claim_verdict(c) != "pass"]
        shown = ", ".join(open_claims[:3]) + (f" (+{len(open_claims) - 3} more)" if len(open_claims) > 3 else "")
        cpu = method.get("cpu_s")
        timing = f"{method['runtime_s']:.0f}s / " + ("?" if cpu is None else f"{cpu:.0f}s")
        totals = totals_cell(claims, method.get("claims_not_evaluated", []))
        rows.append((method["method"], totals, timing, shown or "-"))
    header = ("method", "empirical p/f/i/ne", "wall / CPU", "claims not passing")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:  # the last column is not padded: a long list must not widen every line
        print("  ".join([*(str(cell).ljust(w) for cell, w in zip(row, widths)), str(row[3])]), file=stream)
