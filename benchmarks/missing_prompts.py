"""Benchmark: cost of missing-aware prompt learning vs full fine-tuning, measured in the same run.

Reports, for one training step (forward + backward + AdamW) on the same mini ViLT and batch:
* time per step of input-level (``replace`` and ``accumulate`` modes) and attention-level prompts relative to full
  fine-tuning (the paper's motivation: only prompts, pooler and head receive gradients), and relative to the
  head-only baseline;
* optimizer-state size (AdamW keeps two tensors per trainable parameter) relative to full fine-tuning;
* inference time overhead of the prompts relative to the plain backbone;
* how the main cost grows: time of one input-level training step at three batch sizes and the fitted exponent of
  time in batch size (issue 24). The batch is the cost driver: the prompts are fixed-length tokens prepended to
  every input, so each step runs the whole frozen backbone forward and backward (for the prompts' gradients) on
  every example of the batch; expected ~1 (attention is quadratic in the sequence length, which is fixed).

Run: ``python benchmarks/missing_prompts.py [--hidden 64 --layers 4 --batch 64 --steps 20] [--json]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from growth import emit, growth_record
from reprolab.missing_prompts.data import GlyphWordWorld, apply_missing, draw_missing_table
from reprolab.missing_prompts.model import PromptedVilt, build_mini_vilt
from reprolab.missing_prompts.train import make_optimizer, task_loss


def _time_steps(model: PromptedVilt, batch, missing, labels, steps: int, train: bool) -> float:
    optimizer = make_optimizer(model, 1e-3, 0.0) if train else None
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        if train:
            loss = task_loss(model(*batch, missing), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(*batch, missing)
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    world = GlyphWordWorld()
    g = torch.Generator().manual_seed(0)
    data = world.single_label(args.batch, 8, 0.1, g)
    missing = draw_missing_table(args.batch, 0.7, "both", g)
    data = apply_missing(data, missing)
    batch = (data.input_ids, data.text_mask, data.pixel_values)
    vilt = build_mini_vilt(world.vocab_size, hidden=args.hidden, layers=args.layers, max_text_len=world.max_text_len)
    layers = list(range(max(1, args.layers // 2)))
    rows = {}
    for name, prompt_type, frozen, mode in (
        ("finetune", "none", False, "replace"),
        ("head_only", "fixed", True, "replace"),  # the experiment's baseline (official fixed prompts)
        ("prompt_input", "input", True, "replace"),
        ("prompt_input_accum", "input", True, "accumulate"),  # the experiment's default (official code)
        ("prompt_attention", "attention", True, "replace"),
    ):
        model = PromptedVilt(copy.deepcopy(vilt), 8, prompt_type=prompt_type, prompt_layers=layers,
                             prompt_length=args.prompt_length, input_mode=mode)  # fmt: skip
        if frozen:
            model.freeze_backbone()
        train_s = _time_steps(model, batch, missing, data.labels, args.steps, train=True)
        infer_s = _time_steps(model, batch, missing, data.labels, args.steps, train=False)
        rows[name] = (train_s, infer_s, 2 * model.trainable_parameters())
    base_train, base_infer, base_state = rows["finetune"]
    head_train, head_infer, _ = rows["head_only"]
    if args.json:
        for name, (train_s, infer_s, state) in rows.items():
            print(json.dumps({"measure": "ratio", "method": name, "batch": args.batch, "threads": args.threads,
                              "train_step_s": train_s, "train_vs_finetune": train_s / base_train,
                              "train_vs_head_only": train_s / head_train, "infer_s": infer_s,
                              "infer_vs_head_only": infer_s / head_infer,
                              "optimizer_state_vs_finetune": state / base_state}))
    else:
        print(f"mini ViLT hidden={args.hidden} layers={args.layers} batch={args.batch}, prompts on layers {layers}, "
              f"length {args.prompt_length}, threads={args.threads}")  # fmt: skip
        print(f"{'method':18s} {'train ms':>9s} {'x finetune':>10s} {'x head':>7s} {'infer ms':>9s} {'x head':>7s} "
              f"{'AdamW state x finetune':>22s}")  # fmt: skip
        for name, (train_s, infer_s, state) in rows.items():
            print(f"{name:18s} {1e3 * train_s:9.1f} {train_s / base_train:10.2f} {train_s / head_train:7.2f} "
                  f"{1e3 * infer_s:9.1f} {infer_s / head_infer:7.2f} {state / base_state:22.4f}")  # fmt: skip
    sizes = [max(1, args.batch // 4), max(1, args.batch // 2), args.batch]
    model = PromptedVilt(copy.deepcopy(vilt), 8, prompt_type="input", prompt_layers=layers,
                         prompt_length=args.prompt_length, input_mode="accumulate").freeze_backbone()  # fmt: skip
    times = [_time_steps(model, tuple(t[:n] for t in batch), missing[:n], data.labels[:n], args.steps, train=True)
             for n in sizes]  # fmt: skip
    emit(growth_record("input-level prompt training step (accumulate)", "batch", sizes, times, threads=args.threads,
                       expected_exponent=1), args.json)


if __name__ == "__main__":
    main()
