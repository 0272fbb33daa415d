"""Benchmark: batched enclosing-subgraph extraction vs per-triple extraction, same triples, same run.

Usage::

    python benchmarks/compile_kg.py [--triples 400] [--hops 3] [--data /work/shared/data]
    python benchmarks/compile_kg.py --scaling [--json] [--sizes 100000 300000 1000000] [--queries 1000]

``--scaling`` (issue 24): how extraction time grows with the size of the graph at a fixed set of queries.
The graph is ``k`` disjoint copies of the family KG's training graph (entity ids shifted per copy), so
every query's subgraph is the same at every size; the queries are ``--queries`` triples of the first copy
(its triples and as many head/tail corruptions, the mix a training batch holds). For each size and each
subgraph kind it times the batched extractor (batches of ``--batch``) and the lean per-query BFS
(:class:`PerTripleExtractor`), CPU seconds of this process (best of ``--repeats``; single-threaded code,
and wall time on a shared machine measures the other jobs), and fits ``time ~ triples^p`` by least squares in
log-log. With ``--json`` it prints one JSON object per size and kind: ``graph_triples``, ``batched_s``,
``baseline_s``, ``ratio`` (baseline / batched), the subgraph sizes, and the fitted exponents
``batched_exponent`` / ``baseline_exponent`` of that kind (the same on each of its lines), then the growth records
of both extractors (``"measure": "growth"``, the format of every benchmark's growth; see ``benchmarks/growth.py``).
The graph's size is the axis because it is what must NOT drive the cost: at fixed queries each subgraph is the
same, so the work is proportional to the subgraphs returned and the expected exponent is 0.

``--bigru``: one training pass (forward + backward) of CoMPILE's BiGRU readout on the CPU, our packed loop
(``reprolab.compile_kg.model._packed_bigru``) against ``torch.nn.GRU`` on the same packed batch, CPU seconds, best
of ``--repeats``, one thread. The batch is 32 subgraphs whose node counts are those of one fb237_v1 training batch
(2 to 1,015 nodes), scaled by 1/4, 1/2 and 1; it prints one JSON line per scale (``ratio`` = torch / ours,
``bit_identical``: the two outputs and input gradients compared with ``torch.equal``) and
the growth of both in the batch's longest sequence (ATen's packed backward fills a whole-batch gradient per step:
quadratic; ours: linear).

Three extractors cut the same subgraphs (nodes, double-radius labels, edges, target edge removed):

* ``batched``: :class:`reprolab.compile_kg.SubgraphExtractor`, all triples of a batch at once
  (sparse-product BFS over a ``B x N`` frontier, vectorised edge gathering);
* ``grail-style``: the per-triple procedure of GraIL's code, re-implemented here: BFS by repeated sparse
  vector-matrix products from each root, the induced subgraph sliced out of the adjacency matrix, and the
  double-radius labels from ``scipy.sparse.csgraph.shortest_path`` on the subgraph with the other root
  removed;
* ``python-bfs``: :class:`reprolab.compile_kg.PerTripleExtractor`, a lean plain-Python BFS over
  adjacency lists built once (a stronger baseline than GraIL's).

It prints the time per 1000 triples of each and the speed-up ratios (target in the issue: >= 10x over
a straightforward per-triple extraction), for the embedded family KG and, when the GraIL splits are
under ``--data``, for their training graphs, in the undirected (GraIL) and directed (CoMPILE) variants.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import shortest_path

from growth import emit, fitted_exponent, growth_record
from reprolab.compile_kg.data import KnowledgeGraph, family_inductive_split, load_grail_split
from reprolab.compile_kg.model import _packed_bigru
from reprolab.compile_kg.subgraph import PerTripleExtractor, SubgraphExtractor


class GraILStyleExtractor:
    """Per-triple extraction the way GraIL's code does it (sparse BFS per root, csgraph labelling)."""

    def __init__(self, graph: KnowledgeGraph, *, hops: int, directed: bool) -> None:
        n = graph.num_entities
        forward = sp.csr_matrix((np.ones(len(graph.triples)), (graph.heads, graph.tails)), shape=(n, n))
        self.out_adj = (forward > 0).astype(np.float64).tocsr()
        self.in_adj = self.out_adj.T.tocsr()
        self.both = ((forward + forward.T) > 0).astype(np.float64).tocsr()
        self.graph, self.hops, self.directed, self.n = graph, hops, directed, n

    def _neighbourhood(self, adjacency: sp.csr_matrix, root: int, blocked: int) -> set[int]:
        visited = {root}
        frontier = {root}
        for _ in range(self.hops):
            cols = list(frontier)
            vector = sp.csr_matrix((np.ones(len(cols)), (np.zeros(len(cols)), cols)), shape=(1, self.n))
            reached = set((vector @ adjacency).indices.tolist()) - visited - {blocked}
            if not reached:
                break
            visited |= reached
            frontier = reached
        return visited

    def __call__(self, triple: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
        h, r, t = (int(v) for v in triple)
        adj_h, adj_t = (self.out_adj, self.in_adj) if self.directed else (self.both, self.both)
        nodes = (self._neighbourhood(adj_h, h, t) & self._neighbourhood(adj_t, t, h)) | {h, t}
        order = [h, t] + sorted(nodes - {h, t})
        sub = (self.out_adj if self.directed else self.both)[order][:, order]
        keep_h = np.arange(len(order)) != 1
        keep_t = np.arange(len(order)) != 0
        d_h = shortest_path(sub[keep_h][:, keep_h], directed=self.directed, unweighted=True, indices=0)
        reverse = sub.T.tocsr() if self.directed else sub
        d_t = shortest_path(reverse[keep_t][:, keep_t], directed=self.directed, unweighted=True, indices=0)
        local = {node: i for i, node in enumerate(order)}
        edges = []
        for node in order:
            start, stop = self.graph.out_ptr[node], self.graph.out_ptr[node + 1]
            for edge in self.graph.out_order[start:stop]:
                u, rel, v = self.graph.triples[edge].tolist()
                if v in local and (u, rel, v) != (h, r, t):
                    edges.append((local[u], rel, local[v]))
        return d_h, d_t, edges


def _time(fn, repeats: int = 1, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def bench(name: str, graph: KnowledgeGraph, triples: np.ndarray, hops: int, batch: int) -> None:
    grail_by_direction = {d: GraILStyleExtractor(graph, hops=hops, directed=d) for d in (False, True)}

    def grail_fallback(x: np.ndarray) -> tuple:
        """The directed subgraph, or the undirected one where it has no edge (CoMPILE v2's rule)."""
        found = grail_by_direction[True](x)
        return found if found[2] else grail_by_direction[False](x)

    for kind in ("undirected", "directed", "directed_fallback"):
        directed, fallback = kind != "undirected", kind == "directed_fallback"
        batched = SubgraphExtractor(graph, hops=hops, directed=directed, add_query_edge=False, fallback=fallback)
        grail = grail_fallback if fallback else grail_by_direction[directed]
        python = PerTripleExtractor(graph, hops=hops, directed=directed, fallback=fallback)
        t_batched = _time(lambda b=batched: [b(triples[i : i + batch]) for i in range(0, len(triples), batch)], 3)
        t_grail = _time(lambda g=grail: [g(x) for x in triples])
        t_python = _time(lambda p=python: [p(x) for x in triples])
        per_k = 1000.0 / len(triples)
        sizes = batched(triples[:batch])
        print(
            f"{name:<12} {kind:<17} nodes/sg {sizes.num_nodes / sizes.num_graphs:7.1f}"
            f" | batched {t_batched * per_k:8.3f} s/1k | grail-style {t_grail * per_k:8.3f} s/1k"
            f" ({t_grail / t_batched:6.1f}x) | python-bfs {t_python * per_k:8.3f} s/1k ({t_python / t_batched:5.1f}x)"
        )


def tiled_graph(base: KnowledgeGraph, copies: int) -> KnowledgeGraph:
    """``copies`` disjoint copies of ``base``: copy ``i`` has entity ids shifted by ``i * N``."""
    shift = np.repeat(np.arange(copies, dtype=np.int64) * base.num_entities, len(base.triples))
    triples = np.tile(base.triples, (copies, 1))
    triples[:, 0] += shift
    triples[:, 2] += shift
    return KnowledgeGraph(triples, base.num_entities * copies, base.num_relations)


def scaling_queries(base: KnowledgeGraph, count: int, seed: int = 0) -> np.ndarray:
    """``count`` triples of the first copy: half its triples, half head/tail corruptions of them."""
    rng = np.random.default_rng(seed)
    positives = base.triples[rng.choice(len(base.triples), (count + 1) // 2, replace=count > len(base.triples))]
    negatives = positives[: count // 2].copy()
    side = rng.integers(0, 2, len(negatives)) * 2
    negatives[np.arange(len(negatives)), side] = rng.integers(0, base.num_entities, len(negatives))
    return np.concatenate([positives, negatives])


def scaling(args: argparse.Namespace) -> None:
    base = family_inductive_split(train_families=60, missing=0.0).train_graph
    queries = scaling_queries(base, args.queries)
    kinds = ("undirected", "directed_fallback")
    rows: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for size in args.sizes:
        graph = tiled_graph(base, max(1, math.ceil(size / len(base.triples))))
        python_by_kind = {}
        for kind in kinds:
            directed, fallback = kind != "undirected", kind == "directed_fallback"
            batched = SubgraphExtractor(
                graph, hops=args.hops, directed=directed, add_query_edge=False, fallback=fallback
            )
            python_by_kind[kind] = PerTripleExtractor(graph, hops=args.hops, directed=directed, fallback=fallback)
            python = python_by_kind[kind]

            def run_batched(b: SubgraphExtractor = batched) -> None:
                for start in range(0, len(queries), args.batch):
                    b(queries[start : start + args.batch])

            # CPU time of this process: on a shared machine, wall time mostly measures the other jobs
            t_batched = _time(run_batched, args.repeats, time.process_time)
            t_python = _time(lambda p=python: [p(x) for x in queries], args.repeats, time.process_time)
            batched.sizes = type(batched.sizes)()
            run_batched()
            sizes = batched.sizes.summary()
            rows[kind].append({
                "measure": "scaling", "kind": kind, "graph_triples": len(graph.triples),
                "graph_entities": graph.num_entities,
                "queries": len(queries), "hops": args.hops, "batch": args.batch,
                "batched_s": round(t_batched, 4), "baseline_s": round(t_python, 4),
                "ratio": round(t_python / t_batched, 2),
                "nodes_per_subgraph": round(sizes["nodes_mean"], 2),
                "edges_per_subgraph": round(sizes["edges_mean"], 2),
                "max_nodes_per_subgraph": int(sizes["nodes_max"]),
            })
            if not args.json:
                row = rows[kind][-1]
                print(f"{row['graph_triples']:>9} triples {kind:<17} batched {t_batched:7.3f} s | per-query BFS"
                      f" {t_python:7.3f} s | ratio {row['ratio']:6.2f}x | nodes/sg {row['nodes_per_subgraph']}")
        del python_by_kind
    for kind in kinds:
        triples = [row["graph_triples"] for row in rows[kind]]
        exponents = {
            "batched_exponent": round(fitted_exponent(triples, [row["batched_s"] for row in rows[kind]]), 3),
            "baseline_exponent": round(fitted_exponent(triples, [row["baseline_s"] for row in rows[kind]]), 3),
        }
        for row in rows[kind]:
            row.update(exponents)
            if args.json:
                print(json.dumps(row))
        for name, key, expected in (("batched SubgraphExtractor", "batched_s", 0),
                                    ("per-query BFS (PerTripleExtractor)", "baseline_s", 0)):
            emit(growth_record(f"{name}, {kind}, {len(queries)} queries", "graph triples", triples,
                               [row[key] for row in rows[kind]], clock="cpu", expected_exponent=expected), args.json)


# node counts of the 32 subgraphs (16 positives, 16 corruptions) of one CoMPILE training batch on fb237_v1
FB237_V1_BATCH_NODES = (2, 2, 2, 2, 2, 2, 2, 3, 4, 5, 5, 6, 7, 7, 11, 15, 16, 24, 60, 61, 72, 77, 92, 100, 314, 316,
                        388, 399, 732, 762, 947, 1015)


def bigru(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    width = 32  # CoMPILE's emb_dim in every preset
    gru = torch.nn.GRU(width, width, batch_first=True, bidirectional=True)
    longest, times = [], {"torch": [], "ours": []}
    for scale in (0.25, 0.5, 1.0):
        lengths = torch.tensor([max(1, round(n * scale)) for n in FB237_V1_BATCH_NODES])
        message = torch.randn(int(lengths.sum()), width)
        initial = torch.randn(2, len(lengths), width)

        def step(run, lengths=lengths, message=message, initial=initial) -> tuple[torch.Tensor, torch.Tensor]:
            x = message.clone().requires_grad_()
            padded = torch.nn.utils.rnn.pad_sequence(list(torch.split(x, lengths.tolist())), batch_first=True)
            packed = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
            out = run(packed).data
            out.sum().backward()
            return out.detach(), x.grad

        row = {"measure": "bigru", "subgraphs": len(lengths), "nodes": int(lengths.sum()),
               "longest": int(lengths.max()), "width": width, "threads": 1}
        runs = {"torch": lambda p, h=initial: gru(p, h)[0], "ours": lambda p, h=initial: _packed_bigru(gru, p, h)}
        for name, run in runs.items():
            times[name].append(_time(lambda r=run: step(r), args.repeats, time.process_time))
            row[f"{name}_s"] = round(times[name][-1], 4)
        row["ratio"] = round(row["torch_s"] / row["ours_s"], 2)
        reference, ours = step(runs["torch"]), step(runs["ours"])
        row["bit_identical"] = all(torch.equal(a, b) for a, b in zip(reference, ours))  # output and input gradient
        longest.append(row["longest"])
        print(json.dumps(row))
    for name, expected in (("torch", 2), ("ours", 1)):
        emit(growth_record(f"CoMPILE BiGRU readout, forward + backward ({name})", "longest subgraph (nodes)",
                           longest, times[name], clock="cpu", expected_exponent=expected), True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=400)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--data", default=os.environ.get("REPROLAB_DATA", "/work/shared/data"))
    parser.add_argument("--scaling", action="store_true", help="time vs graph size at fixed queries (issue 24)")
    parser.add_argument("--json", action="store_true", help="with --scaling: one JSON line per size and kind")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bigru", action="store_true", help="CoMPILE's BiGRU readout: our packed loop vs nn.GRU")
    args = parser.parse_args(argv)
    if args.bigru:
        bigru(args)
        return
    if args.scaling:
        scaling(args)
        return
    rng = np.random.default_rng(0)
    split = family_inductive_split()
    picks = rng.choice(len(split.train_targets), min(args.triples, len(split.train_targets)), replace=False)
    print(f"hops={args.hops}, {args.triples} training triples per graph, batch {args.batch}")
    print("ratios = baseline time / batched time on the same triples")
    bench("family", split.train_graph, split.train_targets[picks], args.hops, args.batch)
    root = Path(args.data) / "grail_inductive"
    for name in ("WN18RR_v1", "nell_v1", "fb237_v1"):
        if (root / name).is_dir():
            real = load_grail_split(root, name)
            picks = rng.choice(len(real.train_targets), min(args.triples, len(real.train_targets)), replace=False)
            bench(name, real.train_graph, real.train_targets[picks], args.hops, args.batch)


if __name__ == "__main__":
    main()
