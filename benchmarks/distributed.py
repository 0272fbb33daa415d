"""`reprolab reproduce` serial (--jobs 1) against Ray (--jobs N, or --address of a `ray start --head` cluster).

Runs the same methods/preset/seeds through the CLI in each mode, checks that every run's metrics are identical
(clock metrics -- proof wall times, training seconds, time ratios -- aside), and prints wall time, the runs'
CPU time and their ratio::

    python benchmarks/distributed.py maxk_proofs domain_kge --preset quick --jobs 2
    python benchmarks/distributed.py demi --seeds 2 --address-cluster --set steps=30   # also via ray start --head

`--address-cluster` starts `ray start --head --block --num-cpus N` on a free port (this machine only), runs
`reproduce --address 127.0.0.1:PORT`, then stops the head. Numbers are ratios within one invocation; on a
shared machine the wall times depend on the load, so the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# loopback only: on one machine Ray uses 127.0.0.1 as the node address, never the network interface
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

def is_clock(name: str) -> bool:
    """Metrics that time the computation (proof wall times, training seconds, time ratios) vary run to run."""
    return "wall" in name or "time" in name or name.endswith("_s")


def computed(metrics: dict) -> dict:
    return {name: value for name, value in metrics.items() if not is_clock(name)}


def _reproduce(methods: list[str], args: argparse.Namespace, out: Path, *extra: str) -> tuple[float, float, dict]:
    """Run the CLI; return its wall time, the runs' summed CPU time and {run folder: metrics}."""
    sets = [part for item in args.set for part in ("--set", item)]
    seeds = ["--seeds", str(args.seeds)] if args.seeds else []
    command = [sys.executable, "-m", "reprolab", "reproduce", *methods, "--preset", args.preset, *seeds, *sets,
               "--out", str(out), *extra]
    start = time.perf_counter()
    env = {**os.environ, "REPROLAB_PROGRESS": "0", **LOOPBACK}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics, cpu = {}, 0.0
    for path in sorted(out.glob("*/seed*/results.json")):
        results = json.loads(path.read_text())
        metrics[str(path.parent.relative_to(out))] = computed(results["metrics"])
        cpu += results.get("cpu_s") or 0.0
    return wall, cpu, metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _own_ports() -> list[str]:
    """Free ports for the head's side services (their defaults are fixed and collide with another head)."""
    names = ("ray-client-server-port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
             "metrics-export-port", "runtime-env-agent-port")  # fmt: skip
    return [f"--{name}={_free_port()}" for name in names]


def _start_head(cpus: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block", f"--port={port}",
               f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats", *_own_ports()]
    with open(log, "w") as handle:
        # loopback only (Ray's node address 127.0.0.1): a one-machine cluster never uses the network interface
        head = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **LOOPBACK})
    deadline = time.time() + 180
    while "Ray runtime started" not in log.read_text():
        if head.poll() is not None or time.time() > deadline:
            head.terminate()
            sys.exit(f"ray start --head failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    return head, f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="key=value for every run")
    parser.add_argument("--address-cluster", action="store_true", help="also run against `ray start --head`")
    parser.add_argument("--out", type=Path, default=None, help="keep run folders here (default: a temp folder)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="reprolab-distributed-"))
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}; output: {root}")
    rows = []
    wall, cpu, serial = _reproduce(args.methods, args, root / "jobs1", "--jobs", "1")
    rows.append(("--jobs 1", wall, cpu, True))
    wall, cpu, metrics = _reproduce(args.methods, args, root / f"jobs{args.jobs}", "--jobs", str(args.jobs))
    rows.append((f"--jobs {args.jobs}", wall, cpu, metrics == serial))
    if args.address_cluster:
        head, address = _start_head(args.jobs, root / "head.log")
        try:
            wall, cpu, metrics = _reproduce(args.methods, args, root / "address", "--address", address)
        finally:
            head.terminate()
            head.wait(timeout=60)
        rows.append((f"--address {address}", wall, cpu, metrics == serial))
    print(f"load average after: {os.getloadavg()}; runs: {len(serial)}")
    print(f"{'mode':<28} {'wall s':>8} {'runs CPU s':>11} {'CPU/wall':>9}  metrics == --jobs 1")
    for mode, wall, cpu, same in rows:
        print(f"{mode:<28} {wall:8.1f} {cpu:11.1f} {cpu / wall:9.2f}  {same}")
    if not all(same for *_, same in rows):
        sys.exit("metrics differ from the serial run")


if __name__ == "__main__":
    main()
