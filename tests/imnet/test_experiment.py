from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError, resolve_config
from reprolab.core.registry import get_experiment
from reprolab.imnet.mesh import read_obj, signed_volume

TINY = [
    "per_category=6",
    "voxel_res=16",
    "schedule_res=[8,16]",
    "schedule_steps=[4,4]",
    "cnn_steps=4",
    "gan_steps=2",
    "gan_hidden=16",
    "gan_samples=3",
    "eval_shapes=3",
    "cd_points=128",
    "interp_pairs=1",
    "interp_frames=3",
    "c2f_res=32",
    "c2f_coarse=8",
    "c2f_shapes=1",
    "figure_shapes=2",
    "lfd_size=32",
    "cnn_gan=true",
    "svr_steps=3",
    "svr_image=16",
    "svr_width=4",
]


def test_quick_cli_run_writes_valid_results(tmp_path):
    args = ["run", "imnet", "--out", str(tmp_path / "run")]
    # 50 steps at 8^3 so that the first stage reaches a log point (every 50 steps): the switch shows in the log
    for item in TINY:
        args += ["--set", "schedule_steps=[50,3]" if item.startswith("schedule_steps") else item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "run"
    results = json.loads((out / "results.json").read_text())
    ids = {c["id"] for c in results["claims"]} | {c["id"] for c in results["claims_not_evaluated"]}
    assert ids == {c.id for c in get_experiment("imnet").claims}
    metrics = results["metrics"]
    for name in (
        "imae_iou",
        "cnnae_iou",
        "imae_cd_x1000",
        "cnnae_cd_x1000",
        "interp_valid_fraction",
        "gan_coverage",
        "gan_mmd_x1000",
        "c2f_iou_vs_dense_min",
        "c2f_eval_fraction",
        "imae_lfd",
        "cnnae_lfd",
        "gan_mmd_lfd",
        "cnngan_mmd_lfd",
        "svr_iou",
        "svr_cd_x1000",
    ):
        assert metrics[name] is not None, name
    assert 0.0 <= metrics["imae_iou"] <= 1.0 and 0.0 < metrics["c2f_eval_fraction"] <= 1.0
    for figure in ("reconstructions", "interpolation", "gan_samples"):
        assert (out / "figures" / f"{figure}.png").exists()
    assert (out / "meshes" / "imae_test0.obj").exists() and (out / "data" / "train.hdf5").exists()
    assert (out / "meshes" / "imgan_sample0.obj").exists() and (out / "meshes" / "imgan_sample0.ply").exists()
    for obj in sorted((out / "meshes").glob("*.obj")):  # every exported mesh faces outward (closed surfaces)
        mesh = read_obj(obj)
        assert mesh.empty or signed_volume(mesh) > 0, obj.name
    # progressive training switched resolution as configured: 8^3 for steps 1-50, then 16^3 up to step 53
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    imae = [(entry["step"], entry["res"]) for entry in logs if entry.get("unit") == "imae"]
    assert imae == [(50, 8.0), (53, 16.0)]
    _saved_autoencoders_reconstruct_as_in_the_run(out, results, tmp_path / "again")


def _saved_autoencoders_reconstruct_as_in_the_run(out, results, scratch) -> None:
    """models/imae and models/cnnae, rebuilt by load_run, give the run's reconstruction IoU on its test shapes."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    import reprolab
    from reprolab.core.seeding import derive_seed
    from reprolab.imnet.experiment import IMNetConfig
    from reprolab.imnet.metrics import voxel_iou
    from reprolab.imnet.pipeline import _decode_grid, _load_data, _spread
    from reprolab.imnet.train import encode

    run = reprolab.load_run(out)
    assert set(run.models) == {"imae", "cnnae", "gan", "cnngan", "svr"}
    config = IMNetConfig(**run.config)
    ctx = SimpleNamespace(seed_for=lambda *keys: derive_seed(results["seed"], *keys), note=print, out_dir=scratch)
    split = _load_data(config, ctx)
    eval_idx = _spread(len(split.test), min(config.eval_shapes, len(split.test)))
    vox = torch.from_numpy(split.test.voxels[eval_idx]).float()[:, None]
    imae, cnnae = run.model("imae"), run.model("cnnae")
    grids = {"imae": [_decode_grid(imae, z, split.train.res) for z in encode(imae.encoder, vox)]}
    with torch.no_grad():
        grids["cnnae"] = [g[0].numpy() for g in cnnae(vox)]
    for name, decoded in grids.items():
        iou = np.mean([voxel_iou(g >= 0.5, gt) for g, gt in zip(decoded, split.test.voxels[eval_idx])])
        assert iou == pytest.approx(results["metrics"][f"{name}_iou"], abs=1e-12)


def test_presets_and_config_errors():
    experiment = get_experiment("imnet")
    paper = resolve_config(experiment.config_cls, experiment.presets, "paper")
    assert paper.voxel_res == 64 and paper.schedule_res == [16, 32, 64] and paper.gf_dim == 128
    # the paper's supplementary / paper-era code: batch norm, no output skip, one shape per step, latent GAN
    # with one critic step, batch 50, noise std 0.2, Adam(5e-5, 0.5, 0.999)
    assert paper.norm == "batch" and paper.output_skip is False and paper.decoder == "paper"
    assert paper.batch_shapes == 1 and paper.lr == 5e-5 and paper.beta1 == 0.5
    assert (paper.gan_n_critic, paper.gan_batch, paper.gan_noise_std, paper.gan_beta2) == (1, 50, 0.2, 0.999)
    cpu = resolve_config(experiment.config_cls, experiment.presets, "cpu")
    assert sum(cpu.schedule_steps) == cpu.cnn_steps == 6000
    with pytest.raises(ConfigError, match="categories"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"categories": ["boat"]})
    with pytest.raises(ConfigError, match="schedule_res"):
        bad = {"schedule_res": [12], "schedule_steps": [1]}
        resolve_config(experiment.config_cls, experiment.presets, "quick", bad)
    with pytest.raises(ConfigError, match="decoder"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"decoder": "big"})
    with pytest.raises(ConfigError, match="cnn_lr"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"cnn_lr": -1.0})
    for override, field in (
        ({"schedule_steps": [-5, 2]}, r"schedule_steps\[0\]"),
        ({"batch_shapes": 0}, "batch_shapes"),
        ({"batch_points": 0}, "batch_points"),
        ({"eval_shapes": 0}, "eval_shapes"),
        ({"gan_samples": 0}, "gan_samples"),
        ({"gan_n_critic": 0}, "gan_n_critic"),
        ({"interp_pairs": 0}, "interp_pairs"),
        ({"figure_shapes": 0}, "figure_shapes"),
        ({"cnn_steps": -1}, "cnn_steps"),
        ({"gan_lr": 0.0}, "gan_lr"),
        ({"beta1": 1.0}, "beta1"),
        ({"interp_min_component": 0.0}, "interp_min_component"),
        ({"c2f_res": 16, "c2f_coarse": 16}, "c2f_res"),
    ):
        with pytest.raises(ConfigError, match=field):
            resolve_config(experiment.config_cls, experiment.presets, "quick", override)
    quick = resolve_config(experiment.config_cls, experiment.presets, "quick")
    assert quick.cnn_lr == 0.0 and quick.cnn_steps == sum(quick.schedule_steps)  # same lr and budget by default


def test_run_on_a_user_hdf5_file(tmp_path):
    from reprolab.imnet.data import make_shape_set, write_imnet_hdf5

    path = write_imnet_hdf5(tmp_path / "mine.hdf5", make_shape_set(["lamp", "airplane"], 5, 32, seed=3), [16], seed=0)
    args = ["run", "imnet", "--out", str(tmp_path / "run"), "--set", f"data_file={path}"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metrics"]["n_train"] == 8 and results["metrics"]["voxel_res"] == 16
    assert any("mine.hdf5" in note for note in results["notes"])
