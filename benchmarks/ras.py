"""RAS inference speed at 352x352 against baselines measured in the same run.

Ratios reported (higher = RAS costs more):
* RAS / VGG-16 backbone alone: the cost of the global head, side heads and top-down refinement;
* RAS / RAS without reverse attention: the cost of the reverse-attention weighting itself.

Growth (issue 24): RAS is fully convolutional, so the cost driver is the input resolution: every layer's work is
proportional to its feature map's pixels, which scale with the side s of the input as s^2 (the top-down
refinement upsamples to the input size too). The time per frame of the narrowest ``--width`` is measured at
``--growth-sizes`` (default s/4, s/2, s of ``--size``); expected exponent in the side ~2.

Usage: ``python benchmarks/ras.py [--width 0.125 1.0] [--size 352] [--repeats 5] [--threads 1] [--json]``.
The paper reports 45 FPS for the full-width network on a GPU (ECCV 2018 abstract); on a CPU expect far less.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from growth import emit, growth_record
from reprolab.ras.model import RAS


@torch.no_grad()
def seconds_per_frame(module: torch.nn.Module, size: int, repeats: int) -> float:
    module.eval()
    image = torch.zeros(1, 3, size, size)
    module(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, nargs="+", default=[0.125, 0.25, 1.0])
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--growth-sizes", default="", help="three input sides (default: s/4, s/2, s of --size)")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.json:
        print(f"torch {torch.__version__}, {args.threads} thread(s), input {args.size}x{args.size}, batch 1")
        print(f"{'width':>6} {'params':>12} {'MB':>8} {'RAS fps':>8} {'noRA fps':>9} {'VGG fps':>8} "
              f"{'RAS/VGG':>8} {'RAS/noRA':>9}")
    for width in args.width:
        torch.manual_seed(0)
        ras = RAS(width=width)
        no_ra = RAS(width=width, reverse_attention=False)
        params = sum(p.numel() for p in ras.parameters())
        t_ras = seconds_per_frame(ras, args.size, args.repeats)
        t_no_ra = seconds_per_frame(no_ra, args.size, args.repeats)
        t_vgg = seconds_per_frame(ras.backbone, args.size, args.repeats)
        row = {"measure": "ratio", "width": width, "size": args.size, "threads": args.threads, "params": params,
               "ras_fps": 1 / t_ras, "no_ra_fps": 1 / t_no_ra, "vgg_fps": 1 / t_vgg, "ras_vs_vgg": t_ras / t_vgg,
               "ras_vs_no_ra": t_ras / t_no_ra}
        if args.json:
            emit(row, True)
        else:
            print(f"{width:>6g} {params:>12,} {params * 4 / 1e6:>8.2f} {1 / t_ras:>8.2f} {1 / t_no_ra:>9.2f} "
                  f"{1 / t_vgg:>8.2f} {t_ras / t_vgg:>8.2f} {t_ras / t_no_ra:>9.3f}")
    width = min(args.width)
    s = args.size
    sizes = [int(v) for v in args.growth_sizes.split(",")] if args.growth_sizes else [s // 4, s // 2, s]
    torch.manual_seed(0)
    ras = RAS(width=width)
    times = [seconds_per_frame(ras, n, args.repeats) for n in sizes]
    emit(growth_record(f"RAS inference (width {width:g}, batch 1)", "input side", sizes, times, threads=args.threads,
                       expected_exponent=2), args.json)


if __name__ == "__main__":
    main()
