"""DiffPool cost: peak memory of a PROTEINS epoch before/after size-bucketed batching, time vs padded size
(fitted exponent), and throughput vs a plain PyG-example DiffPool, each measured in the same run.

1. Memory (PROTEINS, 1113 graphs up to 620 nodes, if $REPROLAB_DATA has it; else the synthetic set): one
   training epoch (batch 20) plus evaluation of every graph, in a fresh subprocess each, reporting the
   process's peak resident memory. *Before* reproduces the previous pipeline's shapes: every graph padded to
   the set's largest (``to_dense``), random batches sliced from that tensor, evaluation in batches of 256.
   *After* is the pipeline now: random batches built per batch and padded to their own largest graph
   (``GraphSet.batch``), evaluation in size-sorted batches; *bucketed* adds the size-bucketed order
   (``size_bucketed_batches``, ``bucket_pool=8``).
2. Scaling (issue 24): our DiffPool's training step on the same batches padded to N, 2N and 4N nodes; time per
   step and the fitted exponent of time in N. The padded node count is the cost driver because DiffPool works on
   dense B x N x N adjacencies (the coarsened adjacency S^T A S costs O(B N^2 C)); expected exponent ~2.
3. Throughput: our ``DiffPoolNet`` vs a plain PyG-example DiffPool on ENZYMES (memory = bytes autograd saves).

    python benchmarks/diffpool.py                 # all three
    python benchmarks/diffpool.py --json          # one JSON line per measurement
    python benchmarks/diffpool.py --only memory   # memory | scaling | throughput
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from growth import emit, growth_record, run_worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


class PlainDiffPool(nn.Module):
    """Baseline: PyG-example style DiffPool (unmasked BatchNorm1d, one pooling level, mean readout)."""

    def __init__(self, in_features: int, num_classes: int, clusters: int, hidden: int) -> None:
        super().__init__()
        from torch_geometric.nn import DenseSAGEConv

        def gnn(inp: int, out: int) -> nn.ModuleList:
            sizes = [inp, hidden, hidden, out]
            return nn.ModuleList(DenseSAGEConv(a, b) for a, b in zip(sizes, sizes[1:]))

        self.pool_gnn, self.embed_gnn = gnn(in_features, clusters), gnn(in_features, hidden)
        self.embed_gnn2 = gnn(hidden, hidden)
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(6))
        self.lin = nn.Linear(hidden, num_classes)

    def _run(
        self, convs: nn.ModuleList, norms: list[nn.Module], x: torch.Tensor, adj: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        for i, conv in enumerate(convs):
            x = conv(x, adj, mask)
            if i < 2:
                b, n, f = x.shape
                x = norms[i](F.relu(x).reshape(-1, f)).reshape(b, n, f)
        return x

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch_geometric.nn import dense_diff_pool

        s = self._run(self.pool_gnn, [self.norms[0], self.norms[1]], x, adj, mask)
        z = self._run(self.embed_gnn, [self.norms[2], self.norms[3]], x, adj, mask)
        x, adj, link, entropy = dense_diff_pool(z, adj, s, mask)
        x = self._run(self.embed_gnn2, [self.norms[4], self.norms[5]], x, adj, None)
        return self.lin(x.mean(dim=1)), link + entropy


def _recorder(storages: dict[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A saved-tensor hook that records the byte size of every storage autograd keeps for backward."""

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    return pack


def _load(max_nodes: int, synthetic: int = 0) -> tuple[Any, Any, str]:
    from reprolab.diffpool.data import make_hierarchical_communities, read_tu_dataset, to_dense

    home = os.environ.get("REPROLAB_DATA")
    folder = Path(home) / "TUDataset" / "ENZYMES" if home else None
    if synthetic:
        graphs, name = make_hierarchical_communities(synthetic, seed=0), "synthetic"
    elif folder is not None and folder.is_dir():
        graphs, name = read_tu_dataset(folder, "ENZYMES"), "ENZYMES"
    else:
        graphs, name = make_hierarchical_communities(480, seed=0), "synthetic"
    return to_dense(graphs, max(max_nodes, graphs.max_nodes)), graphs, name


def worker(impl: str, steps: int, batch_size: int, max_nodes: int, device: str, synthetic: int = 0) -> dict:
    """Train ``impl`` for ``steps`` batches; return graphs/s and peak memory."""
    from reprolab.diffpool.model import DiffPoolNet, cluster_counts

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dense, graphs, name = _load(max_nodes, synthetic)
    dense = dense.to(device)
    n = dense.x.shape[1]
    clusters = cluster_counts(graphs.max_nodes, 0.1, 1)[0]
    if impl == "ours":
        model = DiffPoolNet(graphs.num_features, graphs.num_classes, graphs.max_nodes, hidden=30, embed=30,
                            assign_ratio=0.1)
    else:
        model = PlainDiffPool(graphs.num_features, graphs.num_classes, clusters, hidden=30)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done, elapsed, saved = 0, 0.0, 0.0
    for step in range(steps + 2):
        index = torch.randint(len(dense), (batch_size,), generator=generator).to(device)
        x, adj, mask, y = dense.x[index], dense.adj[index], dense.mask[index], dense.y[index]
        start = time.perf_counter()
        optimizer.zero_grad()
        storages: dict[int, int] = {}
        with torch.autograd.graph.saved_tensors_hooks(_recorder(storages), lambda tensor: tensor):
            if impl == "ours":
                out = model(x, adj, mask)
                loss = F.cross_entropy(out.logits, y) + out.auxiliary()
            else:
                logits, auxiliary = model(x, adj, mask)
                loss = F.cross_entropy(logits, y) + auxiliary
        saved = max(saved, sum(storages.values()) / 2**20)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= 2:  # two warm-up steps
            elapsed += time.perf_counter() - start
            done += batch_size
    rss_mb = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else saved
    return {"impl": impl, "dataset": name, "padded_nodes": n, "graphs_per_s": done / elapsed, "peak_mb": peak_mb,
            "rss_growth_mb": rss_mb}


def _memory_graphs(synthetic: int = 0) -> tuple[Any, str]:
    from reprolab.diffpool.data import make_hierarchical_communities, read_tu_dataset

    home = os.environ.get("REPROLAB_DATA")
    folder = Path(home) / "TUDataset" / "PROTEINS" if home else None
    if synthetic:
        return make_hierarchical_communities(synthetic, seed=0), "synthetic"
    if folder is not None and folder.is_dir():
        return read_tu_dataset(folder, "PROTEINS", features="labels"), "PROTEINS"
    return make_hierarchical_communities(480, seed=0), "synthetic"


def memory_worker(mode: str, batch_size: int, synthetic: int = 0) -> dict:
    """One training epoch + evaluation of every graph, the ``before`` (pad to the set's largest) or ``after``
    (per-batch padding, size-bucketed) way; returns CPU seconds and the peak resident memory."""
    from reprolab.diffpool.data import size_bucketed_batches, to_dense
    from reprolab.diffpool.model import DiffPoolNet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    graphs, name = _memory_graphs(synthetic)
    model = DiffPoolNet(graphs.num_features, graphs.num_classes, graphs.max_nodes, hidden=30, embed=30,
                        assign_ratio=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    start = time.process_time()
    if mode == "before":
        dense = to_dense(graphs)
        batches = torch.randperm(len(graphs), generator=generator).split(batch_size)
        fetch = lambda index: (dense.x[index], dense.adj[index], dense.mask[index], dense.y[index])  # noqa: E731
        eval_batches = torch.arange(len(graphs)).split(256)
    else:
        batches = size_bucketed_batches(graphs.sizes(), batch_size, generator, 8 if mode == "bucketed" else 0)

        def fetch(index: torch.Tensor) -> tuple[torch.Tensor, ...]:
            batch = graphs.batch(index)
            return batch.x, batch.adj, batch.mask, batch.y

        eval_batches = torch.argsort(graphs.sizes(), stable=True).split(64)
    model.train()
    for index in batches:
        if len(index) < 2:
            continue
        x, adj, mask, y = fetch(index)
        out = model(x, adj, mask)
        loss = F.cross_entropy(out.logits, y) + out.auxiliary()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for index in eval_batches:
            x, adj, mask, _ = fetch(index)
            model(x, adj, mask)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"measure": "memory", "mode": mode, "dataset": name, "graphs": len(graphs), "batch_size": batch_size,
            "largest_graph": graphs.max_nodes, "cpu_s": time.process_time() - start, "peak_rss_mb": peak_mb}


def scaling_worker(steps: int, batch_size: int, synthetic: int = 0) -> list[dict]:
    """Seconds per training step of our DiffPool on fixed batches padded to N, 2N, 4N nodes; fitted exponent."""
    from reprolab.diffpool.model import DiffPoolNet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dense, graphs, name = _load(0, synthetic)
    base = dense.x.shape[1]
    rows = []
    for padded in (base, 2 * base, 4 * base):
        model = DiffPoolNet(graphs.num_features, graphs.num_classes, graphs.max_nodes, hidden=30, embed=30,
                            assign_ratio=0.1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        elapsed = 0.0
        for step in range(steps + 1):
            index = torch.randint(len(dense), (batch_size,), generator=generator)
            x = F.pad(dense.x[index], (0, 0, 0, padded - base))
            adj = F.pad(dense.adj[index], (0, padded - base, 0, padded - base))
            mask = F.pad(dense.mask[index], (0, padded - base))
            start = time.process_time()
            out = model(x, adj, mask)
            loss = F.cross_entropy(out.logits, dense.y[index]) + out.auxiliary()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step:  # one warm-up step
                elapsed += time.process_time() - start
        rows.append({"measure": "scaling", "dataset": name, "padded_nodes": padded, "s_per_step": elapsed / steps})
    record = growth_record(f"DiffPool training step, {name}, batch {batch_size}", "padded nodes",
                           [row["padded_nodes"] for row in rows], [row["s_per_step"] for row in rows], clock="cpu",
                           threads=1, expected_exponent=2)
    for row in rows:
        row["fitted_exponent"] = record["exponent"]
    return [*rows, record]


def _spawn_json(extra: list[str]) -> list[dict]:
    return run_worker(__file__, extra)


def _spawn(impl: str, args: argparse.Namespace, max_nodes: int) -> dict:
    return run_worker(__file__, ["--worker", impl, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                                 "--max-nodes", str(max_nodes), "--device", args.device, "--synthetic",
                                 str(args.synthetic)])[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-nodes", type=int, default=0)
    parser.add_argument("--synthetic", type=int, default=0,
                        help="N > 0: N synthetic graphs instead of PROTEINS / ENZYMES (quick checks)")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    parser.add_argument("--only", choices=["memory", "scaling", "throughput"], default=None)
    parser.add_argument("--worker", choices=["ours", "plain", "before", "after", "bucketed", "scaling"], default=None)
    args = parser.parse_args(argv)
    if args.worker in ("ours", "plain"):
        print(json.dumps(worker(args.worker, args.steps, args.batch_size, args.max_nodes, args.device, args.synthetic)))
        return
    if args.worker in ("before", "after", "bucketed"):
        print(json.dumps(memory_worker(args.worker, args.batch_size, args.synthetic)))
        return
    if args.worker == "scaling":
        for row in scaling_worker(args.steps, args.batch_size, args.synthetic):
            print(json.dumps(row))
        return
    common = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--synthetic", str(args.synthetic)]
    if args.only in (None, "memory"):
        before, after, bucketed = (_spawn_json(["--worker", mode, *common])[0]
                                   for mode in ("before", "after", "bucketed"))
        if args.json:
            for row in (before, after, bucketed):
                print(json.dumps(row))
        else:
            print(f"memory: {before['dataset']}, {before['graphs']} graphs up to {before['largest_graph']} nodes, "
                  f"one training epoch (batch {args.batch_size}) + evaluation of every graph, CPU, 1 thread")
            print(f"{'batching':<52}{'peak RSS MB':>12}{'CPU s':>8}")
            for row, label in ((before, "before: every graph padded to the largest"),
                               (after, "after: random batches, each padded to its largest"),
                               (bucketed, "after, size-bucketed order (bucket_pool=8)")):
                print(f"{label:<52}{row['peak_rss_mb']:>12.0f}{row['cpu_s']:>8.1f}")
        for row in (after, bucketed):
            ratio = {"measure": "memory_ratio", "mode": row["mode"], "baseline": "before",
                     "dataset": row["dataset"], "memory_ratio": row["peak_rss_mb"] / before["peak_rss_mb"],
                     "cpu_ratio": row["cpu_s"] / before["cpu_s"]}
            if args.json:
                emit(ratio, True)
            else:
                print(f"memory ratio {row['mode']}/before: {ratio['memory_ratio']:.2f}; "
                      f"CPU-time ratio: {ratio['cpu_ratio']:.2f}")
    if args.only in (None, "scaling"):
        *rows, record = _spawn_json(["--worker", "scaling", *common])
        for row in rows:
            print(json.dumps(row) if args.json else
                  f"scaling: padded to {row['padded_nodes']:>4} nodes: {1000 * row['s_per_step']:.1f} ms per step")
        emit(record, args.json)
    if args.only in (None, "throughput"):
        _throughput(args)


def _throughput(args: argparse.Namespace) -> None:
    ours, plain = _spawn("ours", args, 0), _spawn("plain", args, 0)
    if args.json:
        ratio = {"measure": "throughput_ratio", "dataset": ours["dataset"], "baseline": "plain PyG-example DiffPool",
                 "batch_size": args.batch_size,
                 "throughput_ratio": ours["graphs_per_s"] / plain["graphs_per_s"],
                 "memory_ratio": ours["peak_mb"] / max(plain["peak_mb"], 1e-9)}
        for row in ({"measure": "throughput", **ours}, {"measure": "throughput", **plain}, ratio):
            print(json.dumps(row))
        return
    print(f"throughput: {ours['dataset']}, batch {args.batch_size}, padded to {ours['padded_nodes']} nodes, "
          f"{args.device}")
    memory = "peak MB" if args.device.startswith("cuda") else "saved MB"
    print(f"{'implementation':<28}{'graphs/s':>10}{memory:>10}{'RSS+ MB':>10}")
    for row, label in ((ours, "reprolab DiffPoolNet"), (plain, "plain PyG-example DiffPool")):
        print(f"{label:<28}{row['graphs_per_s']:>10.1f}{row['peak_mb']:>10.1f}{row['rss_growth_mb']:>10.1f}")
    print(f"throughput ratio ours/plain: {ours['graphs_per_s'] / plain['graphs_per_s']:.2f}; "
          f"memory ratio ours/plain: {ours['peak_mb'] / max(plain['peak_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
