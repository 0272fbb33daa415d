"""Benchmark: coarse-to-fine vs dense implicit-field extraction at 128^3 cells, measured in the same run.

Dense extraction evaluates the decoder at all 129^3 grid vertices; coarse-to-fine (the paper's inference)
evaluates a coarse grid, then only vertices of cells near the surface at each finer level. For each field
the table gives decoder evaluations, wall time, and the IoU between the two occupancy grids. Fields: an
analytic sphere, and held-out shapes decoded by an IM-AE (from ``--run DIR``, a finished ``reprolab run imnet``
folder, else trained here for ``--steps`` steps on procedural chairs and tables). Exits non-zero when the
coarse-to-fine grid differs from the dense one (IoU < 0.99) or saves less than half the evaluations.

    python benchmarks/imnet.py [--res 128] [--coarse 32] [--shapes 2] [--run runs/imnet] [--steps 600]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reprolab.imnet.data import make_shape_set, points_from_grid256, sample_point_values
from reprolab.imnet.mesh import coarse_to_fine_grid, dense_grid
from reprolab.imnet.metrics import voxel_iou
from reprolab.imnet.model import IMAE
from reprolab.imnet.train import decode_field, encode


def sphere(points: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + 4.0 * (0.3 - np.linalg.norm(points, axis=1)), 0.0, 1.0).astype(np.float32)


def load_or_train(run: str | None, steps: int) -> tuple[IMAE, torch.Tensor]:
    """An IM-AE and the voxels of held-out shapes to encode."""
    if run:
        import yaml

        from reprolab.core.checkpoint import load_checkpoint

        cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())["config"]
        model = IMAE(cfg["voxel_res"], cfg["ef_dim"], cfg["z_dim"], cfg["gf_dim"], cfg["decoder"])
        state = load_checkpoint(Path(run) / "checkpoints" / "last.pt", map_location="cpu")
        model.load_state_dict(state["user"]["done"]["imae"]["state"])
        shapes = make_shape_set(cfg["categories"], 5, cfg["voxel_res"], seed=12345)
        return model, torch.from_numpy(shapes.voxels).float()[:, None]
    shapes = make_shape_set(["chair", "table"], 40, 32, seed=0)
    rng = np.random.default_rng(0)
    pairs = [sample_point_values(v, 32, 4096, rng) for v in shapes.voxels]
    points = torch.from_numpy(points_from_grid256(np.stack([p for p, _ in pairs])))
    values = torch.from_numpy(np.stack([v for _, v in pairs]).astype(np.float32))
    vox = torch.from_numpy(shapes.voxels).float()[:, None]
    torch.manual_seed(0)
    model = IMAE(32, 4, 32, 8, "paper")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(vox), (8,), generator=gen)
        chosen = torch.randint(0, 4096, (8, 512), generator=gen)
        p = torch.gather(points[idx], 1, chosen[..., None].expand(-1, -1, 3))
        v = torch.gather(values[idx], 1, chosen[..., None])
        loss = torch.mean((model(vox[idx], p) - v) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"trained an IM-AE for {steps} steps (final batch MSE {loss.item():.4f})")
    return model, vox[::10]


def measure(name: str, field, res: int, coarse: int) -> dict[str, float | str]:
    start = time.perf_counter()
    dense = dense_grid(field, res)
    t_dense = time.perf_counter() - start
    start = time.perf_counter()
    c2f = coarse_to_fine_grid(field, res, coarse)
    t_c2f = time.perf_counter() - start
    return {
        "field": name,
        "dense_evals": dense.evaluations,
        "c2f_evals": c2f.evaluations,
        "eval_ratio": c2f.evaluations / dense.evaluations,
        "dense_s": t_dense,
        "c2f_s": t_c2f,
        "speedup": t_dense / max(t_c2f, 1e-9),
        "iou": voxel_iou(c2f.values >= 0.5, dense.values >= 0.5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--coarse", type=int, default=32)
    parser.add_argument("--shapes", type=int, default=2)
    parser.add_argument("--run", default=None)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure("sphere (analytic)", sphere, args.res, args.coarse)]
    model, vox = load_or_train(args.run, args.steps)
    model.eval()
    codes = encode(model.encoder, vox[: args.shapes])
    for i, z in enumerate(codes):
        rows.append(measure(f"IM-AE shape {i}", decode_field(model.decoder, z), args.res, args.coarse))
    header = f"{'field':<20}{'dense evals':>12}{'c2f evals':>11}{'ratio':>8}{'dense s':>9}{'c2f s':>8}"
    header += f"{'speedup':>9}{'IoU':>9}"
    print(f"coarse-to-fine {args.coarse}^3 -> {args.res}^3 cells vs dense ({(args.res + 1) ** 3} vertices)")
    print(header)
    ok = True
    for r in rows:
        print(
            f"{r['field']:<20}{r['dense_evals']:>12}{r['c2f_evals']:>11}{r['eval_ratio']:>8.3f}"
            f"{r['dense_s']:>9.2f}{r['c2f_s']:>8.2f}{r['speedup']:>9.2f}{r['iou']:>9.5f}"
        )
        ok &= r["iou"] >= 0.99 and r["eval_ratio"] <= 0.5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
