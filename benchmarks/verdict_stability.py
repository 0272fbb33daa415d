"""Verdict stability: do the quick verdicts survive float noise of the size that differs between two CPUs?

Runs ``reprolab reproduce`` twice on the same methods -- once as is (``--threads 1``), once with every initial
weight multiplied by ``1 + eps * N(0, 1)`` (``--perturb eps``, default 1e-6; cached pretrained artefacts are
rebuilt under the perturbation in their own cache folder) -- and compares every claim's verdict. A verdict that
moves is decided by float noise, not by the method: that claim needs more units, a larger miniature, or to be
inconclusive. Exits 1 when any verdict moves.

    python benchmarks/verdict_stability.py --out runs/stability [--methods demi lds] [--jobs 2] [--eps 1e-6]

Writes ``OUT/stability.json`` and ``OUT/stability.md`` (one row per claim: verdict in each run, mean difference
and bounds in each run). Both reproduce folders are kept (``OUT/base`` and ``OUT/perturbed``) and resumable:
re-running the command continues them.

``--power`` (with ``--compare-only``) adds the power calculation behind each claim's ``units_needed``: the
per-unit values of both runs are pooled (two replications of one design; a run the perturbation did not change
counts once) into a mean difference mu and a spread sigma, taken as the truth. With n units the run's mean is
~ N(mu, sigma^2 / n) and the rule passes when it clears margin + t(0.95, n-1) sigma / sqrt(n), fails when it is
below margin - t sigma / sqrt(n); P(flip) = 1 - (P(pass)^2 + P(fail)^2 + P(inconclusive)^2) is the chance that
two independent runs of n units disagree. ``n_stable`` is the smallest n from which P(flip) <= 5 % at every
larger n up to 400; a claim whose P(flip) at the preset's units exceeds 5 % gets ``units_needed`` = n_stable
(or > 400: the effect is too close to the margin for any affordable n). Writes ``OUT/power.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _command(out: Path, methods: list[str], extra: list[str], jobs: int | None) -> list[str]:
    command = [sys.executable, "-m", "reprolab.cli", "reproduce", *methods, "--out", str(out), "--threads", "1", *extra]
    return command + (["--jobs", str(jobs)] if jobs is not None else [])


def _reproduce(out: Path, methods: list[str], extra: list[str], jobs: int | None) -> float:
    start = time.perf_counter()
    subprocess.run(_command(out, methods, extra, jobs), check=False)
    return time.perf_counter() - start


def _reproduce_side_by_side(args: argparse.Namespace, extra: list[str]) -> dict[str, float]:
    """Both reproductions at once, one process each (``--jobs 1``): on 2 cores they finish method by method
    together, so an interrupted measurement still compares the methods both reached."""
    perturbed = [*extra, "--perturb", str(args.eps)]
    start = time.perf_counter()
    processes = {
        "base": subprocess.Popen(_command(args.out / "base", args.methods, extra, 1)),
        "perturbed": subprocess.Popen(_command(args.out / "perturbed", args.methods, perturbed, 1)),
    }
    walls = {}
    for name, process in processes.items():
        process.wait()
        walls[name] = time.perf_counter() - start
    return walls


def _claims(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    table = {}
    for method in summary["methods"]:
        for claim in method.get("claims", []):
            table[(method["method"], claim["id"])] = claim
        for claim in method.get("claims_not_evaluated", []):
            table[(method["method"], claim["id"])] = {**claim, "verdict": "not evaluated"}
        if method.get("error"):
            table[(method["method"], "<run>")] = {"verdict": "error", "detail": method["error"]}
    return table


def _summary(root: Path, preset: str) -> dict[str, Any]:
    """The reproduce summary, or -- for an interrupted reproduction -- one built from the methods whose every
    stated seed finished (decided exactly as reproduce decides them)."""
    if (root / "summary.json").is_file():
        return json.loads((root / "summary.json").read_text())
    from reprolab.core.engine import RunOutcome, RunSpec
    from reprolab.core.registry import get_experiment
    from reprolab.core.runner import _summarise_method

    methods = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        experiment = get_experiment(folder.name)
        finished = sorted(folder.glob("seed*/results.json"))
        if len(finished) < experiment.seeds_for(preset):
            continue
        outcomes = [
            RunOutcome(RunSpec(experiment.name, preset, int(p.parent.name[4:]), p.parent), json.loads(p.read_text()))
            for p in finished
        ]
        methods.append(_summarise_method(experiment, outcomes))
    return {"methods": methods}


def compare(base: dict[str, Any], perturbed: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per claim: both verdicts, both mean differences and bounds, and whether the verdict moved."""
    left, right = _claims(base), _claims(perturbed)
    rows = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key, {"verdict": "absent"}), right.get(key, {"verdict": "absent"})
        rows.append(
            {
                "method": key[0],
                "claim": key[1],
                "kind": a.get("kind", b.get("kind")),
                "base": a["verdict"],
                "perturbed": b["verdict"],
                "moved": a["verdict"] != b["verdict"],
                "base_mean": a.get("mean"),
                "base_bounds": [a.get("ci_low"), a.get("ci_high")],
                "perturbed_mean": b.get("mean"),
                "perturbed_bounds": [b.get("ci_low"), b.get("ci_high")],
            }
        )
    return rows


FLIP_LIMIT = 0.05  # the chance of two runs disagreeing that a decided verdict may carry
MAX_UNITS = 400


def flip_probability(mu: float, sigma: float, n: int, op: str = ">", margin: float = 0.0) -> float:
    """P(two independent runs of ``n`` units give different verdicts) when the per-unit statistic is
    ~ N(mu, sigma^2) (normal approximation of the mean; Student t critical value of the rule)."""
    import math

    from scipy import stats

    if n < 2:
        return 0.0  # one unit is inconclusive by rule, on every run
    effect = (mu - margin) if op in (">", ">=") else (margin - mu)
    if sigma <= 0:
        return 0.0
    t = float(stats.t.ppf(0.95, n - 1))
    z = effect * math.sqrt(n) / sigma
    p_pass = float(stats.norm.sf(t - z))
    p_fail = float(stats.norm.cdf(-t - z))
    p_unsure = max(0.0, 1.0 - p_pass - p_fail)
    return 1.0 - (p_pass**2 + p_fail**2 + p_unsure**2)


def stable_units(mu: float, sigma: float, op: str = ">", margin: float = 0.0) -> int | None:
    """The smallest n from which every larger n (to MAX_UNITS) keeps P(flip) <= FLIP_LIMIT; None if none."""
    flips = [flip_probability(mu, sigma, n, op, margin) for n in range(2, MAX_UNITS + 1)]
    if flips[-1] > FLIP_LIMIT:
        return None
    n = MAX_UNITS
    while n > 2 and flips[n - 3] <= FLIP_LIMIT:
        n -= 1
    return n


def power(base: dict[str, Any], perturbed: dict[str, Any]) -> list[dict[str, Any]]:
    """Per decided empirical/extension claim: pooled mu and sigma, P(flip) at the run's n, n_stable."""
    import statistics

    from reprolab.core.registry import get_experiment

    left, right = _claims(base), _claims(perturbed)
    rows = []
    for (method, claim_id), a in sorted(left.items()):
        b = right.get((method, claim_id), {})
        if a.get("kind") not in ("empirical", "extension") or not a.get("values"):
            continue
        declared = {c.id: c for c in get_experiment(method).claims}.get(claim_id)
        if declared is None:
            continue
        first = [v for v in a["values"] if v is not None]
        second = [v for v in b.get("values") or [] if v is not None]
        pooled = first if second == first else first + second
        if len(pooled) < 3:
            continue
        mu, sigma = statistics.fmean(pooled), statistics.stdev(pooled)
        n = len(first)
        flip = flip_probability(mu, sigma, n, declared.op, declared.margin)
        rows.append(
            {
                "method": method, "claim": claim_id, "n": n, "pooled": len(pooled), "mu": mu, "sigma": sigma,
                "flip_at_n": flip, "n_stable": stable_units(mu, sigma, declared.op, declared.margin),
                "units_needed": dict(declared.units_needed),
            }
        )  # fmt: skip
    return rows


def render_power(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Power of the quick verdicts: P(two runs disagree) from the pooled per-unit noise",
        "",
        f"Expected number of verdicts that differ between two runs: {sum(r['flip_at_n'] for r in rows):.2f} "
        f"over {len(rows)} claims (before units_needed).",
        "",
        "| method | claim | n | pooled values | mu | sigma | P(flip) at n | n_stable | units_needed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stable = "> 400" if r["n_stable"] is None else str(r["n_stable"])
        flag = " **fragile**" if r["flip_at_n"] > FLIP_LIMIT else ""
        lines.append(
            f"| {r['method']} | {r['claim']} | {r['n']} | {r['pooled']} | {r['mu']:+.4g} | {r['sigma']:.4g} | "
            f"{r['flip_at_n']:.2f}{flag} | {stable} | {r['units_needed'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:+.4g}"


def render(rows: list[dict[str, Any]], eps: float, walls: dict[str, float]) -> str:
    moved = [r for r in rows if r["moved"]]
    lines = [
        f"# Verdict stability under --perturb {eps:g}",
        "",
        f"{len(rows) - len(moved)} of {len(rows)} verdicts identical; {len(moved)} moved. "
        f"Wall: base {walls.get('base', 0):.0f} s, perturbed {walls.get('perturbed', 0):.0f} s.",
        "",
        "| method | claim | kind | base | perturbed | base mean [bounds] | perturbed mean [bounds] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        flag = " **moved**" if r["moved"] else ""
        lines.append(
            f"| {r['method']} | {r['claim']} | {r['kind']} | {r['base']} | {r['perturbed']}{flag} | "
            f"{_fmt(r['base_mean'])} [{_fmt(r['base_bounds'][0])}, {_fmt(r['base_bounds'][1])}] | "
            f"{_fmt(r['perturbed_mean'])} [{_fmt(r['perturbed_bounds'][0])}, {_fmt(r['perturbed_bounds'][1])}] |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/stability"))
    parser.add_argument("--methods", nargs="*", default=[])
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--jobs", type=int, default=None, help="passed to reproduce (parallel runs)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--side-by-side", action="store_true", help="run both reproductions at once, --jobs 1 each")
    parser.add_argument("--compare-only", action="store_true", help="compare the two existing summaries")
    parser.add_argument("--power", action="store_true", help="also write OUT/power.md (units each claim needs)")
    args = parser.parse_args()
    extra = ["--preset", args.preset]
    if args.compare_only:
        walls: dict[str, float] = {}
    elif args.side_by_side:
        walls = _reproduce_side_by_side(args, extra)
    else:
        walls = {
            "base": _reproduce(args.out / "base", args.methods, extra, args.jobs),
            "perturbed": _reproduce(args.out / "perturbed", args.methods, [*extra, "--perturb", str(args.eps)],
                                    args.jobs),
        }  # fmt: skip
    summaries = [_summary(args.out / name, args.preset) for name in ("base", "perturbed")]
    rows = compare(*summaries)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stability.json").write_text(json.dumps({"eps": args.eps, "walls": walls, "rows": rows}, indent=1))
    (args.out / "stability.md").write_text(render(rows, args.eps, walls))
    moved = [r for r in rows if r["moved"]]
    print(f"{len(rows) - len(moved)} of {len(rows)} verdicts identical under --perturb {args.eps:g}")
    for r in moved:
        print(f"  moved: {r['method']}.{r['claim']}: {r['base']} -> {r['perturbed']}")
    print(f"table: {args.out / 'stability.md'}")
    if args.power:
        table = power(*summaries)
        (args.out / "power.md").write_text(render_power(table))
        print(f"power: {args.out / 'power.md'}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
