"""Benchmark: brute-force accuracy of a Max-of-4 model vs a straightforward batched forward pass.

Both count the inputs (of all d_vocab^n_ctx = 16.8 M) that the model gets right, in float64. The brute force
(reprolab.maxk_proofs.brute_force) precomputes per-(token, position) tables once and then does
(n_ctx - 1) * d_vocab_out additions per input; the baseline runs the model's forward pass in batches. The
baseline is timed on a slice of the inputs (``--baseline-fraction``) and its throughput extrapolated; with
``--baseline-fraction 1`` it runs on every input and the two counts must agree. Exits non-zero if the
throughput ratio is below the target of 10x (or on a mismatch).

    python benchmarks/maxk_proofs.py [--threads 1] [--baseline-fraction 0.0625] [--batch 65536]
"""

from __future__ import annotations

import argparse
import time

import torch

from reprolab.maxk_proofs import MaxKTransformer, brute_force_correct, correct_mask_forward


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-fraction", type=float, default=1 / 16)
    parser.add_argument("--batch", type=int, default=1 << 16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = MaxKTransformer()
    model.reset_parameters(torch.Generator().manual_seed(0))
    V, n = model.config.d_vocab, model.config.n_ctx
    total = V**n

    start = time.perf_counter()
    correct = brute_force_correct(model)
    brute_s = time.perf_counter() - start

    count = max(args.batch, int(total * args.baseline_fraction))
    start = time.perf_counter()
    forward_correct = 0
    for lo in range(0, count, args.batch):
        idx = torch.arange(lo, min(count, lo + args.batch))
        tokens = torch.stack([(idx // V**p) % V for p in reversed(range(n))], dim=1)
        forward_correct += int(correct_mask_forward(model, tokens).sum())
    forward_s = time.perf_counter() - start
    forward_rate = count / forward_s
    brute_rate = total / brute_s
    ratio = brute_rate / forward_rate

    print(f"inputs: {total:,} (d_vocab={V}, n_ctx={n}), threads={args.threads}")
    print(f"brute force (tables): {brute_s:8.2f} s   {brute_rate / 1e6:8.2f} M inputs/s   correct={correct:,}")
    print(
        f"batched forward     : {forward_s:8.2f} s on {count:,} inputs   {forward_rate / 1e6:8.2f} M inputs/s"
        f"   (all inputs: ~{total / forward_rate:.1f} s)"
    )
    print(f"throughput ratio: {ratio:.1f}x (target >= 10x)")
    if args.baseline_fraction >= 1 and forward_correct != correct:
        print(f"MISMATCH: forward {forward_correct} vs brute force {correct}")
        return 1
    return 0 if ratio >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
