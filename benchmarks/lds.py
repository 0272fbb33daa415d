"""Benchmark: time and peak memory of one LDS outer step (tau inner steps + hypergradient) on Cora.

Compares the factored engine (sparse message passing, low-rank d F / d A; the default) with plain
autograd on dense samples, measured in the same run, each in its own process so peak memory is its own.
Uses the Planetoid Cora files under $REPROLAB_DATA/planetoid when present, otherwise a random graph of
Cora's size (2708 nodes, 1433 sparse binary features, 7 classes, ~5.3k edges).

Growth (issue 24): LDS learns a Bernoulli probability for every node pair (theta is a dense n x n matrix,
Sec. 3), so every outer step samples n^2 / 2 edges, projects n^2 / 2 parameters and accumulates d F / d A over
them: the number of nodes n is the cost driver, expected exponent ~2 (message passing on the sampled graph is
only linear in its edges). The factored engine's outer step is timed (CPU time) on random graphs of Cora's
features and average degree at ``--growth-nodes`` (default n/4, n/2, n of ``--nodes``).

    python benchmarks/lds.py [--tau 5] [--repeats 3] [--nodes 2708] [--threads 2] [--growth-nodes 677,1354,2708]
                             [--json]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from growth import emit, growth_record, run_worker

CORA_NODES, CORA_EDGES = 2708, 5278


def _cora_or_synthetic(nodes: int, real: bool = True):
    """Cora (when asked for its 2708 nodes and the files are there), else a random graph of Cora's density:
    1433 sparse binary features, 7 classes and Cora's average degree (5278 edges at 2708 nodes)."""
    import torch

    from reprolab.lds.data import GraphData, read_planetoid

    home = os.environ.get("REPROLAB_DATA")
    if real and home and (Path(home) / "planetoid" / "ind.cora.x").is_file() and nodes == CORA_NODES:
        return read_planetoid(Path(home) / "planetoid", "cora"), "Cora (Planetoid files)"
    gen = torch.Generator().manual_seed(0)
    features = (torch.rand(nodes, 1433, generator=gen) < 0.0127).float()
    features = features / features.sum(1, keepdim=True).clamp_min(1)
    labels = torch.randint(0, 7, (nodes,), generator=gen)
    edges = CORA_EDGES * nodes / CORA_NODES
    adjacency = (torch.rand(nodes, nodes, generator=gen) < edges / (nodes * nodes / 2)).float().triu(1)
    adjacency = adjacency + adjacency.T
    split = [0, nodes * 140 // CORA_NODES, nodes * 390 // CORA_NODES, nodes * 640 // CORA_NODES]
    masks = [torch.zeros(nodes, dtype=torch.bool) for _ in range(4)]
    masks[0][: split[1]], masks[1][split[1] : split[2]], masks[2][split[2] : split[3]] = True, True, True
    masks[3][-(nodes * 1000 // CORA_NODES) :] = True
    return GraphData("synthetic", features, labels, *masks, adjacency=adjacency), f"random graph, {nodes} nodes"


def _outer_steps(data, engine: str, tau: int, repeats: int, clock) -> tuple[float, float, float]:
    """Best time of ``repeats`` outer steps (after one warm-up step), its CPU time, and theta's size in MiB."""
    import torch

    from reprolab.lds.model import DifferentiableAdam, EdgeDistribution, init_gcn
    from reprolab.lds.train import LDSSettings, hypergradient

    dist = EdgeDistribution(data.adjacency)
    gen = torch.Generator().manual_seed(0)
    params = init_gcn(data.features.shape[1], 16, data.num_classes, generator=gen)
    optimizer = DifferentiableAdam()
    settings = LDSSettings(tau=tau)
    times, cpu_times = [], []
    for _ in range(repeats + 1):  # the first step warms up
        start, cpu_start = clock(), time.process_time()
        params, grad, _ = hypergradient(dist, params, optimizer, data, tau, settings, gen, engine=engine)
        dist.project_step(grad, 1.0)
        times.append(clock() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return min(times[1:]), min(cpu_times[1:]), dist.theta.numel() * 4 / 2**20


def _worker(engine: str, tau: int, repeats: int, nodes: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    data, source = _cora_or_synthetic(nodes)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step_s, step_cpu_s, theta_mib = _outer_steps(data, engine, tau, repeats, time.perf_counter)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"measure": "outer_step", "engine": engine, "source": source, "step_s": step_s, "step_cpu_s": step_cpu_s,
            "peak_extra_mib": (peak_rss - base_rss) / 1024, "theta_mib": theta_mib}


def _growth(sizes: list[int], tau: int, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    times = [_outer_steps(_cora_or_synthetic(n, real=False)[0], "factored", tau, repeats, time.process_time)[0]
             for n in sizes]
    return growth_record(f"LDS outer step (factored engine, tau={tau})", "nodes", sizes, times, clock="cpu",
                         threads=threads, expected_exponent=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tau", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=CORA_NODES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--growth-nodes", default="", help="three node counts (default: n/4, n/2, n of --nodes)")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    parser.add_argument("--worker", default="")
    args = parser.parse_args(argv)
    if args.worker:
        emit(_worker(args.worker, args.tau, args.repeats, args.nodes, args.threads), True)
        return
    common = ["--tau", str(args.tau), "--repeats", str(args.repeats), "--nodes", str(args.nodes), "--threads",
              str(args.threads)]
    rows = {engine: run_worker(__file__, ["--worker", engine, *common])[-1] for engine in ("factored", "dense")}
    fact, dense = rows["factored"], rows["dense"]
    ratio = {"measure": "ratio", "source": fact["source"], "tau": args.tau, "threads": args.threads,
             "speedup_factored_vs_dense": dense["step_s"] / fact["step_s"],
             "memory_ratio_dense_vs_factored": dense["peak_extra_mib"] / max(fact["peak_extra_mib"], 1.0)}
    if args.json:
        for row in (fact, dense, ratio):
            emit(row, True)
    else:
        print(f"data: {fact['source']}; tau={args.tau}; theta: {fact['theta_mib']:.0f} MiB (float32, n x n)")
        for row in (fact, dense):
            print(f"  {row['engine']:>8}: one outer step {row['step_s']:.2f} s wall ({row['step_cpu_s']:.2f} s CPU), "
                  f"peak extra memory {row['peak_extra_mib']:.0f} MiB")
        print(f"speed-up factored vs dense autograd: {ratio['speedup_factored_vs_dense']:.2f}x; "
              f"memory ratio dense / factored: {ratio['memory_ratio_dense_vs_factored']:.2f}x")
    n = args.nodes
    sizes = [int(v) for v in args.growth_nodes.split(",")] if args.growth_nodes else [n // 4, n // 2, n]
    emit(_growth(sizes, args.tau, max(1, args.repeats - 1), args.threads), args.json)


if __name__ == "__main__":
    main()
