"""Shared helpers of the benchmarks: how a cost grows with size, worker processes, machine facts.

Every ``benchmarks/*.py`` reports how its main cost grows (issue 24): the time at three sizes along the axis that
drives the method's cost and the exponent ``k`` of ``time ~ size^k`` fitted by least squares in log-log
(:func:`fitted_exponent`). :func:`growth_record` is the JSON object each benchmark prints with ``--json``
(``"measure": "growth"``) and :func:`growth_text` its text line, so ``benchmarks/all.py`` reads them all alike.

Benchmarks that measure peak memory run each mode in a fresh process (:func:`run_worker`); ``benchmarks/all.py
--quick`` sets :data:`IN_PROCESS` so that the same workers run inside one process (seconds instead of one
interpreter start per worker; the memory figures are then meaningless, the quick mode only checks that the
scripts run).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# set by ``benchmarks/all.py --quick``: workers run in this process instead of a fresh interpreter each
IN_PROCESS = False


def fitted_exponent(sizes: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope of log(time) on log(size): ``time ~ size^exponent`` (times floored at 1 ns)."""
    if len(sizes) != len(times) or len(sizes) < 2 or len(set(sizes)) < 2:
        raise ValueError(f"need at least two distinct sizes with one time each, got {sizes} / {times}")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def growth_record(
    what: str, axis: str, sizes: Sequence[float], times: Sequence[float], *, clock: str = "wall", **extra: Any
) -> dict[str, Any]:
    """The JSON object of one growth measurement: ``what`` was timed at ``sizes`` along ``axis``.

    ``clock`` says which time ("wall" or "cpu" of the process); ``extra`` carries anything else worth keeping
    (threads, the expected exponent and why).
    """
    return {
        "measure": "growth",
        "what": what,
        "axis": axis,
        "sizes": list(sizes),
        "times_s": [round(float(t), 6) for t in times],
        "clock": clock,
        "exponent": round(fitted_exponent(sizes, times), 3),
        **extra,
    }


def growth_text(record: dict[str, Any]) -> str:
    """One line for the text output: the times at each size and the fitted exponent."""
    steps = ", ".join(f"{_size(s)}: {_seconds(t)}" for s, t in zip(record["sizes"], record["times_s"]))
    expected = f" (expected ~{record['expected_exponent']})" if "expected_exponent" in record else ""
    return (f"growth of {record['what']} in {record['axis']} ({record['clock']} time): {steps}; "
            f"time ~ {record['axis']}^{record['exponent']:.2f}{expected}")


def _size(size: float) -> str:
    return f"{size:,}" if isinstance(size, int) else f"{size:g}"


def _seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def emit(record: dict[str, Any], as_json: bool) -> None:
    """Print ``record`` as one JSON line or, for growth records, as its text line."""
    if as_json:
        print(json.dumps(record), flush=True)
    elif record.get("measure") == "growth":
        print(growth_text(record), flush=True)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of ``text`` (a benchmark's ``--json`` output)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def load_script(path: str | Path) -> ModuleType:
    """Import a benchmark script by its path (benchmarks/ is not a package)."""
    path = Path(path).resolve()
    name = f"_bench_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def call_main(path: str | Path, argv: list[str]) -> str:
    """Run a benchmark's ``main(argv)`` in this process and return what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        load_script(path).main(argv)
    return buffer.getvalue()


def run_worker(path: str | Path, argv: list[str]) -> list[dict[str, Any]]:
    """Run ``path`` with ``argv`` in a fresh interpreter (its own peak memory) and return its JSON lines;
    in this process instead when :data:`IN_PROCESS` is set."""
    if IN_PROCESS:
        return json_lines(call_main(path, argv))
    done = subprocess.run([sys.executable, str(path), *argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{Path(path).name} {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json_lines(done.stdout)


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, threads, load, library versions, date and git commit: what a number depends on."""
    import torch

    model, cores, socket, family = platform.processor() or platform.machine(), set(), "", {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key in ("cpu family", "model"):
                family[key] = value
            elif key == "physical id":
                socket = value
            elif key == "core id":  # logical CPUs sharing (socket, core) are hyper-threads of one core
                cores.add((socket, value))
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu_model": model,
        "cpu_family_model": "/".join(family.get(k, "?") for k in ("cpu family", "model")),
        "physical_cores": len(cores) or None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_5m_15m": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": commit,
    }


def best_time(fn: Any, repeats: int, clock: Any = time.perf_counter) -> float:
    """The shortest of ``repeats`` timings of ``fn()`` (the least disturbed by other work)."""
    best = math.inf
    for _ in range(max(1, repeats)):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best
