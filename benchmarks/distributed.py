"""`reprolab reproduce` serial (--jobs 1) against Ray (--jobs N, or --address of `ray start` clusters).

Runs the same methods/preset/seeds through the CLI in each mode, checks that every run's metrics are identical
(clock metrics -- proof wall times, training seconds, time ratios -- aside), and prints wall time, the runs'
CPU time and their ratio::

    python benchmarks/distributed.py maxk_proofs domain_kge --preset quick --jobs 2
    python benchmarks/distributed.py demi --seeds 2 --address-cluster --set steps=30   # also via ray start

`--address-cluster` runs `reproduce --address 127.0.0.1:PORT` against two clusters started with `ray start`
on this machine, then stops them: a head alone on the loopback address (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`,
N CPUs), and two nodes -- a head and a second `ray start --address` node of one CPU each -- on the machine's
interface address (Ray refuses a second node in loopback mode). Every cluster gets free ports and its own
temp folder, and only its process groups are stopped (never `ray stop`, which stops every Ray instance of the
user on the machine). Numbers are ratios within one invocation; on a shared machine the wall times depend on
the load, so the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reprolab.core.raynode import own_ports, start_head, start_node, stop_group

# Ray's multi-machine switch: "0" puts a node on the loopback address 127.0.0.1, "1" on the interface address
SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def is_clock(name: str) -> bool:
    """Metrics that time the computation (proof wall times, training seconds, time ratios) vary run to run."""
    return "wall" in name or "time" in name or name.endswith("_s")


def computed(metrics: dict) -> str:
    """The metrics that measure the computation, as comparable text (NaN equals NaN)."""
    return json.dumps({name: value for name, value in metrics.items() if not is_clock(name)}, sort_keys=True)


def _reproduce(methods: list[str], args: argparse.Namespace, out: Path, *extra: str) -> tuple[float, float, dict]:
    """Run the CLI; return its wall time, the runs' summed CPU time and {run folder: metrics}."""
    sets = [part for item in args.set for part in ("--set", item)]
    seeds = ["--seeds", str(args.seeds)] if args.seeds else []
    command = [sys.executable, "-m", "reprolab", "reproduce", *methods, "--preset", args.preset, *seeds, *sets,
               "--out", str(out), *extra]
    start = time.perf_counter()
    # the user's environment: Ray's loopback switch unset (reprolab finds out how the head listens)
    env = {**{k: v for k, v in os.environ.items() if k != SWITCH}, "REPROLAB_PROGRESS": "0"}
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


def _start_cluster(cpus: int, logs: Path, temp: Path, *, two_nodes: bool) -> tuple[list[subprocess.Popen], str]:
    """A loopback head with ``cpus`` CPUs, or a head and a second node of one CPU each on the interface address
    (logs under ``logs``, Ray's files under ``temp``); the `ray start` processes and the address to give
    reprolab (127.0.0.1:PORT in both cases, as a user on this machine would type it)."""
    mode = {SWITCH: "1" if two_nodes else "0"}
    head = start_head(1 if two_nodes else cpus, temp, logs / "head.log", mode)
    if head is None:
        sys.exit(f"ray start --head failed:\n{(logs / 'head.log').read_text()[-2000:]}")
    nodes, address = [head[0]], head[1]
    if two_nodes:
        # the second node's side services need ports of their own too; RAY_AUTH_MODE=token: the node sends
        # the token the head wrote to ~/.ray/auth_token (Ray's token authentication)
        join = [f"--address={_head_address(logs / 'head.log')}", "--num-cpus=1", f"--temp-dir={temp}",
                *own_ports()[2:]]  # fmt: skip
        node = start_node(join, logs / "node.log", {**mode, "RAY_AUTH_MODE": "token"})
        if node is None:
            stop_group(nodes[0])
            sys.exit(f"ray start --address failed:\n{(logs / 'node.log').read_text()[-2000:]}")
        nodes.append(node)
    return nodes, address


def _head_address(log: Path) -> str:
    """The address `ray start --head` tells other nodes to join (its node address, the interface here)."""
    for line in log.read_text().splitlines():
        if "ray start --address=" in line:
            return line.split("--address=")[1].strip().strip("'")
    sys.exit(f"no join address in {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="key=value for every run")
    parser.add_argument("--address-cluster", action="store_true", help="also run against `ray start` clusters")
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
        for two_nodes, name in ((False, "loopback-head"), (True, "two-nodes")):
            logs = root / f"{name}-logs"
            logs.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix="rl-ray-"))  # short: Ray's sockets live there (AF_UNIX: 107 bytes)
            nodes, address = _start_cluster(args.jobs, logs, temp, two_nodes=two_nodes)
            try:
                wall, cpu, metrics = _reproduce(args.methods, args, root / name, "--address", address)
            finally:
                for node in reversed(nodes):
                    stop_group(node)
                shutil.rmtree(temp, ignore_errors=True)
            rows.append((f"--address ({name})", wall, cpu, metrics == serial))
    print(f"load average after: {os.getloadavg()}; runs: {len(serial)}")
    print(f"{'mode':<28} {'wall s':>8} {'runs CPU s':>11} {'CPU/wall':>9}  metrics == --jobs 1")
    for mode, wall, cpu, same in rows:
        print(f"{mode:<28} {wall:8.1f} {cpu:11.1f} {cpu / wall:9.2f}  {same}")
    if not all(same for *_, same in rows):
        sys.exit("metrics differ from the serial run")


if __name__ == "__main__":
    main()
