"""One owner per run folder: racing runs, a resume while the owner runs, stale locks, leftover files."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from reprolab.core import registry
from reprolab.core.errors import ConfigError
from reprolab.core.io import read_json
from reprolab.core.runlock import LOCK_NAME, RunFolderLock
from reprolab.core.runner import run_experiment
from reprolab.core.sweep import Sweep


@dataclass
class _Config:
    units: int = 3
    pause: float = 0.05


_FAIL = {"on": False}  # not a config field: a resumed run must keep the fingerprint


def _run(config: _Config, ctx) -> dict[str, float]:
    sweep = Sweep(ctx)
    for unit in range(config.units):
        if not sweep.is_done(str(unit)):
            time.sleep(config.pause)
            ctx.log(unit=unit, seed=ctx.seed)
            sweep.complete(str(unit), unit)
    if _FAIL["on"]:
        raise RuntimeError("boom")
    return {"seed": ctx.seed, "units": float(config.units)}


@pytest.fixture
def locktest(tmp_path_factory):
    """A tiny registered experiment (removed again afterwards, so other tests never see it)."""
    experiment = registry.Experiment(
        name="locktest",
        paper=registry.Paper("t", "a", "v", 2024),
        description="run-folder lock test",
        config_cls=_Config,
        presets={"quick": {}, "paper": {}},
        run=_run,
    )
    registry.discover()
    registry._REGISTRY["locktest"] = experiment
    # warm the lazy imports once here, so the forked racers start together instead of importing in turn
    run_experiment("locktest", "quick", {"units": 0}, seed=0, out=tmp_path_factory.mktemp("warm") / "run")
    yield "locktest"
    registry._REGISTRY.pop("locktest", None)


def _racer(out: str, seed: int, barrier, results) -> None:
    barrier.wait()
    try:
        run_experiment("locktest", "quick", {"pause": 0.02}, seed=seed, out=out)
        results.put((seed, "ok"))
    except ConfigError as err:
        results.put((seed, str(err)))
    except BaseException as err:  # pragma: no cover - reported by the assertion below
        results.put((seed, f"unexpected {type(err).__name__}: {err}"))


def test_racing_runs_on_one_folder_leave_exactly_one_owner(tmp_path, locktest):
    ctx = multiprocessing.get_context("fork")
    racers = 4
    for attempt in range(4):
        out = tmp_path / f"race{attempt}"
        barrier, results = ctx.Barrier(racers), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(str(out), seed, barrier, results)) for seed in range(1, racers + 1)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        winners = [seed for seed, outcome in outcomes if outcome == "ok"]
        assert len(winners) == 1, outcomes
        for _seed, outcome in outcomes:
            if outcome != "ok":
                assert "in use by process" in outcome or "already holds files" in outcome, outcome
                assert "\n" not in outcome
        saved = yaml.safe_load((out / "config.yaml").read_text())
        finished = read_json(out / "results.json")
        assert saved["seed"] == finished["seed"] == finished["metrics"]["seed"] == winners[0]
        logged = {line for line in (out / "metrics.jsonl").read_text().splitlines()}
        assert all(f'"seed": {winners[0]}' in line for line in logged)


def _slow_owner(out: str, ready) -> None:
    ready.set()
    run_experiment("locktest", "quick", {"units": 40, "pause": 0.05}, seed=0, out=out)


def test_resume_while_the_owner_runs_is_refused_with_its_pid(tmp_path, locktest):
    ctx = multiprocessing.get_context("fork")
    out = tmp_path / "run"
    ready = ctx.Event()
    owner = ctx.Process(target=_slow_owner, args=(str(out), ready))
    owner.start()
    try:
        deadline = time.time() + 30
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConfigError, match=f"in use by process {owner.pid}"):
            run_experiment("locktest", "quick", {"units": 40, "pause": 0.05}, seed=0, out=out, resume=True)
        with pytest.raises(ConfigError, match=f"in use by process {owner.pid}"):
            run_experiment("locktest", "quick", {}, seed=5, out=out)
    finally:
        owner.join(timeout=60)
    assert owner.exitcode == 0
    assert read_json(out / "results.json")["metrics"]["units"] == 40


def _killed_holder(folder: str, ready) -> None:
    RunFolderLock(folder).acquire()
    ready.set()
    time.sleep(60)


def test_lock_of_a_killed_process_is_taken_over(tmp_path, locktest):
    ctx = multiprocessing.get_context("fork")
    out = tmp_path / "run"
    ready = ctx.Event()
    holder = ctx.Process(target=_killed_holder, args=(str(out), ready))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(ConfigError, match=f"in use by process {holder.pid}"):
        run_experiment("locktest", "quick", {}, seed=0, out=out)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=30)
    assert (out / LOCK_NAME).read_text().strip() == str(holder.pid)  # the stale file is still there ...
    results = run_experiment("locktest", "quick", {}, seed=0, out=out)  # ... and taken over
    assert results["metrics"]["seed"] == 0


def test_fingerprint_mismatch_names_the_differing_settings(tmp_path, locktest):
    out = tmp_path / "run"
    run_experiment("locktest", "quick", {"units": 2}, seed=1, out=out)
    (out / "results.json").unlink()
    with pytest.raises(ConfigError, match=r"seed 1 != 2, config.units 2 != 3"):
        run_experiment("locktest", "quick", {"units": 3}, seed=2, out=out, resume=True)


@pytest.mark.parametrize(
    "content",
    [b"- a\n- b\n", b"just a string\n", b"\x00\xff\xfe\x80binary", "method: x\n".encode("utf-16"), b"a: [1,\n"],
    ids=["list", "string", "binary", "utf16", "broken"],
)
def test_unreadable_run_config_is_one_line(tmp_path, locktest, content):
    out = tmp_path / "run"
    run_experiment("locktest", "quick", {}, seed=0, out=out)
    (out / "results.json").unlink()
    (out / "config.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match="config.yaml: unreadable run config") as info:
        run_experiment("locktest", "quick", {}, seed=0, out=out, resume=True)
    assert "\n" not in str(info.value)
    assert out.is_dir()  # a pre-existing folder is never removed


def test_failed_run_removes_only_the_folder_it_created(tmp_path, locktest, monkeypatch):
    monkeypatch.setitem(_FAIL, "on", True)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        run_experiment("locktest", "quick", {"units": 0}, seed=0, out=out)
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing.parent / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError):
        run_experiment("locktest", "quick", {"units": 0}, seed=0, out=existing)
    assert existing.is_dir() and [p.name for p in existing.iterdir()] == [LOCK_NAME]
    # a run that failed after a checkpoint keeps its folder for --resume
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        run_experiment("locktest", "quick", {}, seed=0, out=kept)
    assert (kept / "checkpoints" / "last.pt").exists()
    monkeypatch.setitem(_FAIL, "on", False)
    assert run_experiment("locktest", "quick", {}, seed=0, out=kept, resume=True)["metrics"]["units"] == 3


def test_resume_cleans_temp_files_and_the_log_of_a_run_without_checkpoint(tmp_path, locktest):
    out = tmp_path / "run"
    run_experiment("locktest", "quick", {}, seed=0, out=out)
    reference = (out / "metrics.jsonl").read_text()
    (out / "results.json").unlink()
    (out / "checkpoints" / "last.pt").unlink()
    (out / "metrics.jsonl").write_text(reference + '{"stale": 1}\n')
    (out / ".results.json.abc.tmp").write_text("half")
    (out / "checkpoints" / ".last.pt.xyz.tmp").write_text("half")
    run_experiment("locktest", "quick", {}, seed=0, out=out, resume=True)
    assert (out / "metrics.jsonl").read_text() == reference
    assert not list(out.rglob("*.tmp"))


def test_run_files_honour_the_umask(tmp_path, locktest):
    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        run_experiment("locktest", "quick", {}, seed=0, out=out)
    finally:
        os.umask(previous)
    for name in ("config.yaml", "results.json", "report.md", "checkpoints/last.pt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_lock_file_is_not_mistaken_for_run_files(tmp_path):
    folder = tmp_path / "run"
    lock = RunFolderLock(folder).acquire()
    assert lock.created and (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
    lock.release()
    again = RunFolderLock(folder).acquire()
    assert not again.created
    again.release()
    assert Path(folder).is_dir()


@pytest.mark.parametrize("broken", ["rng", "metrics_lines", "tables", "rng.torch"])
def test_run_checkpoint_with_a_missing_entry_is_one_line(tmp_path, locktest, broken):
    import torch

    from reprolab.core.errors import CheckpointError

    out = tmp_path / "run"
    run_experiment("locktest", "quick", {}, seed=0, out=out)
    (out / "results.json").unlink()
    path = out / "checkpoints" / "last.pt"
    payload = torch.load(path, weights_only=True)
    key, _, sub = broken.partition(".")
    if sub:
        del payload["state"][key][sub]
    else:
        del payload["state"][key]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"last.pt: not a complete run checkpoint .*'{key}'") as info:
        run_experiment("locktest", "quick", {}, seed=0, out=out, resume=True)
    assert "\n" not in str(info.value)


def test_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch_geometric'] = None; from reprolab.cli import main; "
        f"sys.argv = ['reprolab', 'run', 'diffpool', '--out', {str(tmp_path / 'run')!r}]; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "torch_geometric" in lines[0] and "reprolab[graph]" in lines[0], done.stderr
    assert not (tmp_path / "run").exists()


def test_reproduce_on_a_locked_run_folder_reports_the_holder(tmp_path, locktest):
    from reprolab.core.runner import reproduce

    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_killed_holder, args=(str(tmp_path / "rep" / "locktest" / "seed0"), ready))
    holder.start()
    try:
        assert ready.wait(30)
        summary = reproduce(["locktest"], preset="quick", seeds=1, out=tmp_path / "rep")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
    entry = summary["methods"][0]
    assert f"in use by process {holder.pid}" in entry.get("error", ""), entry
