"""CoCoOp speed/memory: batched (chunked) image-conditioned prompts vs the reference per-image loop.

The reference implementation runs one text-encoder pass per image over all classes (its CoCoOp forward
loops over the batch). Ours encodes the prompts of ``chunk`` images in one pass (``chunk=0``: the whole
batch). Both compute the same logits; this script measures training-step throughput (images/s) and
peak memory at equal batch size, each mode in a fresh subprocess (on CPU: growth of peak RSS over the
loaded model; on CUDA: peak allocated).

    python benchmarks/cocoop.py [--batch 32] [--classes 24] [--width 64] [--layers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from torch.nn import functional as F

    from reprolab.cocoop.data import ShapesWorld, WordTokenizer
    from reprolab.cocoop.model import CoCoOpPromptLearner, PromptClassifier, build_mini_clip

    torch.manual_seed(0)
    device = torch.device(args.device)
    tok = WordTokenizer.for_shapes()
    clip = build_mini_clip(len(tok.vocab), args.image_size, 4, args.width, args.layers).to(device)
    world = ShapesWorld(args.image_size, 8, 6)
    names = world.classnames[: args.classes]
    learner = CoCoOpPromptLearner(clip, tok, names, init="a photo of a").to(device)
    model = PromptClassifier(clip, learner, chunk=args.chunk)
    opt = torch.optim.SGD(learner.parameters(), lr=0.002)
    labels = torch.arange(args.batch) % len(names)
    pixels, _ = world.render(labels, torch.Generator().manual_seed(0))
    pixels, labels = pixels.to(device), labels.to(device)

    def step() -> None:
        loss = F.cross_entropy(model(pixels), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before  # growth over the model
    elapsed = time.perf_counter() - start
    return {"images_per_s": args.batch * args.steps / elapsed, "peak_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.chunk is not None:
        print(json.dumps(measure(args)))
        return
    base = list(sys.argv[1:])
    results = {}
    for label, chunk in (("per-image loop (reference)", 1), ("batched, one pass", 0), ("chunked, 8 images", 8)):
        out = subprocess.run(
            [sys.executable, __file__, *base, "--chunk", str(chunk)], capture_output=True, text=True, check=True
        )
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label:28s} {results[label]['images_per_s']:9.1f} images/s  peak {results[label]['peak_mb']:8.1f} MB")
    ref = results["per-image loop (reference)"]
    for label, res in results.items():
        print(
            f"{label:28s} speed-up x{res['images_per_s'] / ref['images_per_s']:.2f}  "
            f"memory ratio {res['peak_mb'] / ref['peak_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
