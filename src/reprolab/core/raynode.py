"""Starting a Ray node with `ray start --block` in a process group of its own, and stopping only that group.

Used by the Ray tests and ``benchmarks/distributed.py`` to start a cluster as a user would. Every node gets free
ports for its side services and the caller's temp folder, and only its own process group is stopped (never
`ray stop`, which stops every Ray instance of the user on the machine). Nothing here imports Ray: the node is the
`ray` command beside this Python (``python -m ray.scripts.scripts`` when that script is absent).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["free_port", "own_ports", "start_head", "start_node", "stop_group"]

_STARTED = "Ray runtime started"  # what `ray start` prints once its node runs
_SIDE_SERVICES = ("ray-client-server-port", "dashboard-port", "dashboard-agent-listen-port",
                  "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")  # fmt: skip


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def own_ports() -> list[str]:
    """`ray start` options giving a head's side services free ports: their defaults (10001, 8265, 52365, ...) are
    fixed, so two heads on one machine (xdist workers, another test run) would otherwise collide and hang. A
    joining node passes all but the first two (client server and dashboard belong to the head)."""
    return [f"--{name}={free_port()}" for name in _SIDE_SERVICES]


def _ray_command() -> list[str]:
    ray_cli = Path(sys.executable).with_name("ray")
    return [str(ray_cli)] if ray_cli.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process (a `ray start --block` node stops what it started), then SIGKILL its whole process
    group: only the processes the caller started, whatever state they are in."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def start_node(
    args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, *, timeout: float = 180
) -> subprocess.Popen | None:
    """`ray start --block --disable-usage-stats *args` in its own process group, its output in ``log_path``, with
    ``env`` over this process's environment; the process once it says it started, or None (its group stopped)
    when it exits or is not up within ``timeout`` seconds (Ray gives a raylet 30 s to register, which a heavily
    loaded machine can miss: the caller may try again)."""
    command = [*_ray_command(), "start", "--block", "--disable-usage-stats", *args]
    with open(log_path, "w") as log:
        node = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    deadline = time.time() + timeout
    while _STARTED not in log_path.read_text():
        if node.poll() is not None or time.time() > deadline:
            stop_group(node, grace=10)
            return None
        time.sleep(0.2)
    return node


def start_head(
    cpus: int, temp_dir: Path, log_path: Path, env: Mapping[str, str] | None = None, *, timeout: float = 180
) -> tuple[subprocess.Popen, str] | None:
    """A head node of ``cpus`` CPUs (no dashboard, free ports, Ray's files under ``temp_dir``, whose path must
    stay short: Ray's AF_UNIX sockets live there, 107 bytes at most); the process and the address to give
    reprolab (``127.0.0.1:PORT``, as a user on this machine would type it), or None as :func:`start_node`.
    Whether it listens on the loopback address only is Ray's switch ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` in
    ``env`` ("0": loopback)."""
    port = free_port()
    args = ["--head", f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
            *own_ports()]  # fmt: skip
    node = start_node(args, log_path, env, timeout=timeout)
    return None if node is None else (node, f"127.0.0.1:{port}")
