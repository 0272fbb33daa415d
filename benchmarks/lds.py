"""Benchmark: time and peak memory of one LDS outer step (tau inner steps + hypergradient) on Cora.

Compares the factored engine (sparse message passing, low-rank d F / d A; the default) with plain
autograd on dense samples, measured in the same run, each in its own process so peak memory is its own.
Uses the Planetoid Cora files under $REPROLAB_DATA/planetoid when present, otherwise a random graph of
Cora's size (2708 nodes, 1433 sparse binary features, 7 classes, ~5.3k edges).

    python benchmarks/lds.py [--tau 5] [--repeats 3] [--nodes 2708] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _cora_or_synthetic(nodes: int):
    import torch

    from reprolab.lds.data import GraphData, read_planetoid

    home = os.environ.get("REPROLAB_DATA")
    if home and (Path(home) / "planetoid" / "ind.cora.x").is_file() and nodes == 2708:
        return read_planetoid(Path(home) / "planetoid", "cora"), "Cora (Planetoid files)"
    gen = torch.Generator().manual_seed(0)
    features = (torch.rand(nodes, 1433, generator=gen) < 0.0127).float()
    features = features / features.sum(1, keepdim=True).clamp_min(1)
    labels = torch.randint(0, 7, (nodes,), generator=gen)
    adjacency = (torch.rand(nodes, nodes, generator=gen) < 5278 / (nodes * nodes / 2)).float().triu(1)
    adjacency = adjacency + adjacency.T
    masks = [torch.zeros(nodes, dtype=torch.bool) for _ in range(4)]
    masks[0][:140], masks[1][140:390], masks[2][390:640], masks[3][-1000:] = True, True, True, True
    return GraphData("synthetic", features, labels, *masks, adjacency=adjacency), f"random graph, {nodes} nodes"


def _worker(engine: str, tau: int, repeats: int, nodes: int, threads: int) -> None:
    import torch

    from reprolab.lds.model import DifferentiableAdam, EdgeDistribution, init_gcn
    from reprolab.lds.train import LDSSettings, hypergradient

    torch.set_num_threads(threads)
    data, source = _cora_or_synthetic(nodes)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dist = EdgeDistribution(data.adjacency)
    gen = torch.Generator().manual_seed(0)
    params = init_gcn(data.features.shape[1], 16, data.num_classes, generator=gen)
    optimizer = DifferentiableAdam()
    settings = LDSSettings(tau=tau)
    times, cpu_times = [], []
    for _ in range(repeats + 1):  # the first step warms up
        start, cpu_start = time.perf_counter(), time.process_time()
        params, grad, _ = hypergradient(dist, params, optimizer, data, tau, settings, gen, engine=engine)
        dist.project_step(grad, 1.0)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"engine": engine, "source": source, "step_s": min(times[1:]), "step_cpu_s": min(cpu_times[1:]),
                      "peak_extra_mib": (peak_rss - base_rss) / 1024, "theta_mib": dist.theta.numel() * 4 / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tau", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2708)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", default="")
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.tau, args.repeats, args.nodes, args.threads)
        return
    rows = {}
    for engine in ("factored", "dense"):
        command = [sys.executable, __file__, "--worker", engine, "--tau", str(args.tau), "--repeats",
                   str(args.repeats), "--nodes", str(args.nodes), "--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows[engine] = json.loads(output.strip().splitlines()[-1])
    fact, dense = rows["factored"], rows["dense"]
    print(f"data: {fact['source']}; tau={args.tau}; theta: {fact['theta_mib']:.0f} MiB (float32, n x n)")
    for row in (fact, dense):
        print(f"  {row['engine']:>8}: one outer step {row['step_s']:.2f} s wall ({row['step_cpu_s']:.2f} s CPU), "
              f"peak extra memory {row['peak_extra_mib']:.0f} MiB")
    print(f"speed-up factored vs dense autograd: {dense['step_s'] / fact['step_s']:.2f}x; "
          f"memory ratio dense / factored: {dense['peak_extra_mib'] / max(fact['peak_extra_mib'], 1.0):.2f}x")


if __name__ == "__main__":
    main()
