"""CoCoOp speed/memory: batched (shared-prefix, chunked, checkpointed) conditional prompts vs the per-image loop.

The reference implementation runs one text-encoder pass per image over all classes (its CoCoOp forward loops
over the batch), each pass over the full prompts [SOS, v_1(x)..v_M(x), c_i, EOS, pad] of every class, and keeps
every pass's activations for the backward. Ours (i) computes the class-independent prefix [SOS, v_1(x)..v_M(x)]
once per image instead of once per class (``shared prefix``: exact, the text transformer is causal; the tokens
per image drop from n_cls * L to (1 + M) + n_cls * (L - 1 - M)), (ii) encodes the prompts of ``chunk`` images in
one pass (``chunk=0``: the whole batch) and (iii) with checkpointing keeps only each chunk's prompt embeddings,
recomputing the chunk's activations in the backward. All modes compute the same logits and gradients. The
per-image loop with the shared prefix is printed too, to separate what sharing the prefix gives from what
batching gives. Measured: training-step throughput (images/s, best of ``--repeats`` timings) and peak memory at
equal batch size, each mode in a fresh subprocess (on CPU: growth of peak RSS over the loaded model and data; on
CUDA: peak allocated); every ratio is against the per-image loop over full sequences. The headline mode (JSON
``"headline": true``, the one ``benchmarks/all.py`` reports) is chunks + shared prefix. Then the
time of one step of the headline mode at three batch sizes and the fitted exponent of time in batch size
(issue 24): the batch is the cost driver, as every image conditions its own prompts and so its own text-encoder
pass over all classes (the instance-conditional context v_m(x) = v_m + pi(x)); expected ~1.

    python benchmarks/cocoop.py [--batch 64] [--classes 24] [--width 64] [--layers 2] [--chunk 8] [--json]
                                [--threads N] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

from growth import emit, growth_record, run_worker


def measure(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from torch.nn import functional as F

    from reprolab.cocoop.data import ShapesWorld, WordTokenizer
    from reprolab.cocoop.model import CoCoOpPromptLearner, PromptClassifier, build_mini_clip

    if args.threads > 0:  # on a shared machine, 1 thread keeps other processes' load from stalling every op
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    tok = WordTokenizer.for_shapes()
    clip = build_mini_clip(len(tok.vocab), args.image_size, 4, args.width, args.layers).to(device)
    world = ShapesWorld(args.image_size, 8, 6)
    names = world.classnames[: args.classes]
    learner = CoCoOpPromptLearner(clip, tok, names, init="a photo of a").to(device)
    model = PromptClassifier(clip, learner, chunk=args.mode_chunk, checkpoint=bool(args.mode_checkpoint),
                             shared_prefix=bool(args.mode_shared))  # fmt: skip
    opt = torch.optim.SGD(learner.parameters(), lr=0.002)
    labels = torch.arange(args.batch) % len(names)
    pixels, _ = world.render(labels, torch.Generator().manual_seed(0))
    pixels, labels = pixels.to(device), labels.to(device)

    def step(n: int = args.batch) -> float:
        loss = F.cross_entropy(model(pixels[:n]), labels[:n])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    step(1)  # one image first: lazy imports, thread pools and optimiser state do not count as the step's memory
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_mb = torch.cuda.memory_allocated() / 2**20
    loss = step()  # warm-up (also the memory peak: every step allocates the same)
    # wall time, or with --clock cpu this process's CPU time (with 1 thread: the idle machine's wall time, and
    # far less sensitive to other processes' load than wall time on a shared machine)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    best = math.inf
    for _ in range(args.repeats):
        start = clock()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20 - base_mb
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before  # growth over the model
    return {"images_per_s": args.batch * args.steps / best, "step_s": best / args.steps, "peak_mb": peak_mb,
            "loss": loss, "threads": torch.get_num_threads(), "clock": args.clock}  # fmt: skip


def child(argv: list[str], chunk: int, checkpoint: bool, shared: bool, batch: int) -> dict[str, float]:
    """One mode measured in a fresh process (its own peak memory), with this run's options."""
    mode = ["--mode-chunk", str(chunk), "--mode-checkpoint", str(int(checkpoint)), "--mode-shared", str(int(shared)),
            "--batch", str(batch)]  # fmt: skip
    return run_worker(__file__, [*argv, *mode])[-1]


def modes(chunk: int) -> tuple[dict[str, tuple[int, bool, bool]], str]:
    """Label -> (images per pass, checkpointing, shared prefix), the first being the reference; and the headline
    mode's label: chunks with the shared prefix, whose kept activations are ~4x smaller than the loop's, so that
    the chunks bound the transient peak without paying checkpointing's recomputation."""
    table = {
        "per-image loop (reference)": (1, False, False),
        "per-image loop, shared prefix": (1, False, True),
        "batched, one pass": (0, False, False),
        "batched, one pass, shared prefix": (0, False, True),
        f"chunks of {chunk} + checkpointing": (chunk, True, False),
        f"chunks of {chunk}, shared prefix + checkpointing": (chunk, True, True),
        f"chunks of {chunk}, shared prefix": (chunk, False, True),
    }
    return table, f"chunks of {chunk}, shared prefix"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=8, help="images per pass of the chunked modes")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per mode (0: torch's default)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time by wall clock or by the process's CPU time (a shared machine; with --threads 1)")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    parser.add_argument("--mode-chunk", type=int, default=None, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--mode-checkpoint", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mode-shared", type=int, default=0, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.mode_chunk is not None:
        print(json.dumps(measure(args)))
        return
    table, headline = modes(args.chunk)
    results = {label: child(argv, *mode, args.batch) for label, mode in table.items()}
    reference = next(iter(table))
    ref = results[reference]
    for label, res in results.items():
        chunk, checkpoint, shared = table[label]
        row = {"measure": "mode", "mode": label, "batch": args.batch, "device": args.device, "chunk": chunk,
               "checkpoint": checkpoint, "shared_prefix": shared, "headline": label == headline, **res,
               "speedup": res["images_per_s"] / ref["images_per_s"],
               "memory_ratio": res["peak_mb"] / ref["peak_mb"] if ref["peak_mb"] > 0 else float("nan")}  # fmt: skip
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{label:48s} {res['images_per_s']:8.1f} images/s  peak {res['peak_mb']:7.1f} MB  "
                  f"speed-up x{row['speedup']:.2f}  memory ratio {row['memory_ratio']:.2f}")  # fmt: skip
    sizes = [max(1, args.batch // 4), max(1, args.batch // 2), args.batch]
    times = [child(argv, *table[headline], b)["step_s"] for b in sizes[:2]] + [results[headline]["step_s"]]
    emit(growth_record(f"CoCoOp training step ({headline})", "batch", sizes, times, clock=args.clock,
                       device=args.device, expected_exponent=1), args.json)


if __name__ == "__main__":
    main()
