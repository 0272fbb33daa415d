"""The IM-NET experiment body: data, IM-AE and CNN-AE training, reconstruction metrics (IoU, CD, NC, simplified
LFD), optional IM-SVR, interpolation, IM-GAN (and optional CNN-GAN) generation, coarse-to-fine vs dense
extraction, figures and mesh export."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from reprolab.core.errors import ConfigError
from reprolab.core.sweep import Sweep
from reprolab.imnet.data import (
    PointValueSet,
    ShapeSet,
    cell_centres,
    downsample_max,
    make_shape_set,
    read_imnet_hdf5,
    write_imnet_hdf5,
)
from reprolab.imnet.experiment import IMNetConfig
from reprolab.imnet.lfd import lfd_descriptors, lfd_matrix
from reprolab.imnet.mesh import (
    Mesh,
    coarse_to_fine_grid,
    dense_grid,
    marching_cubes,
    render_meshes,
    sample_mesh,
    write_obj,
    write_ply,
)
from reprolab.imnet.metrics import (
    chamfer_and_normals,
    chamfer_matrix,
    coverage_mmd,
    largest_component_share,
    voxel_iou,
)
from reprolab.imnet.model import CNNAE, IMAE, LatentCritic, LatentGenerator
from reprolab.imnet.svr import ImageEncoder, predict_codes, render_views, svr_directions, train_svr
from reprolab.imnet.train import decode_field, encode, train_cnnae, train_imae, train_latent_gan

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["run_imnet"]


@dataclass
class Split:
    train: ShapeSet
    test: ShapeSet
    point_sets: dict[int, PointValueSet]  # training shapes only


def run_imnet(config: IMNetConfig, ctx: RunContext) -> dict[str, float]:
    """The whole experiment. The runner limits numpy's BLAS to ``--threads`` as well as torch: multi-threaded
    BLAS on small matrices mostly spins on a shared machine (the Zernike moments of lfd.py ran 100x slower)."""
    sweep = Sweep(ctx)
    split = _load_data(config, ctx)
    device = ctx.device
    res = split.train.res
    train_vox = torch.from_numpy(split.train.voxels).float()[:, None].to(device)
    test_vox = torch.from_numpy(split.test.voxels).float()[:, None].to(device)

    imae = _train_imae(config, ctx, sweep, split, train_vox)
    cnnae = _train_cnnae(config, ctx, sweep, train_vox)
    imae.eval()
    cnnae.eval()
    metrics: dict[str, float] = {"n_train": len(split.train), "n_test": len(split.test), "voxel_res": res}

    n_eval = min(config.eval_shapes, len(split.test))
    eval_idx = _spread(len(split.test), n_eval)
    gt_grids = split.test.voxels[eval_idx]
    gt_meshes = [marching_cubes(g, cell_centred=True) for g in gt_grids]
    gt_samples = [
        sample_mesh(m, config.cd_points, np.random.default_rng(ctx.seed_for("gt", i))) for i, m in enumerate(gt_meshes)
    ]
    gt_desc = [lfd_descriptors(g, config.lfd_size) for g in gt_grids] if config.lfd_size else None
    z_test = encode(imae.encoder, test_vox[eval_idx])
    im_grids = [_decode_grid(imae, z, res) for z in z_test]
    with torch.no_grad():
        cnn_grids = [cnnae(test_vox[i : i + 1])[0, 0].cpu().numpy() for i in eval_idx]
    recon = {}
    for name, grids in (("imae", im_grids), ("cnnae", cnn_grids)):
        recon[name] = _reconstruction_metrics(ctx, config, name, grids, gt_grids, gt_samples, gt_desc)
        metrics.update({f"{name}_{k}": v for k, v in recon[name]["summary"].items()})
    names = ["imae", "cnnae"]
    if config.svr_steps:
        svr_grids = _single_view(config, ctx, sweep, imae, split, train_vox, eval_idx)
        recon["svr"] = _reconstruction_metrics(ctx, config, "svr", svr_grids, gt_grids, gt_samples, gt_desc)
        metrics.update({f"svr_{k}": v for k, v in recon["svr"]["summary"].items()})
        names.append("svr")
    _reconstruction_table(config, ctx, metrics, names, n_eval, res)
    _figure_reconstructions(config, ctx, split, eval_idx, gt_meshes, recon)
    metrics.update(_interpolation(config, ctx, imae, split, test_vox))
    metrics.update(_generation(config, ctx, sweep, imae, cnnae, train_vox, split, gt_samples, gt_desc))
    metrics.update(_coarse_to_fine(config, ctx, imae, z_test))
    return metrics


def _reconstruction_table(
    config: IMNetConfig, ctx: RunContext, metrics: dict[str, float], names: list[str], n_eval: int, res: int
) -> None:
    labels = {"imae": "IM-AE", "cnnae": "CNN-AE", "svr": "IM-SVR (one rendered view)"}
    columns = ["model", "IoU", "CD x1000", "normal consistency"] + (["LFD (simplified)"] if config.lfd_size else [])
    rows = []
    for name in names:
        row = [
            labels[name],
            f"{metrics[f'{name}_iou']:.4f}",
            f"{metrics[f'{name}_cd_x1000']:.3f}",
            f"{metrics[f'{name}_nc']:.4f}",
        ]
        rows.append(row + ([f"{metrics[f'{name}_lfd']:.3f}"] if config.lfd_size else []))
    ctx.add_table(
        f"Reconstruction of {n_eval} held-out shapes at {res}^3 (same latent size z={config.z_dim}); CD: squared L2, "
        f"sum of both directions, x1000, {config.cd_points} points per mesh, unit cube [-0.5, 0.5]^3; LFD: "
        "simplified light-field distance (lfd.py; not on the paper's scale)",
        columns,
        rows,
    )


# -- data ---------------------------------------------------------------------------------------------------


def _load_data(config: IMNetConfig, ctx: RunContext) -> Split:
    """Procedural shapes (written to and read back from IM-NET HDF5), or the user's IM-NET HDF5 file."""
    if config.data_file:
        shapes, _ = read_imnet_hdf5(Path(config.data_file).expanduser(), [])
        if shapes.res % config.voxel_res:
            raise ConfigError(f"voxel_res: {config.voxel_res} must divide the file's voxel resolution {shapes.res}")
        if shapes.res != config.voxel_res:
            shapes = ShapeSet(downsample_max(shapes.voxels, config.voxel_res), shapes.labels, shapes.categories)
        ctx.note(f"Data: {len(shapes)} shapes read from {config.data_file} (IM-NET HDF5 layout).")
    else:
        shapes = make_shape_set(config.categories, config.per_category, config.voxel_res, ctx.seed_for("data"))
        ctx.note(
            f"Data: {config.per_category} procedural shapes per category ({', '.join(config.categories)}), "
            f"voxelised at {config.voxel_res}^3; the first {config.train_fraction:.0%} of each category train."
        )
    train_idx, test_idx = [], []
    for label in np.unique(shapes.labels):
        members = np.flatnonzero(shapes.labels == label)
        cut = max(1, int(round(config.train_fraction * len(members))))
        train_idx.extend(members[:cut])
        test_idx.extend(members[cut:])
    train, test = shapes.subset(np.asarray(train_idx)), shapes.subset(np.asarray(test_idx))
    if len(test) == 0:
        raise ConfigError("train_fraction: leaves no test shapes; lower it or add shapes (per_category)")
    path = write_imnet_hdf5(
        ctx.out_dir / "data" / "train.hdf5", train, sorted(set(config.schedule_res)), ctx.seed_for("points")
    )
    _, sets = read_imnet_hdf5(path, sorted(set(config.schedule_res)))
    return Split(train, test, {s.res: s for s in sets})


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (so every category is represented)."""
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


# -- training -----------------------------------------------------------------------------------------------


def _train_imae(config: IMNetConfig, ctx: RunContext, sweep: Sweep, split: Split, train_vox: torch.Tensor) -> IMAE:
    torch.manual_seed(ctx.seed_for("imae", "init"))
    model = IMAE(
        split.train.res, config.ef_dim, config.z_dim, config.gf_dim, config.decoder, config.output_skip, config.norm
    )
    model = model.to(ctx.device)

    def fit() -> None:
        point_sets = {
            r: (torch.from_numpy(s.points).to(ctx.device), torch.from_numpy(s.values).to(ctx.device))
            for r, s in split.point_sets.items()
        }
        train_imae(
            sweep,
            "imae",
            model,
            train_vox,
            point_sets,
            schedule=list(zip(config.schedule_res, config.schedule_steps)),
            batch_shapes=config.batch_shapes,
            batch_points=config.batch_points,
            lr=config.lr,
            beta1=config.beta1,
            generator=ctx.generator("imae", "train", device="cpu"),
            checkpoint_every=config.checkpoint_every,
        )

    sweep.fit_once("imae", model, fit)
    kwargs = {"res": split.train.res, "ef_dim": config.ef_dim, "z_dim": config.z_dim, "gf_dim": config.gf_dim,
              "variant": config.decoder, "output_skip": config.output_skip, "norm": config.norm}
    ctx.save_model("imae", model, build=IMAE, kwargs=kwargs, meta={"input": "voxels (B, 1, res, res, res) in {0, 1}"})
    return model


def _train_cnnae(config: IMNetConfig, ctx: RunContext, sweep: Sweep, train_vox: torch.Tensor) -> CNNAE:
    torch.manual_seed(ctx.seed_for("cnnae", "init"))
    model = CNNAE(train_vox.shape[-1], config.ef_dim, config.z_dim, config.cnn_gf_dim, config.norm).to(ctx.device)
    fit = partial(
        train_cnnae,
        sweep,
        "cnnae",
        model,
        train_vox,
        steps=config.cnn_steps,
        batch_shapes=config.cnn_batch_shapes or config.batch_shapes,
        lr=config.cnn_lr or config.lr,
        beta1=config.beta1,
        generator=ctx.generator("cnnae", "train", device="cpu"),
        checkpoint_every=config.checkpoint_every,
    )
    sweep.fit_once("cnnae", model, fit)
    kwargs = {"res": train_vox.shape[-1], "ef_dim": config.ef_dim, "z_dim": config.z_dim, "gf_dim": config.cnn_gf_dim,
              "norm": config.norm}
    ctx.save_model("cnnae", model, build=CNNAE, kwargs=kwargs, meta={"input": "voxels (B, 1, res, res, res) in {0, 1}"})
    return model


# -- evaluation ---------------------------------------------------------------------------------------------


def _decode_grid(model: IMAE, z: torch.Tensor, res: int) -> np.ndarray:
    """Inside probabilities at the cell centres of a ``res``^3 grid."""
    return decode_field(model.decoder, z)(cell_centres(res)).reshape(res, res, res)


def _reconstruction_metrics(
    ctx: RunContext,
    config: IMNetConfig,
    name: str,
    grids: list[np.ndarray],
    gt_grids: np.ndarray,
    gt_samples: list[tuple[np.ndarray, np.ndarray]],
    gt_desc: list[np.ndarray] | None,
) -> dict:
    ious, cds, ncs, meshes, lfds = [], [], [], [], []
    for i, (grid, gt, (gp, gn)) in enumerate(zip(grids, gt_grids, gt_samples)):
        ious.append(voxel_iou(grid >= 0.5, gt))
        mesh = marching_cubes(grid, cell_centred=True)
        meshes.append(mesh)
        rng = np.random.default_rng(ctx.seed_for(name, "cd", i))
        points, normals = _surface_or_origin(mesh, config.cd_points, rng)
        cd, nc = chamfer_and_normals(points, normals, gp, gn)
        cds.append(cd)
        ncs.append(nc)
        if gt_desc is not None:
            lfds.append(lfd_matrix([lfd_descriptors(grid >= 0.5, config.lfd_size)], [gt_desc[i]])[0, 0])
    summary = {
        "iou": float(np.mean(ious)),
        "cd_x1000": 1000.0 * float(np.mean(cds)),
        "nc": float(np.mean(ncs)),
        "empty_fraction": float(np.mean([m.empty for m in meshes])),
    }
    if lfds:
        summary["lfd"] = float(np.mean(lfds))
    return {"summary": summary, "meshes": meshes}


def _figure_reconstructions(
    config: IMNetConfig, ctx: RunContext, split: Split, eval_idx: np.ndarray, gt_meshes: list[Mesh], recon: dict
) -> None:
    cols = _spread(len(eval_idx), min(config.figure_shapes, len(eval_idx)))
    rows = [
        [gt_meshes[c] for c in cols],
        [recon["imae"]["meshes"][c] for c in cols],
        [recon["cnnae"]["meshes"][c] for c in cols],
    ]
    row_titles = ["ground truth", "IM-AE", "CNN-AE"]
    if "svr" in recon:
        rows.append([recon["svr"]["meshes"][c] for c in cols])
        row_titles.append("IM-SVR")
    titles = [split.test.categories[split.test.labels[eval_idx[c]]] for c in cols]
    render_meshes(ctx.figure_path("reconstructions"), rows, row_titles, titles)
    mesh_dir = ctx.out_dir / "meshes"
    mesh_dir.mkdir(exist_ok=True)
    write_obj(mesh_dir / "imae_test0.obj", recon["imae"]["meshes"][0])
    write_ply(mesh_dir / "imae_test0.ply", recon["imae"]["meshes"][0])
    write_obj(mesh_dir / "cnnae_test0.obj", recon["cnnae"]["meshes"][0])


def _interpolation(
    config: IMNetConfig, ctx: RunContext, imae: IMAE, split: Split, test_vox: torch.Tensor
) -> dict[str, float]:
    """Decode ``(1 - t) z_a + t z_b`` for evenly spaced ``t`` (paper Fig. 6) and check every frame is valid."""
    labels = split.test.labels
    members = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    pairs: list[tuple[int, int]] = []
    for k in range(config.interp_pairs):
        a_group = members[(k // 2) % len(members)]
        b_group = a_group if k % 2 == 0 else members[(k // 2 + 1) % len(members)]
        a = int(a_group[(k // 2) % len(a_group)])
        b = int(b_group[(k // 2 + 1) % len(b_group)])  # same category: a different shape; else another category
        pairs.append((a, b))
    res = split.test.res
    z = encode(imae.encoder, test_vox)
    rows, shares, valid = [], [], []
    for a, b in pairs:
        row = []
        for t in np.linspace(0.0, 1.0, config.interp_frames):
            grid = _decode_grid(imae, (1 - t) * z[a] + t * z[b], res) >= 0.5
            share = largest_component_share(grid)
            shares.append(share)
            valid.append(bool(grid.any()) and share >= config.interp_min_component)
            row.append(marching_cubes(grid.astype(np.float32), cell_centred=True))
        rows.append(row)
    titles = [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, config.interp_frames)]
    row_titles = [f"{split.test.categories[labels[a]]}->{split.test.categories[labels[b]]}" for a, b in pairs]
    render_meshes(ctx.figure_path("interpolation"), rows, row_titles, titles)
    ctx.note(
        f"Interpolation: {len(pairs)} pairs x {config.interp_frames} frames; a frame is valid when non-empty and its "
        f"largest 26-connected part holds >= {config.interp_min_component:.0%} of the occupied voxels."
    )
    return {"interp_valid_fraction": float(np.mean(valid)), "interp_min_component_share": float(np.min(shares))}


def _generation(
    config: IMNetConfig,
    ctx: RunContext,
    sweep: Sweep,
    imae: IMAE,
    cnnae: CNNAE,
    train_vox: torch.Tensor,
    split: Split,
    gt_samples: list[tuple[np.ndarray, np.ndarray]],
    gt_desc: list[np.ndarray] | None,
) -> dict[str, float]:
    """IM-GAN (Sec. 3.3): WGAN-GP on training codes, samples decoded by the implicit decoder; coverage / MMD
    against the held-out shapes with the Chamfer distance and (if ``lfd_size``) the simplified LFD. CNN-GAN
    (the paper's Sec. 4.3 baseline, ``cnn_gan``): the same latent GAN on the CNN-AE's codes, decoded by the
    CNN decoder. Reference: as many ground-truth training shapes as samples."""
    res = split.train.res
    sampled = {"gan": _latent_gan_samples(config, ctx, sweep, "gan", encode(imae.encoder, train_vox))}
    grids = {"gan": [_decode_grid(imae, z, res) for z in sampled["gan"]]}
    if config.cnn_gan:
        sampled["cnngan"] = _latent_gan_samples(config, ctx, sweep, "cnngan", encode(cnnae.encoder, train_vox))
        with torch.no_grad():
            grids["cnngan"] = [cnnae.decoder(z[None])[0, 0].cpu().numpy() for z in sampled["cnngan"]]
    train_idx = _spread(len(split.train), min(config.gan_samples, len(split.train)))
    grids["train_set"] = [split.train.voxels[i].astype(np.float32) for i in train_idx]
    meshes = {name: [marching_cubes(g, cell_centred=True) for g in gs] for name, gs in grids.items()}
    mesh_dir = ctx.out_dir / "meshes"
    mesh_dir.mkdir(exist_ok=True)
    for i, mesh in enumerate(meshes["gan"][:2]):  # generated shapes as meshes, like the reconstructions
        write_obj(mesh_dir / f"imgan_sample{i}.obj", mesh)
        write_ply(mesh_dir / f"imgan_sample{i}.ply", mesh)
    ref_points = [p for p, _ in gt_samples]
    metrics: dict[str, float] = {}
    rows = []
    labels = {"gan": "IM-GAN", "cnngan": "CNN-GAN (baseline)", "train_set": "training shapes (reference)"}
    for name, mesh_list in meshes.items():
        rng = np.random.default_rng(ctx.seed_for(name, "cd"))
        points = [_surface_or_origin(m, config.cd_points, rng)[0] for m in mesh_list]
        cov, mmd = coverage_mmd(chamfer_matrix(points, ref_points))
        metrics[f"{name}_coverage"], metrics[f"{name}_mmd_x1000"] = cov, 1000.0 * mmd
        row = [f"{labels[name]} ({len(mesh_list)})", f"{cov:.3f}", f"{1000.0 * mmd:.3f}"]
        if gt_desc is not None:
            desc = [lfd_descriptors(g >= 0.5, config.lfd_size) for g in grids[name]]
            cov_l, mmd_l = coverage_mmd(lfd_matrix(desc, gt_desc))
            metrics[f"{name}_coverage_lfd"], metrics[f"{name}_mmd_lfd"] = cov_l, mmd_l
            row += [f"{cov_l:.3f}", f"{mmd_l:.3f}"]
        if name != "train_set":
            metrics[f"{name}_empty_fraction"] = float(np.mean([m.empty for m in mesh_list]))
        rows.append(row)
    ctx.add_table(
        f"Generation: coverage / MMD against {len(ref_points)} held-out shapes (Chamfer x1000"
        + ("; simplified LFD)" if gt_desc is not None else ")"),
        ["samples", "COV (CD)", "MMD-CD x1000"] + (["COV (LFD)", "MMD-LFD"] if gt_desc is not None else []),
        rows,
    )
    cols = max(1, min(8, len(meshes["gan"])))
    rows_m = [meshes["gan"][:cols]] + ([meshes["cnngan"][:cols]] if "cnngan" in meshes else [])
    render_meshes(ctx.figure_path("gan_samples"), rows_m, ["IM-GAN", "CNN-GAN"][: len(rows_m)], [])
    return metrics


def _latent_gan_samples(
    config: IMNetConfig, ctx: RunContext, sweep: Sweep, unit: str, codes: torch.Tensor
) -> torch.Tensor:
    """Train (or reload) a latent WGAN-GP on ``codes`` and return ``gan_samples`` generated codes."""
    torch.manual_seed(ctx.seed_for(unit, "init"))
    gen = LatentGenerator(config.gan_noise_dim, config.z_dim, config.gan_hidden).to(ctx.device)
    critic = LatentCritic(config.z_dim, config.gan_hidden).to(ctx.device)
    fit = partial(
        train_latent_gan,
        sweep,
        unit,
        gen,
        critic,
        codes,
        steps=config.gan_steps,
        batch_size=config.gan_batch,
        noise_dim=config.gan_noise_dim,
        n_critic=config.gan_n_critic,
        noise_std=config.gan_noise_std,
        beta2=config.gan_beta2,
        gp_weight=config.gan_gp_weight,
        lr=config.gan_lr,
        generator=ctx.generator(unit, "train", device="cpu"),
        checkpoint_every=config.checkpoint_every,
    )
    sweep.fit_once(unit, gen, fit)
    kwargs = {"noise_dim": config.gan_noise_dim, "z_dim": config.z_dim, "hidden": config.gan_hidden}
    decoder = "imae" if unit == "gan" else "cnnae"  # models/gan: IM-GAN's generator; models/cnngan: CNN-GAN's
    meta = {"noise_std": config.gan_noise_std, "decoder": f"models/{decoder} decodes the generated codes"}
    ctx.save_model(unit, gen, build=LatentGenerator, kwargs=kwargs, meta=meta)
    gen.eval()
    sample_generator = ctx.generator(unit, "sample", device="cpu")
    noise = config.gan_noise_std * torch.randn(config.gan_samples, config.gan_noise_dim, generator=sample_generator)
    with torch.no_grad():
        return gen(noise.to(ctx.device))


def _single_view(
    config: IMNetConfig,
    ctx: RunContext,
    sweep: Sweep,
    imae: IMAE,
    split: Split,
    train_vox: torch.Tensor,
    eval_idx: np.ndarray,
) -> list[np.ndarray]:
    """IM-SVR (Sec. 3.4): an image encoder regresses the frozen IM-AE codes of the training shapes from
    rendered views (MSE); held-out shapes are reconstructed from one unseen view by the frozen decoder."""
    directions = svr_directions(config.svr_views + 1)  # the last direction is only used for test images
    train_images = torch.from_numpy(render_views(split.train.voxels, directions[:-1], config.svr_image))
    test_images = torch.from_numpy(render_views(split.test.voxels[eval_idx], directions[-1:], config.svr_image))
    codes = encode(imae.encoder, train_vox)
    torch.manual_seed(ctx.seed_for("svr", "init"))
    model = ImageEncoder(config.svr_image, config.z_dim, config.svr_width).to(ctx.device)
    fit = partial(
        train_svr,
        sweep,
        "svr",
        model,
        train_images.to(ctx.device),
        codes,
        steps=config.svr_steps,
        batch_size=config.svr_batch,
        lr=config.svr_lr,
        generator=ctx.generator("svr", "train", device="cpu"),
        checkpoint_every=config.checkpoint_every,
    )
    sweep.fit_once("svr", model, fit)
    kwargs = {"size": config.svr_image, "z_dim": config.z_dim, "width": config.svr_width}
    meta = {"decoder": "models/imae decodes the predicted codes", "views": config.svr_views}
    ctx.save_model("svr", model, build=ImageEncoder, kwargs=kwargs, meta=meta)
    z = predict_codes(model, test_images[:, 0].to(ctx.device))
    ctx.note(
        f"IM-SVR: a 2D CNN (width {config.svr_width}) regresses the frozen IM-AE codes from {config.svr_image}^2 "
        f"depth-shaded renderings ({config.svr_views} views per training shape, {config.svr_steps} steps); held-out "
        "shapes are decoded from one further, unseen view."
    )
    return [_decode_grid(imae, zi, split.train.res) for zi in z]


def _surface_or_origin(mesh: Mesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Surface samples, or for an empty mesh the single point (0, 0, 0) with a zero normal, so that an empty
    reconstruction gets a finite, large Chamfer distance (the shape collapsed to a point) and NC 0."""
    if mesh.empty:
        return np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)
    return sample_mesh(mesh, count, rng)


def _coarse_to_fine(config: IMNetConfig, ctx: RunContext, imae: IMAE, z_test: torch.Tensor) -> dict[str, float]:
    """Coarse-to-fine vs dense extraction on ``c2f_shapes`` held-out codes at ``c2f_res``^3 cells."""
    ious, fractions = [], []
    n = config.c2f_res
    for i in range(min(config.c2f_shapes, len(z_test))):
        field = decode_field(imae.decoder, z_test[i])
        dense = dense_grid(field, n)
        c2f = coarse_to_fine_grid(field, n, config.c2f_coarse)
        ious.append(voxel_iou(c2f.values >= 0.5, dense.values >= 0.5))
        fractions.append(c2f.evaluations / dense.evaluations)
        if i == 0:
            mesh = marching_cubes(c2f.values)
            write_obj(ctx.out_dir / "meshes" / f"imae_test0_c2f{n}.obj", mesh)
            write_ply(ctx.out_dir / "meshes" / f"imae_test0_c2f{n}.ply", mesh)
    ctx.add_table(
        f"Coarse-to-fine ({config.c2f_coarse}^3 -> {n}^3 cells) vs dense ({(n + 1) ** 3} decoder evaluations)",
        ["shape", "IoU vs dense", "evaluation fraction"],
        [[i, f"{iou:.5f}", f"{f:.4f}"] for i, (iou, f) in enumerate(zip(ious, fractions))],
    )
    return {"c2f_iou_vs_dense_min": float(np.min(ious)), "c2f_eval_fraction": float(np.mean(fractions))}
