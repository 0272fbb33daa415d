"""Benchmark: coarse-to-fine vs dense implicit-field extraction at 128^3 cells, measured in the same run.

Dense extraction evaluates the decoder at all 129^3 grid vertices; coarse-to-fine (the paper's inference)
evaluates a coarse grid, then only vertices of cells near the surface at each finer level. For each field
the table gives decoder evaluations, wall time, and the IoU between the two occupancy grids. Fields: an
analytic sphere, and held-out shapes decoded by an IM-AE (from ``--run DIR``, a finished ``reprolab run imnet``
folder, else trained here for ``--steps`` steps on procedural chairs and tables). Exits non-zero when the
coarse-to-fine grid differs from the dense one (IoU < 0.99) or saves less than half the evaluations.

    python benchmarks/imnet.py [--res 128] [--coarse 32] [--shapes 2] [--run runs/imnet] [--steps 600]
    python benchmarks/imnet.py --diagnose runs/imnet     # where a quick run's Chamfer distance comes from
    python benchmarks/imnet.py --curve imae --gf 16 --schedule 16:400,32:2600 --evals 1200,1800,2400,3000
                                                         # IoU / CD along training (docs/imnet.md, "What the quick
                                                         # run lacks"); --curve cnnae for the baseline;
                                                         # --points N IM-AE points per shape per step (default
                                                         # 256 as quick; >= 4096 feeds all points, as official)
    python benchmarks/imnet.py --scaling 32,64,128 [--json]  # how extraction grows with the grid (issue 24)

Growth (issue 24, ``--scaling``): the grid size n is the cost driver of extraction, as the decoder is evaluated at
grid vertices: dense at all (n + 1)^3 (expected exponent ~3), coarse-to-fine at the coarse grid plus the vertices
of cells near the surface at each finer level (~2 once the surface dominates). ``--json`` prints the benchmark's
rows and the growth records as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from growth import emit, fitted_exponent, growth_record
from reprolab.imnet.data import make_shape_set, points_from_grid256, sample_point_values
from reprolab.imnet.mesh import coarse_to_fine_grid, dense_grid
from reprolab.imnet.metrics import voxel_iou
from reprolab.imnet.model import IMAE
from reprolab.imnet.train import decode_field, encode


def sphere(points: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + 4.0 * (0.3 - np.linalg.norm(points, axis=1)), 0.0, 1.0).astype(np.float32)


def _output_skip(cfg: dict) -> bool:
    """A saved run's output-layer skip; runs saved before the option existed had it with the paper decoder."""
    return bool(cfg.get("output_skip", cfg["decoder"] == "paper"))


def load_or_train(run: str | None, steps: int) -> tuple[IMAE, torch.Tensor]:
    """An IM-AE and the voxels of held-out shapes to encode."""
    if run:
        import yaml

        from reprolab.core.checkpoint import load_checkpoint

        cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())["config"]
        model = IMAE(cfg["voxel_res"], cfg["ef_dim"], cfg["z_dim"], cfg["gf_dim"], cfg["decoder"], _output_skip(cfg))
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


def diagnose(run: str) -> None:
    """Where the Chamfer distance of a finished quick run comes from (docs/imnet.md, "Why IM-AE still loses on
    Chamfer distance"): both CD directions, the share of ground-truth surface points farther than 0.05 from the
    reconstruction and their share of the GT -> reconstruction term, and voxel recall of thin vs thick parts."""
    import yaml
    from scipy import ndimage
    from scipy.spatial import cKDTree

    from reprolab.core.checkpoint import load_checkpoint
    from reprolab.core.seeding import derive_seed
    from reprolab.imnet.data import cell_centres
    from reprolab.imnet.mesh import marching_cubes, sample_mesh
    from reprolab.imnet.model import CNNAE

    meta = yaml.safe_load((Path(run) / "config.yaml").read_text())
    cfg, res = meta["config"], meta["config"]["voxel_res"]
    done = load_checkpoint(Path(run) / "checkpoints" / "last.pt", map_location="cpu")["user"]["done"]
    shapes = make_shape_set(cfg["categories"], cfg["per_category"], res, derive_seed(meta["seed"], "data"))
    test = []
    for label in np.unique(shapes.labels):
        members = np.flatnonzero(shapes.labels == label)
        test.extend(members[max(1, int(round(cfg["train_fraction"] * len(members)))) :])
    vox = shapes.voxels[np.asarray(test)]
    vox = vox[np.unique(np.linspace(0, len(vox) - 1, min(cfg["eval_shapes"], len(vox))).round().astype(int))]
    imae = IMAE(res, cfg["ef_dim"], cfg["z_dim"], cfg["gf_dim"], cfg["decoder"], _output_skip(cfg))
    imae.load_state_dict(done["imae"]["state"])
    cnn = CNNAE(res, cfg["ef_dim"], cfg["z_dim"], cfg["cnn_gf_dim"])
    cnn.load_state_dict(done["cnnae"]["state"])
    imae.eval()
    cnn.eval()
    x = torch.from_numpy(vox).float()[:, None]
    with torch.no_grad():
        grids = {
            "IM-AE": [
                decode_field(imae.decoder, z)(cell_centres(res)).reshape((res,) * 3) >= 0.5 for z in imae.encoder(x)
            ],
            "CNN-AE": [g[0].numpy() >= 0.5 for g in cnn(x)],
        }
    rng = np.random.default_rng(0)
    print(
        f"{'model':<8}{'CD gt->rec':>11}{'CD rec->gt':>11}{'far pts':>9}{'far CD':>8}"
        f"{'lower':>7}{'thin':>7}{'thick':>7}"
    )
    for name, recs in grids.items():
        rows = []
        for rec, gt in zip(recs, vox.astype(bool)):
            thick = ndimage.binary_opening(gt, structure=np.ones((3, 3, 3)))
            thin = gt & ~thick
            a, _ = sample_mesh(marching_cubes(gt.astype(np.float32), cell_centred=True), 2048, rng)
            mesh = marching_cubes(rec.astype(np.float32), cell_centred=True)
            b = np.zeros((1, 3)) if mesh.empty else sample_mesh(mesh, 2048, rng)[0]
            d = cKDTree(b).query(a)[0]
            far = d > 0.05
            middle = (a[:, 1].min() + a[:, 1].max()) / 2
            rows.append(
                [
                    1000 * np.mean(d**2),
                    1000 * np.mean(cKDTree(a).query(b)[0] ** 2),
                    far.mean(),
                    (d[far] ** 2).sum() / max((d**2).sum(), 1e-12),
                    np.mean(a[far, 1] < middle) if far.any() else np.nan,
                    rec[thin].mean() if thin.any() else np.nan,
                    rec[thick].mean() if thick.any() else np.nan,
                ]
            )
        m = np.nanmean(np.asarray(rows, dtype=float), axis=0)
        print(f"{name:<8}{m[0]:>11.2f}{m[1]:>11.2f}{m[2]:>9.2f}{m[3]:>8.2f}{m[4]:>7.2f}{m[5]:>7.2f}{m[6]:>7.2f}")


def curve(args: argparse.Namespace) -> None:
    """IoU / CD of the 16 held-out shapes along training, with the quick pipeline's data, seeds, training loop and
    CD protocol (at the quick settings it reproduces the pipeline's numbers). ``--uniform`` samples the training
    points uniformly from all cells instead of near the surface first; ``--points`` sets the IM-AE's points per shape
    per step (all of them, in order, when it reaches the resolution's count). Each line gives the CPU time spent in
    training steps so far (evaluation excluded)."""
    import reprolab.imnet.data as imdata
    from reprolab.core.seeding import derive_seed
    from reprolab.imnet.data import cell_centres, read_imnet_hdf5, write_imnet_hdf5
    from reprolab.imnet.mesh import marching_cubes, sample_mesh
    from reprolab.imnet.metrics import chamfer_and_normals
    from reprolab.imnet.model import CNNAE
    from reprolab.imnet.train import resolution_at

    seed, res, name = args.seed, 32, args.curve
    shapes = make_shape_set(["chair", "table"], 100, res, derive_seed(seed, "data"))
    train_idx, test_idx = [], []
    for label in np.unique(shapes.labels):
        members = np.flatnonzero(shapes.labels == label)
        train_idx += list(members[:80])
        test_idx += list(members[80:])
    train, test = shapes.subset(np.asarray(train_idx)), shapes.subset(np.asarray(test_idx))
    schedule = [tuple(int(v) for v in item.split(":")) for item in args.schedule.split(",")]
    train_vox = torch.from_numpy(train.voxels).float()[:, None]
    test_vox = torch.from_numpy(test.voxels).float()[:, None]
    eval_idx = np.unique(np.linspace(0, len(test) - 1, 16).round().astype(int))
    gt = [
        sample_mesh(marching_cubes(g, cell_centred=True), 2048, np.random.default_rng(derive_seed(seed, "gt", i)))
        for i, g in enumerate(test.voxels[eval_idx])
    ]
    if name == "imae":
        resolutions = sorted({r for r, _ in schedule})
        if args.uniform:  # every cell is a candidate point: a random subset per step is uniform sampling
            imdata.point_counts = lambda r: r**3
        with tempfile.TemporaryDirectory() as folder:
            path = write_imnet_hdf5(Path(folder) / "train.hdf5", train, resolutions, derive_seed(seed, "points"))
            sets = {s.res: (torch.from_numpy(s.points), torch.from_numpy(s.values)) for s in read_imnet_hdf5(path)[1]}
        torch.manual_seed(derive_seed(seed, name, "init"))
        model: torch.nn.Module = IMAE(res, 4, 32, args.gf, "paper")
        total = sum(steps for _, steps in schedule)
    else:
        torch.manual_seed(derive_seed(seed, name, "init"))
        model, total = CNNAE(res, 4, 32, 4), max(int(v) for v in args.evals.split(","))
    gen = torch.Generator().manual_seed(derive_seed(seed, name, "train"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    evals = {int(v) for v in args.evals.split(",")}
    train_cpu, tick = 0.0, time.process_time()
    for step in range(total):
        shapes_b = torch.randint(0, len(train_vox), (8,), generator=gen)
        if name == "imae":
            points, values = sets[resolution_at(step, schedule)]
            if args.points >= points.shape[1]:  # all points of the resolution, as the official code feeds
                chosen = torch.arange(points.shape[1]).expand(8, -1)
            else:
                chosen = torch.randint(0, points.shape[1], (8, args.points), generator=gen)
            p = torch.gather(points[shapes_b], 1, chosen[..., None].expand(-1, -1, 3))
            v = torch.gather(values[shapes_b], 1, chosen[..., None])
            loss = torch.mean((model(train_vox[shapes_b], p) - v) ** 2)
        else:
            target = train_vox[shapes_b]
            loss = torch.mean((model(target) - target) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step + 1 not in evals:
            continue
        train_cpu += time.process_time() - tick
        with torch.no_grad():
            if name == "imae":
                grids = [
                    decode_field(model.decoder, z)(cell_centres(res)).reshape((res,) * 3)
                    for z in model.encoder(test_vox[eval_idx])
                ]
            else:
                grids = [g[0].numpy() for g in model(test_vox[eval_idx])]
        ious, cds = [], []
        for i, (grid, truth, (gp, gn)) in enumerate(zip(grids, test.voxels[eval_idx], gt)):
            ious.append(voxel_iou(grid >= 0.5, truth))
            mesh = marching_cubes(grid, cell_centred=True)
            rng = np.random.default_rng(derive_seed(seed, name, "cd", i))
            pts, nrm = (np.zeros((1, 3)), np.zeros((1, 3))) if mesh.empty else sample_mesh(mesh, 2048, rng)
            cds.append(1000 * chamfer_and_normals(pts, nrm, gp, gn)[0])
        print(
            f"{name} step {step + 1}: IoU {np.mean(ious):.4f}, CD x1000 mean {np.mean(cds):.2f} median "
            f"{np.median(cds):.2f}, training CPU {train_cpu:.1f} s",
            flush=True,
        )
        tick = time.process_time()


def scaling(sizes: list[int], threads: int, run: str | None, steps: int, as_json: bool = False) -> None:
    """CPU time of dense and coarse-to-fine extraction (coarse grid = size / 4) of one decoded IM-AE shape at
    several grid sizes, and the fitted exponents: dense evaluates (n+1)^3 vertices (expected ~3),
    coarse-to-fine about the surface cells (~2 once the decoder dominates)."""
    model, vox = load_or_train(run, steps)
    model.eval()
    field = decode_field(model.decoder, encode(model.encoder, vox[:1])[0])
    rows = []
    for n in sizes:
        start = time.process_time()
        dense = dense_grid(field, n)
        t_dense = time.process_time() - start
        start = time.process_time()
        c2f = coarse_to_fine_grid(field, n, max(n // 4, 1))
        t_c2f = time.process_time() - start
        iou = voxel_iou(c2f.values >= 0.5, dense.values >= 0.5)
        rows.append((n, dense.evaluations, c2f.evaluations, t_dense, t_c2f))
        if not as_json:
            print(
                f"n={n:4d}  dense {dense.evaluations:>9} evals {t_dense:7.2f} CPU-s   coarse-to-fine "
                f"{c2f.evaluations:>8} evals {t_c2f:6.2f} CPU-s   IoU {iou:.5f}",
                flush=True,
            )
    ns = [r[0] for r in rows]
    for name, t, e, expected in (("dense extraction", 3, 1, 3), ("coarse-to-fine extraction", 4, 2, 2)):
        record = growth_record(f"{name} (IM-AE shape, coarse = n/4)", "grid n", ns, [r[t] for r in rows],
                               clock="cpu", threads=threads, expected_exponent=expected,
                               evaluations=[r[e] for r in rows])
        record["evaluations_exponent"] = round(fitted_exponent(ns, record["evaluations"]), 3)
        emit(record, as_json)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--coarse", type=int, default=32)
    parser.add_argument("--shapes", type=int, default=2)
    parser.add_argument("--run", default=None)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--diagnose", default=None, help="a finished run folder: CD breakdown instead of the benchmark")
    parser.add_argument("--curve", choices=("imae", "cnnae"), default=None, help="IoU / CD along training")
    parser.add_argument("--gf", type=int, default=16, help="--curve: implicit decoder width")
    parser.add_argument("--schedule", default="16:600,32:1200", help="--curve: res:steps,... of the IM-AE")
    parser.add_argument("--evals", default="1200,1800", help="--curve: steps at which to evaluate")
    parser.add_argument("--points", type=int, default=256, help="--curve: IM-AE points per shape per step")
    parser.add_argument("--uniform", action="store_true", help="--curve: uniform instead of near-surface points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scaling", default=None, help="grid sizes, e.g. 32,64,128: time and fitted exponent")
    parser.add_argument("--json", action="store_true", help="benchmark rows and --scaling growth as JSON lines")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.scaling:
        scaling([int(n) for n in args.scaling.split(",")], args.threads, args.run, args.steps, args.json)
        return 0
    if args.diagnose:
        diagnose(args.diagnose)
        return 0
    if args.curve:
        curve(args)
        return 0
    rows = [measure("sphere (analytic)", sphere, args.res, args.coarse)]
    model, vox = load_or_train(args.run, args.steps)
    model.eval()
    codes = encode(model.encoder, vox[: args.shapes])
    for i, z in enumerate(codes):
        rows.append(measure(f"IM-AE shape {i}", decode_field(model.decoder, z), args.res, args.coarse))
    ok = all(r["iou"] >= 0.99 and r["eval_ratio"] <= 0.5 for r in rows)
    if args.json:
        for r in rows:
            print(json.dumps({"measure": "ratio", "res": args.res, "coarse": args.coarse, "threads": args.threads,
                              **r}))
        return 0 if ok else 1
    header = f"{'field':<20}{'dense evals':>12}{'c2f evals':>11}{'ratio':>8}{'dense s':>9}{'c2f s':>8}"
    header += f"{'speedup':>9}{'IoU':>9}"
    print(f"coarse-to-fine {args.coarse}^3 -> {args.res}^3 cells vs dense ({(args.res + 1) ** 3} vertices)")
    print(header)
    for r in rows:
        print(
            f"{r['field']:<20}{r['dense_evals']:>12}{r['c2f_evals']:>11}{r['eval_ratio']:>8.3f}"
            f"{r['dense_s']:>9.2f}{r['c2f_s']:>8.2f}{r['speedup']:>9.2f}{r['iou']:>9.5f}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
