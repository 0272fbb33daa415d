"""Grid sweeps: ``reprolab sweep METHOD --grid key=v1,v2 ... --seeds N``.

The product of the grid's values, times seeds, is a list of independent runs handed to
:func:`reprolab.core.engine.execute` (so it spreads over cores or a Ray cluster like ``reproduce``). Each grid
point is aggregated over its seeds exactly as ``reproduce`` aggregates a method (the same summary entry, the
same claim verdicts), and the report is the reproduce report with one row per grid point, preceded by a table
of the grid.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprolab.core.config import parse_set_options, resolve_config
from reprolab.core.engine import RunSpec, execute
from reprolab.core.errors import ConfigError
from reprolab.core.io import atomic_write_json, atomic_write_text
from reprolab.core.registry import get_experiment
from reprolab.core.report import format_number, markdown_table, render_reproduce_report, totals_cell

__all__ = ["grid_points", "parse_grid", "render_sweep_report", "sweep"]

Axis = tuple[str, list[Any]]


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes, so ``ks=[2,4],[8]`` gives two list values."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_grid(options: Sequence[str]) -> list[Axis]:
    """``["lr=1e-3,1e-2", "ks=[2],[2,4]"]`` -> ``[("lr", [0.001, 0.01]), ("ks", [[2], [2, 4]])]``.

    Values are read with the ``--set`` rules (YAML scalars and lists).
    """
    axes: list[Axis] = []
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid expects key=value1,value2,..., got {option!r}")
        if key in {k for k, _ in axes}:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        texts = [part.strip() for part in _split_top_level(raw)]
        if any(not part for part in texts):
            raise ConfigError(f"--grid {option!r}: empty value")
        axes.append((key, [parse_set_options([f"{key}={part}"])[key] for part in texts]))
    return axes


def grid_points(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest (one point, ``{}``, for no axis)."""
    keys = [key for key, _ in axes]
    return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in axes))]


def point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_text(value)}" for key, value in point.items()) or "defaults"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return format_number(value) if isinstance(value, float) else str(value)


def _folder(index: int, point: Mapping[str, Any]) -> str:
    """``p03-lr=0.01-ks=2_4``: the index keeps folders unique and ordered; the rest makes them readable."""
    text = "-".join(f"{key}={_text(value)}" for key, value in point.items())
    safe = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")[:80]
    return f"p{index:02d}" + (f"-{safe}" if safe else "")


def sweep(
    method: str,
    *,
    preset: str = "quick",
    grid: Sequence[Axis] = (),
    seeds: int | None = None,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    data: str | Path | None = None,
    device: str = "cpu",
    threads: int | None = None,
    jobs: int | None = 1,
    address: str | None = None,
    gpus_per_task: float = 0,
    log: Any = None,
) -> dict[str, Any]:
    """Run ``method`` at every grid point over ``seeds`` seeds; write ``summary.json`` and ``report.md``.

    Every grid point's config is validated before anything runs or is written.
    """
    from reprolab.core.runner import _summarise_method, versions

    experiment = get_experiment(method)
    points = grid_points(grid)
    base = dict(overrides or {})
    for point in points:
        resolve_config(experiment.config_cls, experiment.presets, preset, {**base, **point})
    count = seeds if seeds is not None else experiment.seeds_for(preset)
    if count < 1:
        raise ConfigError(f"--seeds must be >= 1, got {count}")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out) if out is not None else Path("runs") / f"sweep-{method}-{preset}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [
        [
            RunSpec(method, preset, seed, out_dir / _folder(i, point) / f"seed{seed}", {**base, **point}, data,
                    device, threads, label=f"{method} [{point_label(point)}]")
            for seed in range(count)
        ]
        for i, point in enumerate(points)
    ]
    outcomes = execute([s for specs in plan for s in specs], jobs=jobs, address=address,
                       gpus_per_task=gpus_per_task, log=log)
    entries = []
    for i, point in enumerate(points):
        entry = _summarise_method(experiment, outcomes[i * count:(i + 1) * count])
        entries.append({**entry, "method": f"{method} [{point_label(point)}]", "grid": point})
    summary: dict[str, Any] = {
        "kind": "sweep",
        "method": method,
        "preset": preset,
        "seeds": count,
        "grid": {key: values for key, values in grid},
        "overrides": base,
        "out_dir": str(out_dir),
        "methods": entries,
        "versions": versions(),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "report.md", render_sweep_report(summary, out_dir))
    return summary


def render_sweep_report(summary: Mapping[str, Any], out_dir: str | Path) -> str:
    """The grid table (one row per point: its values, claim totals as pass/fail/inconclusive/not evaluated,
    headline metrics as mean ± std over seeds), then the reproduce
    report of the points (its title replaced)."""
    keys = list(summary["grid"])
    entries = summary["methods"]
    headline = _headline(entries)
    rows = []
    for entry in entries:
        values = [_text(entry["grid"][key]) for key in keys]
        if entry.get("error"):
            rows.append([*values, "ERROR", *["—" for _ in headline]])
            continue
        verdicts = totals_cell(entry["claims"], entry.get("claims_not_evaluated", []))
        cells = [_pm(entry["metrics"].get(name)) for name in headline]
        rows.append([*values, verdicts, *cells])
    title = f"# reprolab sweep — `{summary['method']}`, preset `{summary['preset']}`, {summary['seeds']} seed(s)"
    overrides = summary.get("overrides") or {}
    lines = [title, ""]
    if overrides:
        lines += ["Fixed overrides: " + ", ".join(f"`{k}={_text(v)}`" for k, v in overrides.items()), ""]
    lines += [markdown_table([*keys, "empirical p/f/i/ne", *headline], rows), ""]
    body = render_reproduce_report(summary, out_dir).splitlines()
    if body and body[0].startswith("# "):
        body = body[1:]
    return "\n".join(lines + body)


def _headline(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The method's summary metrics and those with a paper number, as present in the points' metrics."""
    for entry in entries:
        if entry.get("metrics"):
            named = [*entry.get("summary_metrics", []), *entry.get("paper_metrics", {})]
            shown = [name for name in dict.fromkeys(named) if name in entry["metrics"]]
            return shown[:6]
    return []


def _pm(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "—"
    if stats.get("n", 1) <= 1:
        return format_number(stats["mean"])
    return f"{format_number(stats['mean'])} ± {format_number(stats['std'], 2)}"
