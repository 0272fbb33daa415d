"""The benchmark scripts keep running: ``benchmarks/all.py --quick`` runs every one at toy sizes (issue 24).

The numbers of a quick run mean nothing (toy sizes, one process); what is checked is that every benchmark still
produces its headline row and its growth records (three sizes, a fitted exponent) in the shared format.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _growth_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import growth
    finally:
        sys.path.pop(0)
    return growth


def test_fitted_exponent_recovers_a_power_law():
    growth = _growth_module()
    sizes = [100, 300, 1000]
    assert growth.fitted_exponent(sizes, [2e-3 * s**1.5 for s in sizes]) == pytest.approx(1.5)
    record = growth.growth_record("step", "batch", sizes, [1.0, 1.0, 1.0])
    assert record["exponent"] == 0 and record["measure"] == "growth" and len(record["times_s"]) == 3
    assert "time ~ batch^0.00" in growth.growth_text(record)
    with pytest.raises(ValueError):
        growth.fitted_exponent([5, 5], [1.0, 2.0])


@pytest.mark.slow
def test_all_benchmarks_quick(tmp_path):
    out = tmp_path / "perf.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "all.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    report = json.loads(out.read_text())
    jobs = {job["name"]: job for job in report["jobs"]}
    assert not [name for name, job in jobs.items() if "error" in job]
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"all", "growth", "distributed",
                                                                        "verdict_stability"}
    def script(job: dict) -> str:  # "python benchmarks/<script>.py ..." -> "<script>"
        return Path(job["command"].split()[1]).stem

    assert scripts <= {script(job) for job in jobs.values()}, "a benchmark is missing from benchmarks/all.py"
    for name, job in jobs.items():
        if not name.endswith("_scaling"):
            assert job["rows"], f"{name}: no headline row"
    grown = {script(job) for job in report["jobs"] if job["growth"]}
    assert grown == scripts, f"no growth record from {scripts - grown}"
    for job in report["jobs"]:
        for record in job["growth"]:
            assert len(record["sizes"]) == len(record["times_s"]) == 3 and math.isfinite(record["exponent"])
    markdown = out.with_suffix(".md").read_text()
    assert "| what | ratio | baseline | sizes | script |" in markdown and report["machine"]["git_commit"] in markdown
