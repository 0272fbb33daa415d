"""The README followed as a new user would: show, run with --set, kill, resume without repeating the settings,
report --html, and load_run(...).model(...) predicting with the saved weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import reprolab

SETTINGS = ["steps=160", "eval_batches=3", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16",
            "embed=8", "batch_size=32", "checkpoint_every=20"]  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprolab", *args]


@pytest.mark.slow
def test_readme_walkthrough(tmp_path, saved_demi_estimate):
    env = {**os.environ, "REPROLAB_PROGRESS": "0", "REPROLAB_TENSORBOARD": "0", "OMP_NUM_THREADS": "1"}
    shown = subprocess.run(_cli("show", "demi"), env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "batch_size" in shown.stdout and "presets" in shown.stdout

    out = tmp_path / "demi-s1"
    sets = [f"--set={s}" for s in SETTINGS]
    process = subprocess.Popen(_cli("run", "demi", *sets, "--seed", "1", "--out", str(out)), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:  # kill inside the second estimator's training
        log = out / "metrics.jsonl"
        if (out / "checkpoints" / "last.pt").exists() and log.exists() and log.read_text().count("\n") >= 10:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (out / "results.json").exists(), "the run finished before it could be killed"

    resumed = subprocess.run(_cli("run", "demi", "--out", str(out), "--resume"), env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    html = subprocess.run(_cli("report", str(out), "--html"), env=env, capture_output=True, text=True, timeout=120)
    assert html.returncode == 0 and "data:image/png;base64," in (out / "report.html").read_text()

    run = reprolab.load_run(out)
    assert run.config["steps"] == 160 and run.results["seed"] == 1 and run.results["overrides"]["hidden"] == 16
    estimate = saved_demi_estimate(run, "demi_k2-mi20", "gauss/demi_k2/mi20", 20.0)
    assert estimate == pytest.approx(run.metrics["demi_k2_at_20"], abs=1e-6)
