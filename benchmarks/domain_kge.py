"""Benchmark: time to fit DRE domains vs time to train the base TransE model (WN18RR by default).

Usage: python benchmarks/domain_kge.py [--data /path/to/WN18RR] [--epochs 5] [--domain-epochs 100]

The issue's target: fitting the domains costs a small fraction of training the base model. Both are
measured in this run on the same machine; the ratio is what counts. Falls back to UMLS when WN18RR is
not under $REPROLAB_DATA.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYSTOW_HOME", tempfile.mkdtemp(prefix="pystow-"))

import torch

from reprolab.domain_kge.data import load_splits
from reprolab.domain_kge.train import build_base_model, fit_domains, train_base_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(os.environ.get("REPROLAB_DATA", "/work/shared/data")) / "WN18RR"
    parser.add_argument("--data", default=str(default) if default.is_dir() else "umls")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--domain-epochs", type=int, default=100)
    args = parser.parse_args()
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
