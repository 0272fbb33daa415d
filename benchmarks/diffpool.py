"""DiffPool training throughput (graphs/s) and peak memory vs a plain PyG-example DiffPool, same run.

Memory on CPU is the bytes of the tensors autograd saves for the backward pass in one training step
(the activations, which is what grows with the batch and with N^2; counted once per storage) and, for
reference, the growth of the process's peak resident set; on CUDA it is ``max_memory_allocated``.

The baseline is a plain model assembled the way PyG's dense DiffPool example does it: ``DenseSAGEConv``
layers with ``BatchNorm1d`` applied to every (padded) node row, ``dense_diff_pool`` and a mean readout,
with the same widths and cluster count as ours. Each implementation trains in a fresh subprocess so
that its peak resident memory (CPU) or peak allocated memory (CUDA) is its own. A second table shows the
O(N^2) cost of dense pooling: our model on the same graphs padded to growing ``max_nodes``.

    python benchmarks/diffpool.py                 # ENZYMES if $REPROLAB_DATA has it, else synthetic
    python benchmarks/diffpool.py --steps 40 --batch-size 20 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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


def _load(max_nodes: int) -> tuple[Any, Any, str]:
    from reprolab.diffpool.data import make_hierarchical_communities, read_tu_dataset, to_dense

    home = os.environ.get("REPROLAB_DATA")
    folder = Path(home) / "TUDataset" / "ENZYMES" if home else None
    if folder is not None and folder.is_dir():
        graphs, name = read_tu_dataset(folder, "ENZYMES"), "ENZYMES"
    else:
        graphs, name = make_hierarchical_communities(480, seed=0), "synthetic"
    return to_dense(graphs, max(max_nodes, graphs.max_nodes)), graphs, name


def worker(impl: str, steps: int, batch_size: int, max_nodes: int, device: str) -> dict:
    """Train ``impl`` for ``steps`` batches; return graphs/s and peak memory."""
    from reprolab.diffpool.model import DiffPoolNet, cluster_counts

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dense, graphs, name = _load(max_nodes)
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


def _spawn(impl: str, args: argparse.Namespace, max_nodes: int) -> dict:
    command = [sys.executable, __file__, "--worker", impl, "--steps", str(args.steps), "--batch-size",
               str(args.batch_size), "--max-nodes", str(max_nodes), "--device", args.device]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-nodes", type=int, default=0)
    parser.add_argument("--worker", choices=["ours", "plain"], default=None)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.batch_size, args.max_nodes, args.device)))
        return
    ours, plain = _spawn("ours", args, 0), _spawn("plain", args, 0)
    print(f"dataset {ours['dataset']}, batch {args.batch_size}, padded to {ours['padded_nodes']} nodes, {args.device}")
    memory = "peak MB" if args.device.startswith("cuda") else "saved MB"
    print(f"{'implementation':<28}{'graphs/s':>10}{memory:>10}{'RSS+ MB':>10}")
    for row, label in ((ours, "reprolab DiffPoolNet"), (plain, "plain PyG-example DiffPool")):
        print(f"{label:<28}{row['graphs_per_s']:>10.1f}{row['peak_mb']:>10.1f}{row['rss_growth_mb']:>10.1f}")
    print(f"throughput ratio ours/plain: {ours['graphs_per_s'] / plain['graphs_per_s']:.2f}; "
          f"memory ratio ours/plain: {ours['peak_mb'] / max(plain['peak_mb'], 1e-9):.2f}")
    print("\nO(N^2) dense pooling: ours, same graphs padded to max_nodes")
    print(f"{'max_nodes':>10}{'graphs/s':>10}{memory:>10}{'adj MB/batch':>14}")
    base = ours["padded_nodes"]
    for padded in (base, 2 * base, 4 * base):
        row = _spawn("ours", args, padded)
        adj_mb = args.batch_size * padded * padded * 4 / 2**20
        print(f"{padded:>10}{row['graphs_per_s']:>10.1f}{row['peak_mb']:>10.1f}{adj_mb:>14.2f}")


if __name__ == "__main__":
    main()
