"""Benchmark: cost of DEMI relative to InfoNCE, measured in the same run, and how a DEMI step grows with the batch.

DEMI with k sub-views evaluates k critics per step, so its training step should cost about k times an InfoNCE
step with the same critic (plus the importance weights, O(N^2)); exact conditional negatives cost about N times
more per conditional term. Prints a table of steps/s and ratios to InfoNCE; exits non-zero if DEMI k costs more
than 1.5 k times InfoNCE (the target), which would point at wasted work.

Growth (issue 24): the cost driver of every contrastive bound is the batch size N, because the critic scores all
N x N (x, y) pairs of a batch (the N - 1 other samples are each sample's negatives, Sec. 2) and DEMI's importance
weights are N x N too. The CPU time of a DEMI k=2 step is measured at ``--growth-batches`` (default 64, 128,
256) for the separable critic (the experiment's default: N embeddings, the N^2 part is one matrix product, so the
exponent lies between 1 and 2) and the concat critic (an MLP on every pair: near 2 once the pairs dominate).

    python benchmarks/demi.py [--steps 60] [--batch 128] [--growth-batches 64,128,256] [--json]
"""

from __future__ import annotations

import argparse
import time

import torch

from growth import emit, growth_record
from reprolab.demi.data import CorrelatedGaussian
from reprolab.demi.train import build_estimator, estimate_on_batch


def steps_per_second(
    name: str, k: int, critic: str, steps: int, batch: int, exact: int = 0, clock=time.perf_counter, warmup: int = 5
) -> float:
    torch.manual_seed(0)
    bench = CorrelatedGaussian(20, 20.0)
    estimator = build_estimator(name, 20, k=k, critic=critic, hidden=128, embed=64)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=5e-4)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        x, y = bench.sample(batch, gen)
        loss = -estimate_on_batch(estimator, x, y, bench, gen, exact)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = clock()
    for _ in range(steps):
        step()
    return steps / (clock() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--growth-batches", default="64,128,256", help="three batch sizes for the growth")
    parser.add_argument("--growth-steps", type=int, default=5, help="timed steps per growth size")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ok = True
    rows = []
    for critic in ("separable", "concat"):
        base = steps_per_second("infonce", 1, critic, args.steps, args.batch)
        rows.append({"estimator": "infonce", "k": 1, "critic": critic, "steps_per_s": base, "cost_vs_infonce": 1.0})
        for k in (2, 4):
            rate = steps_per_second("demi", k, critic, args.steps, args.batch)
            ok &= base / rate <= 1.5 * k
            rows.append({"estimator": "demi", "k": k, "critic": critic, "steps_per_s": rate,
                         "cost_vs_infonce": base / rate})
    exact_rate = steps_per_second("demi", 2, "separable", max(5, args.steps // 10), args.batch, exact=args.batch - 1)
    base = rows[0]["steps_per_s"]
    rows.append({"estimator": "demi_exact", "k": 2, "critic": "separable", "steps_per_s": exact_rate,
                 "cost_vs_infonce": base / exact_rate})
    if not args.json:
        print(f"{'estimator':<28}{'steps/s':>10}{'cost vs InfoNCE':>18}   (batch {args.batch}, 1 thread)")
    for row in rows:
        row = {"measure": "cost_vs_infonce", "batch": args.batch, "threads": 1, **row}
        if args.json:
            emit(row, True)
        else:
            label = row["estimator"] + (f" k={row['k']}" if row["estimator"] != "infonce" else "")
            print(f"{label + '/' + row['critic']:<28}{row['steps_per_s']:>10.1f}{row['cost_vs_infonce']:>18.2f}")
    target = {"measure": "target", "target": "DEMI k <= 1.5 k x InfoNCE", "met": bool(ok)}
    emit(target, args.json) if args.json else print(target["target"] + ":", "met" if ok else "MISSED")
    sizes = [int(n) for n in args.growth_batches.split(",")]
    for critic, expected in (("separable", "1-2"), ("concat", 2)):
        times = [1.0 / steps_per_second("demi", 2, critic, args.growth_steps, n, clock=time.process_time, warmup=1)
                 for n in sizes]
        emit(growth_record(f"DEMI k=2 training step, {critic} critic", "batch", sizes, times, clock="cpu",
                           threads=1, expected_exponent=expected), args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
