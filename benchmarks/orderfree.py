"""Benchmark: batched beam search (all images' beams in one batch) vs one-image-at-a-time beam search.

Both decode the same feature maps with the same randomly initialised attention-LSTM decoder and must
return identical label sets; the ratio of their throughputs (images/s) is the result. A second ratio
compares greedy decoding with batched beam search (the price of the beam); a third, exact best-first
search (the argmax sequence, :func:`exact_search`) with batched beam search, with how often beam search
already returns the argmax.

    python benchmarks/orderfree.py [--images 256] [--width 3] [--classes 10] [--threads 1] [--repeats 3]
    python benchmarks/orderfree.py --scaling 64,256,1024     # CPU time at three sizes, fitted exponent
    python benchmarks/orderfree.py --json [--scaling ...]     # one JSON line per measurement

Growth (issue 24, ``--scaling``): the number of images is the cost driver of decoding, since every image runs its
own beam of attention-LSTM steps over its own feature map; all three decoders are expected linear (~1), and the
batched search's advantage is its constant.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from growth import emit, fitted_exponent, growth_record
from reprolab.orderfree.decode import beam_search, beam_search_per_image, exact_search, greedy_decode, sequence_loss
from reprolab.orderfree.model import AttentionLSTMDecoder


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _fit_briefly(decoder: AttentionLSTMDecoder, features: torch.Tensor, classes: int, max_labels: int,
                 steps: int) -> None:
    """A few order-free training steps on random label sets (1..max_labels labels per image), so the
    decoder emits label sequences of realistic, varying length instead of an untrained constant."""
    generator = torch.Generator().manual_seed(1)
    targets = torch.zeros(len(features), classes)
    for row in range(len(features)):
        count = int(torch.randint(1, max_labels + 1, (1,), generator=generator))
        targets[row, torch.randperm(classes, generator=generator)[:count]] = 1.0
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    decoder.train()
    for _ in range(steps):
        index = torch.randint(len(features), (64,), generator=generator)
        loss, _ = sequence_loss(decoder, features[index], targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def scaling(args: argparse.Namespace, sizes: list[int]) -> None:
    """CPU time of batched and per-image beam search and of greedy decoding at several image counts, and the
    fitted exponents (all three are linear in the images, k ~ 1; the batched search's advantage is its
    constant)."""
    torch.manual_seed(0)
    decoder = AttentionLSTMDecoder(args.channels, args.classes, hidden=args.hidden, attention_dim=args.hidden // 2)
    pool = torch.randn(max(sizes), args.channels, args.grid, args.grid)
    _fit_briefly(decoder, pool, args.classes, args.max_labels, args.fit_steps)
    decoder.eval()
    kwargs = {"width": args.width, "max_labels": args.max_labels}
    rows = []
    for n in sizes:
        features = pool[:n]
        timed = []
        for fn, extra in ((beam_search, kwargs), (beam_search_per_image, kwargs),
                          (greedy_decode, {"max_labels": args.max_labels})):
            start = time.process_time()
            fn(decoder, features, **extra)
            timed.append(time.process_time() - start)
        rows.append((n, *timed))
        if not args.json:
            print(f"images={n:5d}  batched beam {timed[0]:.3f} CPU-s  per-image beam {timed[1]:.3f} CPU-s  "
                  f"greedy {timed[2]:.3f} CPU-s", flush=True)
    ns = [r[0] for r in rows]
    for i, name in ((1, "batched beam search"), (2, "per-image beam search"), (3, "greedy decoding")):
        emit(growth_record(f"{name} (width {args.width})", "images", ns, [r[i] for r in rows], clock="cpu",
                           threads=args.threads, expected_exponent=1), args.json)
    if not args.json:
        k = [fitted_exponent(ns, [r[i] for r in rows]) for i in (1, 2, 3)]
        print(f"fitted exponents (time ~ images^k, {args.threads} thread(s)): batched beam k = {k[0]:.2f}, "
              f"per-image beam k = {k[1]:.2f}, greedy k = {k[2]:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--grid", type=int, default=7)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-labels", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--scaling", default=None, help="image counts, e.g. 64,256,1024: time and fitted exponent")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.scaling:
        scaling(args, [int(n) for n in args.scaling.split(",")])
        return
    torch.manual_seed(0)
    decoder = AttentionLSTMDecoder(args.channels, args.classes, hidden=args.hidden, attention_dim=args.hidden // 2)
    features = torch.randn(args.images, args.channels, args.grid, args.grid)
    _fit_briefly(decoder, features, args.classes, args.max_labels, args.fit_steps)
    decoder.eval()
    kwargs = {"width": args.width, "max_labels": args.max_labels}
    batched = beam_search(decoder, features, **kwargs)
    single = beam_search_per_image(decoder, features, **kwargs)
    if not torch.equal(batched.labels, single.labels):
        raise SystemExit("batched and per-image beam search disagree")
    t_batched = _best_time(lambda: beam_search(decoder, features, **kwargs), args.repeats)
    t_single = _best_time(lambda: beam_search_per_image(decoder, features, **kwargs), args.repeats)
    t_greedy = _best_time(lambda: greedy_decode(decoder, features, max_labels=args.max_labels), args.repeats)
    exact = exact_search(decoder, features, max_labels=args.max_labels)
    t_exact = _best_time(lambda: exact_search(decoder, features, max_labels=args.max_labels), 1)
    beam_is_map = sum(a == b for a, b in zip(batched.sequences, exact.sequences)) / len(exact.sequences)
    result = {
        "images": args.images,
        "beam_width": args.width,
        "threads": args.threads,
        "mean_labels_decoded": float(batched.labels.sum(1).mean()),
        "batched_beam_images_per_s": args.images / t_batched,
        "per_image_beam_images_per_s": args.images / t_single,
        "greedy_images_per_s": args.images / t_greedy,
        "speedup_batched_vs_per_image": t_single / t_batched,
        "beam_cost_vs_greedy": t_batched / t_greedy,
        "exact_search_images_per_s": args.images / t_exact,
        "exact_cost_vs_beam": t_exact / t_batched,
        "beam_returns_argmax_pct": 100.0 * beam_is_map,
    }
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps({"measure": "ratio", **result}) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
