"""Benchmark: cost of DEMI relative to InfoNCE, measured in the same run.

DEMI with k sub-views evaluates k critics per step, so its training step should cost about k times an InfoNCE
step with the same critic (plus the importance weights, O(N^2)); exact conditional negatives cost about N times
more per conditional term. Prints a table of steps/s and ratios to InfoNCE; exits non-zero if DEMI k costs more
than 1.5 k times InfoNCE (the target), which would point at wasted work.

    python benchmarks/demi.py [--steps 60] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from reprolab.demi.data import CorrelatedGaussian
from reprolab.demi.train import build_estimator, estimate_on_batch


def steps_per_second(name: str, k: int, critic: str, steps: int, batch: int, exact: int = 0) -> float:
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

    for _ in range(5):  # warm-up
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ok = True
    print(f"{'estimator':<28}{'steps/s':>10}{'cost vs InfoNCE':>18}")
    for critic in ("separable", "concat"):
        base = steps_per_second("infonce", 1, critic, args.steps, args.batch)
        print(f"{'infonce/' + critic:<28}{base:>10.1f}{1.0:>18.2f}")
        for k in (2, 4):
            rate = steps_per_second("demi", k, critic, args.steps, args.batch)
            ratio = base / rate
            ok &= ratio <= 1.5 * k
            print(f"{f'demi k={k}/' + critic:<28}{rate:>10.1f}{ratio:>18.2f}")
    exact_rate = steps_per_second("demi", 2, "separable", max(5, args.steps // 10), args.batch, exact=args.batch - 1)
    base = steps_per_second("infonce", 1, "separable", args.steps, args.batch)
    print(f"{'demi exact k=2/separable':<28}{exact_rate:>10.1f}{base / exact_rate:>18.2f}")
    print("target DEMI k <= 1.5 k x InfoNCE:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
