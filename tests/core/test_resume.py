"""A run killed part-way and resumed ends with the same results as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SETTINGS = [
    "steps=240",
    "eval_batches=3",
    "true_mis=[2,12,24]",
    "ks=[2]",
    "digits=false",
    "hidden=32",
    "embed=16",
    "batch_size=32",
    "checkpoint_every=40",
]


def _command(out: Path, *extra: str) -> list[str]:
    sets = [part for item in SETTINGS for part in ("--set", item)]
    return [sys.executable, "-m", "reprolab", "run", "demi", *sets, "--seed", "7", "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "REPROLAB_PROGRESS": "0"}


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_command(reference), check=True, env=_env(), capture_output=True, timeout=300)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_command(interrupted), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = interrupted / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    # Kill once a few checkpoints exist: mid-way through the sweep, inside a training unit.
    while time.time() < deadline and process.poll() is None:
        lines = (interrupted / "metrics.jsonl").read_text().count("\n") if checkpoint.exists() else 0
        if lines >= 9:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (interrupted / "results.json").exists(), "run finished before it could be killed"
    assert checkpoint.exists()

    # the README's resume command: the run's own config.yaml supplies the --set overrides and the seed
    resume = [sys.executable, "-m", "reprolab", "run", "demi", "--out", str(interrupted), "--resume"]
    resumed = subprocess.run(resume, env=_env(), capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert _results(interrupted)["metrics"] == _results(reference)["metrics"]
    assert [c["verdict"] for c in _results(interrupted)["claims"]] == [
        c["verdict"] for c in _results(reference)["claims"]
    ]
    # the metrics log is also identical: lines after the checkpoint were dropped and re-logged once
    assert (interrupted / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


def test_same_seed_and_config_give_identical_metrics(tmp_path):
    from reprolab.core.config import parse_set_options
    from reprolab.core.runner import run_experiment

    overrides = parse_set_options([*SETTINGS[:-1], "steps=30", "true_mis=[2,20]"])
    first = run_experiment("demi", "quick", overrides, seed=1, out=tmp_path / "a")
    second = run_experiment("demi", "quick", overrides, seed=1, out=tmp_path / "b")
    other_seed = run_experiment("demi", "quick", overrides, seed=2, out=tmp_path / "c")
    assert first["metrics"] == second["metrics"]
    assert first["metrics"] != other_seed["metrics"]


def test_corrupt_checkpoint_is_refused_on_resume_without_touching_the_run(tmp_path):
    from reprolab.core.config import parse_set_options
    from reprolab.core.errors import CheckpointError
    from reprolab.core.runner import run_experiment

    overrides = parse_set_options([*SETTINGS[:-1], "steps=30", "true_mis=[2]", "checkpoint_every=10"])
    out = tmp_path / "run"
    run_experiment("demi", "quick", overrides, seed=0, out=out)
    (out / "results.json").unlink()  # pretend the run was interrupted after its last checkpoint
    checkpoint = out / "checkpoints" / "last.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    metrics_before = (out / "metrics.jsonl").read_text()
    with pytest.raises(CheckpointError, match="last.pt: corrupt or unsafe checkpoint"):
        run_experiment("demi", "quick", overrides, seed=0, out=out, resume=True)
    assert (out / "metrics.jsonl").read_text() == metrics_before
    assert checkpoint.read_bytes() == b"not a checkpoint"
