"""Benchmark: brute-force accuracy of a Max-of-4 model vs a straightforward batched forward pass.

Both count the inputs (of all d_vocab^n_ctx = 16.8 M) that the model gets right, in float64. The brute force
(reprolab.maxk_proofs.brute_force) precomputes per-(token, position) tables once and then does
(n_ctx - 1) * d_vocab_out additions per input; the baseline runs a forward pass in batches: TransformerLens's
``HookedTransformer`` with the same weights when ``transformer_lens`` is importable (``--baseline auto``, the
default, or ``transformer_lens``; 3.x, as 4.0 removed it), else the model's own forward pass (``--baseline
forward``). The baseline is
timed on a slice of the inputs (``--baseline-fraction``) and its throughput extrapolated; with
``--baseline-fraction 1`` it runs on every input and the two counts must agree. Exits non-zero if the
throughput ratio is below the target of 10x (or on a mismatch).

Growth (issue 24): the cost driver is the vocabulary size V (d_vocab = d_vocab_out, n_ctx = 4). The brute force
visits all V^n_ctx inputs with V logits each, so its work grows as V^(n_ctx + 1) = V^5; the paper's cubic proof
(Sec. 4.2, ``cubic``) certifies, per (query, max token, count of the max), the set of non-max tokens that may be
mixed freely, in O(V^3 n_ctx). Both are
timed (CPU time, randomly initialised models) at ``--growth-vocab`` (brute force, default 32, 48, 64) and at
twice those sizes for the cubic proof (below V = 64 its few ms are mostly fixed overhead), with the FLOP counts the
two report.

    python benchmarks/maxk_proofs.py [--threads 1] [--baseline-fraction 0.0625] [--batch 65536] [--json]
"""

from __future__ import annotations

import argparse
import time
import warnings
from importlib.metadata import PackageNotFoundError, version

import torch

from growth import best_time, emit, fitted_exponent, growth_record
from reprolab.maxk_proofs import MaxKConfig, MaxKTransformer, brute_force_correct, correct_mask_forward, get_strategy
from reprolab.maxk_proofs.brute_force import exhaustive_flops


def transformer_lens_counter(model: MaxKTransformer):
    """A function counting the correct inputs of a batch with TransformerLens's ``HookedTransformer`` (float64)
    loaded with ``model``'s weights; None when ``transformer_lens`` is not importable."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:  # not installed, or 4.x (HookedTransformer removed; the README's baseline is 3.9)
        return None
    c = model.config
    config = HookedTransformerConfig(
        n_layers=1, d_model=c.d_model, n_ctx=c.n_ctx, d_head=c.d_head, n_heads=1, d_vocab=c.d_vocab,
        d_vocab_out=c.vocab_out, attn_only=True, normalization_type=None, dtype=torch.float64, device="cpu",
    )
    with warnings.catch_warnings():  # 3.x announces HookedTransformer's removal in 4.0
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = HookedTransformer(config)
    hooked.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v
                            for k, v in model.to_transformer_lens_state_dict().items()})
    hooked.eval()

    @torch.no_grad()
    def count(tokens: torch.Tensor) -> int:
        logits = hooked(tokens)[:, -1]
        target = tokens.max(dim=1).values
        right = logits.gather(-1, target[:, None]).squeeze(-1)
        others = logits.scatter(-1, target[:, None], float("-inf")).amax(-1)
        return int((right > others).sum())

    return count


def _tl_version() -> str:
    try:
        return version("transformer-lens")
    except PackageNotFoundError:
        return "?"


def _growth(sizes: list[int], repeats: int) -> list[dict]:
    """CPU time and FLOPs of the brute force at ``sizes`` and of the cubic proof at twice those sizes."""
    brute_times, brute_flops, cubic_times, cubic_flops = [], [], [], []
    for V in sizes:
        model = MaxKTransformer(MaxKConfig(d_vocab=V))
        model.reset_parameters(torch.Generator().manual_seed(0))
        brute_times.append(best_time(lambda m=model: brute_force_correct(m), repeats, time.process_time))
        brute_flops.append(exhaustive_flops(V, model.config.n_ctx, V))
    cubic_sizes = [2 * V for V in sizes]
    for V in cubic_sizes:
        model = MaxKTransformer(MaxKConfig(d_vocab=V))
        model.reset_parameters(torch.Generator().manual_seed(0))
        cubic_times.append(best_time(lambda m=model: get_strategy("cubic").prove(m), repeats, time.process_time))
        cubic_flops.append(get_strategy("cubic").prove(model).flops)
    return [
        growth_record("brute-force accuracy count", "d_vocab", sizes, brute_times, clock="cpu", threads=1,
                      expected_exponent=5, flops=brute_flops, flops_exponent=round(fitted_exponent(sizes,
                                                                                                   brute_flops), 3)),
        growth_record("cubic proof", "d_vocab", cubic_sizes, cubic_times, clock="cpu", threads=1,
                      expected_exponent=3, flops=cubic_flops,
                      flops_exponent=round(fitted_exponent(cubic_sizes, cubic_flops), 3)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-fraction", type=float, default=1 / 16)
    parser.add_argument("--batch", type=int, default=1 << 16)
    parser.add_argument("--baseline", choices=("auto", "transformer_lens", "forward"), default="auto")
    parser.add_argument("--d-vocab", type=int, default=64, help="the headline model's vocabulary (paper: 64)")
    parser.add_argument("--growth-vocab", default="32,48,64", help="three vocabulary sizes for the growth")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = MaxKTransformer(MaxKConfig(d_vocab=args.d_vocab))
    model.reset_parameters(torch.Generator().manual_seed(0))
    V, n = model.config.d_vocab, model.config.n_ctx
    total = V**n

    start = time.perf_counter()
    correct = brute_force_correct(model)
    brute_s = time.perf_counter() - start

    counter = None if args.baseline == "forward" else transformer_lens_counter(model)
    if counter is None and args.baseline == "transformer_lens":
        raise SystemExit("--baseline transformer_lens: transformer_lens is not importable")
    baseline = f"TransformerLens {_tl_version()} HookedTransformer forward" if counter else "MaxKTransformer forward"
    counter = counter or (lambda tokens: int(correct_mask_forward(model, tokens).sum()))
    count = min(total, max(args.batch, int(total * args.baseline_fraction)))
    start = time.perf_counter()
    forward_correct = 0
    for lo in range(0, count, args.batch):
        idx = torch.arange(lo, min(count, lo + args.batch))
        tokens = torch.stack([(idx // V**p) % V for p in reversed(range(n))], dim=1)
        forward_correct += counter(tokens)
    forward_s = time.perf_counter() - start
    forward_rate = count / forward_s
    brute_rate = total / brute_s
    ratio = brute_rate / forward_rate
    mismatch = count == total and forward_correct != correct
    row = {"measure": "ratio", "inputs": total, "d_vocab": V, "n_ctx": n, "threads": args.threads,
           "correct": correct, "brute_force_s": brute_s, "baseline": baseline, "baseline_inputs": count,
           "baseline_s": forward_s, "baseline_all_inputs_s": total / forward_rate, "throughput_ratio": ratio,
           "target": ">= 10x", "met": ratio >= 10 and not mismatch}
    if args.json:
        emit(row, True)
    else:
        print(f"inputs: {total:,} (d_vocab={V}, n_ctx={n}), threads={args.threads}")
        print(f"brute force (tables): {brute_s:8.2f} s   {brute_rate / 1e6:8.2f} M inputs/s   correct={correct:,}")
        print(f"{baseline}: {forward_s:8.2f} s on {count:,} inputs   {forward_rate / 1e6:8.2f} M inputs/s"
              f"   (all inputs: ~{total / forward_rate:.1f} s)")
        print(f"throughput ratio: {ratio:.1f}x (target >= 10x)")
    if mismatch:
        print(f"MISMATCH: forward {forward_correct} vs brute force {correct}")
    for record in _growth([int(v) for v in args.growth_vocab.split(",")], 2):
        emit(record, args.json)
    return 0 if row["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
