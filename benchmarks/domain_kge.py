"""Benchmark: DRE's costs against baselines measured in the same run, on the same machine.

Usage:
    python benchmarks/domain_kge.py [--data /path/to/WN18RR] [--epochs 5] [--domain-epochs 100]
    python benchmarks/domain_kge.py --eval [--data /path/to/WN18] [--test-triples 1000] [--sizes 250,500,1000]
                                    [--json]

Default: time to fit the domains vs time to train the base TransE model (target: a small fraction).
``--eval``: DRE's evaluation (three variants base / + head / + head and tail domains, filtered and raw
protocols, one pass) vs PyKEEN's ``RankBasedEvaluator`` on the base model alone (filtered with train +
valid, the same test triples), both on the same trained TransE; target: DRE's time <= 2x PyKEEN's. CPU time
(process time) and wall time are printed; the ratio uses CPU time. Falls back to UMLS when the folder is absent.

Growth (issue 24): DRE's evaluation scores every entity as the candidate head and tail of each test triple, under
three variants, so its cost is (test triples) x (entities); at a fixed graph the number of test triples is the
axis (expected exponent ~1; a larger one would mean work that grows faster than the ranking itself, e.g. the
filter). ``--sizes`` gives the test-set sizes (default n/4, n/2, n of ``--test-triples``); CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYSTOW_HOME", tempfile.mkdtemp(prefix="pystow-"))

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from growth import emit, growth_record
from reprolab.domain_kge.data import load_splits
from reprolab.domain_kge.train import (
    build_base_model,
    domain_distances,
    evaluate_protocols,
    fit_domains,
    train_base_model,
)


def _timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def _pykeen_evaluation(model: Any, splits: Any, test: torch.Tensor, batch_size: int) -> float:
    from pykeen.evaluation import RankBasedEvaluator

    evaluator = RankBasedEvaluator(filtered=True)
    result = evaluator.evaluate(
        model, test, batch_size=batch_size, use_tqdm=False,
        additional_filter_triples=[splits.training.mapped_triples, splits.validation.mapped_triples],
    )
    return float(result.get_metric("both.realistic.hits_at_10"))


def _subset(splits: Any, count: int) -> Any:
    test = splits.testing.mapped_triples[torch.randperm(splits.testing.num_triples, generator=torch.Generator()
                                                        .manual_seed(0))[:count]]
    return replace(splits, testing=splits.testing.clone_and_exchange_triples(test))


def evaluation_benchmark(args: argparse.Namespace) -> None:
    # the evaluations' cost does not depend on how well the model is trained: --epochs / --domain-epochs only
    # set how long the setup takes (its CPU time is reported beside the evaluations')
    splits, _, load_cpu = _timed(load_splits, args.data)
    torch.manual_seed(0)
    model = build_base_model("TransE", splits, dim=args.dim, seed=0)
    _, train_cpu, _ = _timed(train_base_model, model, splits, epochs=args.epochs, batch_size=args.batch_size,
                             lr=0.01)
    (domains, _), fit_cpu, _ = _timed(
        fit_domains, model, splits.training.mapped_triples, splits.training.num_relations, epochs=args.domain_epochs,
        lr=0.01,
    )
    small = _subset(splits, args.test_triples)
    if not args.json:
        print(f"dataset {splits.name}: {splits.training.num_entities} entities, {small.testing.num_triples} test "
              f"triples, TransE dim {args.dim}, {torch.get_num_threads()} thread(s)")

    def ours(part: Any) -> Any:
        distances = domain_distances(model, domains, part.training.num_relations)
        protocols = ("filtered", "raw")
        return evaluate_protocols(model, part, distances, batch_size=args.eval_batch_size, protocols=protocols)

    theirs_hits, theirs_cpu, theirs_wall = _timed(_pykeen_evaluation, model, small, small.testing.mapped_triples,
                                                  args.eval_batch_size)
    ranks, ours_cpu, ours_wall = _timed(ours, small)
    base = ranks["filtered"]["base"]
    hits = float(np.mean(np.concatenate([base["head"], base["tail"]]) <= 10))
    row = {"measure": "ratio", "dataset": splits.name, "entities": splits.training.num_entities,
           "test_triples": small.testing.num_triples, "dim": args.dim, "threads": torch.get_num_threads(),
           "pykeen_cpu_s": theirs_cpu, "pykeen_wall_s": theirs_wall, "pykeen_hits_at_10": theirs_hits,
           "dre_cpu_s": ours_cpu, "dre_wall_s": ours_wall, "dre_base_hits_at_10": hits,
           "ratio_cpu": ours_cpu / theirs_cpu, "target": "<= 2", "met": ours_cpu / theirs_cpu <= 2,
           "setup_cpu_s": {"load": load_cpu, f"train_{args.epochs}_epochs": train_cpu,
                           f"domain_fit_{args.domain_epochs}_steps": fit_cpu}}
    if args.json:
        print(json.dumps(row))
    else:
        print(f"PyKEEN RankBasedEvaluator, base model, filtered: {theirs_cpu:8.2f} s CPU {theirs_wall:8.2f} s wall "
              f"(Hits@10 {theirs_hits:.4f})")
        print(f"DRE evaluation, 3 variants x filtered+raw:        {ours_cpu:8.2f} s CPU {ours_wall:8.2f} s wall "
              f"(base Hits@10 {hits:.4f})")
        print(f"ratio DRE / PyKEEN (CPU) = {ours_cpu / theirs_cpu:.3f}  (target <= 2)")
        print(f"setup CPU s: load {load_cpu:.1f}, base training ({args.epochs} epochs) {train_cpu:.1f}, "
              f"domain fit ({args.domain_epochs} steps) {fit_cpu:.1f}")
    n = small.testing.num_triples
    sizes = [int(x) for x in args.sizes.split(",") if x] or [max(1, n // 4), max(1, n // 2), n]
    times = [ours_cpu if size == n else _timed(ours, _subset(splits, size))[1] for size in sizes]
    emit(growth_record(f"DRE evaluation on {splits.name} (3 variants x filtered + raw)", "test triples", sizes, times,
                       clock="cpu", threads=torch.get_num_threads(), expected_exponent=1), args.json)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    home = Path(os.environ.get("REPROLAB_DATA", "/work/shared/data"))
    parser.add_argument("--data", default=None)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--domain-epochs", type=int, default=100)
    parser.add_argument("--eval", action="store_true", help="time DRE's evaluation against PyKEEN's evaluator")
    parser.add_argument("--test-triples", type=int, default=1000)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--sizes", default="", help="--eval: test-set sizes for the growth (default n/4, n/2, n)")
    parser.add_argument("--json", action="store_true", help="--eval: one JSON line per measurement")
    args = parser.parse_args(argv)
    default = home / ("WN18" if args.eval else "WN18RR")
    args.data = args.data or (str(default) if default.is_dir() else "umls")
    if args.eval:
        evaluation_benchmark(args)
        return
    torch.manual_seed(0)
    splits = load_splits(args.data)
    model = build_base_model("TransE", splits, dim=args.dim, seed=0)
    start = time.perf_counter()
    train_base_model(model, splits, epochs=args.epochs, batch_size=args.batch_size, lr=0.01)
    base = time.perf_counter() - start
    start = time.perf_counter()
    _, losses = fit_domains(
        model, splits.training.mapped_triples, splits.training.num_relations, epochs=args.domain_epochs, lr=0.01
    )
    domains = time.perf_counter() - start
    print(
        f"dataset {splits.name}: {splits.training.num_triples} train triples, {splits.training.num_entities} entities"
    )
    print(f"base TransE  {args.epochs} epochs: {base:8.2f} s ({base / args.epochs:.2f} s/epoch)")
    print(f"domain fit   {args.domain_epochs} steps: {domains:8.2f} s (loss {losses[0]:.4g} -> {losses[-1]:.4g})")
    print(f"ratio domain/base = {domains / base:.3f}")


if __name__ == "__main__":
    main()
