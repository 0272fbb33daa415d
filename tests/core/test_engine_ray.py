"""Runs as Ray tasks: on a separately started local cluster (`ray start --head`, two worker processes) and on
the embedded local instance of `reproduce --jobs 2`. Metrics are identical to the serial runs, also when a
task's worker is killed mid-run (the retry resumes from the checkpoint) and when the run folder is shipped
back to the driver (no shared filesystem). Skipped without the `distributed` extra.

Everything that talks to Ray runs in a child process with a hard timeout (the head, the driver of the sweep,
the CLI): a Ray that cannot reach its head retries for many minutes, and a test must fail instead of hanging
the suite. The head gets its own ports, temp folder and process group, and only that group is stopped, so
other Ray instances on the machine are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

import reprolab
from reprolab.core.config import parse_set_options
from reprolab.core.engine import LOOPBACK_ENV, RunSpec, execute
from reprolab.core.raynode import free_port, start_head, stop_group

DEMI = ["eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16", "embed=8", "batch_size=32"]
MAXK = ["d_vocab=16", "d_model=8", "d_head=8", "n_seeds=1", "steps=50", "forward_check_samples=500"]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
# hard limits (seconds) of the child processes; the test itself takes about a minute on a quiet 2-core machine
HEAD_START_S, DRIVER_S, CLI_S = 120, 300, 240
SRC = str(Path(reprolab.__file__).resolve().parents[1])  # this checkout's reprolab, also in the children


def _specs(root: Path) -> list[RunSpec]:
    """A tiny sweep: 2 methods x 2 seeds; demi long enough (100 steps, about 5 CPU-s, a checkpoint every 10) to
    be killed mid-run."""
    demi = parse_set_options([*DEMI, "steps=100", "checkpoint_every=10"])
    maxk = parse_set_options(MAXK)
    return [
        RunSpec(method, "quick", seed, root / method / f"seed{seed}", overrides)
        for method, overrides in (("demi", demi), ("maxk_proofs", maxk))
        for seed in range(2)
    ]


def _deterministic(metrics: dict) -> str:
    """Metrics that measure the computation, not the clock (Max-of-K reports proof wall times; other methods
    training seconds and time ratios), as comparable text (NaN equals NaN)."""
    kept = {k: v for k, v in metrics.items() if not ("wall" in k or "time" in k or k.endswith("_s"))}
    return json.dumps(kept, sort_keys=True)


def _metrics(folder: Path) -> str:
    return _deterministic(json.loads((folder / "results.json").read_text())["metrics"])


def _child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this checkout's sources first; Ray's loopback switch NOT set, as in a user's
    shell (the engine must find out by itself how the head listens)."""
    env = {k: v for k, v in os.environ.items() if k != LOOPBACK_ENV}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return {**env, **RAY_ENV, "REPROLAB_PROGRESS": "0", **extra}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node started in its own process, as a user would start one; its address."""
    log_path = tmp_path_factory.mktemp("ray-head") / "head.log"
    # Ray's sockets live under the temp folder, whose path must stay short (AF_UNIX: 107 bytes)
    temp_dir = Path(tempfile.mkdtemp(prefix="rl-ray-"))
    env = {**RAY_ENV, LOOPBACK_ENV: "0"}  # its node and its GCS listen on 127.0.0.1 only
    started = None
    for _ in range(2):  # a heavily loaded machine can miss Ray's 30 s for a raylet to register once
        started = start_head(2, temp_dir, log_path, env, timeout=HEAD_START_S)
        if started is not None:
            break
    if started is None:
        shutil.rmtree(temp_dir, ignore_errors=True)
        pytest.fail(f"ray start --head failed twice:\n{log_path.read_text()[-2000:]}")
    head, address = started
    try:
        # the configuration that used to hang: a loopback head, joined by a driver whose Ray took Linux's
        # default (the interface address) when it was imported
        assert "Local node IP: 127.0.0.1" in log_path.read_text()
        yield address
    finally:
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _task_pids(title: str) -> list[int]:
    """Worker processes whose title (Ray sets it to ``ray::<task name>``) is ``title``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.strip() == f"ray::{title}":
                pids.append(int(entry.name))
    return pids


SHIPPED = (1, 2)  # demi seed 1, maxk_proofs seed 0


def _drive(address: str, root: Path) -> None:
    """The child: the 2 x 2 sweep under ``root/ray`` against ``address``, then one run of each method under
    ``root/shipped`` without a shared filesystem (forced); the runs' errors go to ``root/errors.json``. Ray is
    imported first, as a notebook or a test would: its loopback switch is then fixed (to the interface address,
    Linux's default), and the engine must still join the loopback head."""
    import ray  # noqa: F401

    sweep = execute(_specs(root / "ray"), address=address)
    shipped = execute([_specs(root / "shipped")[i] for i in SHIPPED], address=address, ship=True)
    errors = {mode: [o.error for o in outcomes] for mode, outcomes in (("sweep", sweep), ("shipped", shipped))}
    (root / "errors.json").write_text(json.dumps(errors))


def _run_child(root: Path, address: str, watch) -> dict:
    """Run `_drive` in a child process (its own process group) with a hard timeout, calling ``watch`` while it
    runs; the child's errors per run."""
    log_path = root / "driver.log"
    command = [sys.executable, __file__, address, str(root)]
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, env=_child_env(), stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
    deadline = time.time() + DRIVER_S
    while child.poll() is None and time.time() < deadline:
        if watch is not None:
            watch()
        time.sleep(0.02)
    if child.poll() is None:
        stop_group(child, grace=5)
        pytest.fail(f"the driver ran over {DRIVER_S} s:\n{log_path.read_text()[-3000:]}")
    assert child.returncode == 0, log_path.read_text()[-3000:]
    return json.loads((root / "errors.json").read_text())


def test_joining_this_machine_follows_how_the_head_listens_and_refuses_silence():
    """A head on the loopback address only is joined over loopback; one listening on every address (Ray's
    default head) through the interface address, as Ray does; nothing listening is one line, no hang."""
    import ray._private.ray_constants as ray_constants

    from reprolab.core import engine
    from reprolab.core.errors import ConfigError

    for bind, expected_loopback in (("127.0.0.1", True), ("0.0.0.0", False)):
        with socket.socket() as head:
            head.bind((bind, 0))
            head.listen()
            port = head.getsockname()[1]
            for host in ("127.0.0.1", "localhost"):
                target, loopback = engine._join_target(f"{host}:{port}")
                assert loopback is expected_loopback
                assert target == ("127.0.0.1" if loopback else engine._interface_address()) + f":{port}"
    with pytest.raises(ConfigError, match="no Ray head answers"):
        engine._join_target(f"127.0.0.1:{free_port()}")
    with pytest.raises(ConfigError, match="expected host:port"):
        engine._join_target("127.0.0.1")
    assert engine._join_target("ray://example.org:10001") == ("ray://example.org:10001", False)
    # the switch is set for the connection and put back afterwards
    before, env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(LOOPBACK_ENV)
    restore = engine._node_address_mode(loopback=True)
    assert ray_constants.ENABLE_RAY_CLUSTER is False and os.environ[LOOPBACK_ENV] == "0"
    restore()
    assert (ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(LOOPBACK_ENV)) == (before, env)


# The Ray tests run in one xdist worker, one after the other (scripts/test.sh uses --dist loadgroup): two Ray
# instances started at once on one machine share ~/.ray state (the auth token) and compete for 2 cores.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
def test_cluster_sweep_matches_serial_survives_a_killed_worker_and_ships_folders(cluster, tmp_path):
    serial = execute(_specs(tmp_path / "serial"), jobs=1)
    assert all(o.error is None for o in serial), [o.error for o in serial]

    victim = _specs(tmp_path / "ray")[0]
    killed: list[int] = []

    def kill_mid_run() -> None:
        # mid-run: a checkpoint to resume from, no results yet (checked every 20 ms: a loaded machine gives
        # this loop little CPU)
        checkpoint, results = victim.out / "checkpoints" / "last.pt", victim.out / "results.json"
        if not killed and checkpoint.exists() and not results.exists():
            for pid in _task_pids(victim.name):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    errors = _run_child(tmp_path, cluster, watch=kill_mid_run)
    assert killed, "the demi task finished before its worker could be killed"
    assert errors == {"sweep": [None] * 4, "shipped": [None] * 2}, errors
    for ref in serial:
        got = tmp_path / "ray" / ref.spec.out.relative_to(tmp_path / "serial")
        assert _metrics(got) == _metrics(ref.spec.out), got
    # the retry resumed: lines logged after the checkpoint were dropped and re-logged once
    assert (victim.out / "metrics.jsonl").read_text() == (serial[0].spec.out / "metrics.jsonl").read_text()

    # no shared filesystem (forced): one run of each method came back as files the driver wrote
    for ref in (serial[i] for i in SHIPPED):
        got = tmp_path / "shipped" / ref.spec.out.relative_to(tmp_path / "serial")
        assert _metrics(got) == _metrics(ref.spec.out), got
        assert (got / "report.md").is_file() and list((got / "figures").glob("*.png"))
    assert not list((tmp_path / "shipped").glob(".reprolab-driver-*")), "ship mode leaves no marker behind"
    assert not list((tmp_path / "ray").glob(".reprolab-driver-*")), "the shared-filesystem marker is removed"


DEMI_SETS = [part for item in DEMI for part in ("--set", item)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`reprolab ARGS` in a child process with a hard timeout."""
    try:
        return subprocess.run([sys.executable, "-m", "reprolab", *args], env=_child_env(), capture_output=True,
                              text=True, timeout=CLI_S)  # fmt: skip
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"reprolab {' '.join(args)} ran over {CLI_S} s:\n{err.stderr!r}"[-3000:])


def _demi_metrics(out: Path) -> list[str]:
    return [_metrics(out / f"seed{s}") for s in range(2)]


@pytest.fixture(scope="module")
def demi_jobs_1(tmp_path_factory) -> list[str]:
    """`reproduce demi --seeds 2 --set steps=20 --jobs 1` (the serial path: no Ray, run here); its metrics."""
    from typer.testing import CliRunner

    from reprolab.cli import app

    out = tmp_path_factory.mktemp("jobs1")
    args = ["reproduce", "demi", "--seeds", "2", *DEMI_SETS, "--set", "steps=20", "--jobs", "1", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    return _demi_metrics(out / "demi")


@pytest.mark.slow
def test_sweep_address_of_a_ray_start_head_matches_jobs_1(cluster, demi_jobs_1, tmp_path):
    """`reprolab sweep --address 127.0.0.1:PORT` of the head started by `ray start --head` on this machine."""
    args = ["sweep", "demi", "--grid", "steps=20", "--seeds", "2", *DEMI_SETS, "--out", str(tmp_path)]
    joined = _cli(*args, "--address", cluster)
    assert joined.returncode == 0, joined.stderr[-3000:]
    assert "[2/2] demi" in joined.stderr
    assert _demi_metrics(tmp_path / "p00-steps=20") == demi_jobs_1
    # nothing at the address: one line and exit 2 within seconds, not Ray's minutes of retries
    refused = _cli(*args[:-1], str(tmp_path / "refused"), "--address", f"127.0.0.1:{free_port()}")
    assert refused.returncode == 2 and "no Ray head answers" in refused.stderr, refused.stderr[-3000:]
    assert refused.stderr.strip().count("\n") == 0 and not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_reproduce_jobs_2_on_the_embedded_ray_matches_jobs_1(demi_jobs_1, tmp_path):
    done = _cli("reproduce", "demi", "--seeds", "2", *DEMI_SETS, "--set", "steps=20", "--jobs", "2",
                "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[2/2] demi seed" in done.stderr
    assert _demi_metrics(tmp_path / "demi") == demi_jobs_1
    assert demi_jobs_1[0] != demi_jobs_1[1]


if __name__ == "__main__":  # the child of `_run_child`
    _drive(sys.argv[1], Path(sys.argv[2]))
