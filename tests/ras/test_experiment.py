from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import resolve_config
from reprolab.core.errors import ConfigError
from reprolab.core.registry import get_experiment


def test_quick_cli_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    overrides = [
        "steps=4", "n_train=8", "n_test=4", "image_size=32", "batch_size=4",
        "fps_size=64", "fps_repeats=1", "figure_examples=2",
        "pretrain_steps=2", "pretrain_images=8", "pretrain_size=32", "pretrain_batch=4",
    ]  # fmt: skip
    args = ["run", "ras", "--out", str(out)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    metrics = results["metrics"]
    for prefix in ("ras", "no_ra"):
        for name in ("mae", "max_f", "mean_f", "s_measure", "max_e", "mean_e"):
            value = metrics[f"{prefix}_{name}"]
            assert 0.0 <= value <= 1.0, (prefix, name, value)
    assert metrics["full_width_params"] == 20_228_934
    assert metrics["fps_352"] > 0
    assert 0.0 <= metrics["pretrain_mean_ap"] <= 1.0  # backbone_init=proxy is the default
    evaluated = {c["id"] for c in results["claims"]}
    skipped = {c["id"] for c in results["claims_not_evaluated"]}
    assert evaluated | skipped == {c.id for c in get_experiment("ras").claims}
    assert skipped == {"full_width_fps_at_352"}  # only timed with full_width_fps=true
    assert (out / "figures" / "pr_curves.png").exists()
    assert (out / "figures" / "side_outputs_grid.png").exists()


def test_paper_preset_is_the_eccv_recipe(tmp_path):
    experiment = get_experiment("ras")
    assert resolve_config(experiment.config_cls, experiment.presets, "paper").backbone_init == "imagenet"
    vgg = str(tmp_path / "vgg16.pth")
    paper = resolve_config(experiment.config_cls, experiment.presets, "paper", {"pretrained_vgg16": vgg})
    assert paper.width == 1.0 and paper.full_width_fps
    assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay) == ("sgd", 1e-8, 0.9, 5e-4)
    assert (paper.loss_reduction, paper.batch_size, paper.accumulate, paper.steps) == ("sum", 1, 10, 10000)
    assert int(paper.lr_step_at * paper.steps) == 7500 and paper.s6_lr_mult == 0.1
    assert (paper.bias_lr_mult, paper.bias_decay, paper.input_norm) == (2.0, False, "bgr_mean")
    later = resolve_config(experiment.config_cls, experiment.presets, "ras_pytorch", {"pretrained_vgg16": vgg})
    assert (later.optimizer, later.lr, later.batch_size, later.input_norm) == ("adam", 5e-5, 10, "imagenet")


def test_imagenet_init_without_weights_falls_back_explicitly(tmp_path):
    out = tmp_path / "run"
    overrides = [
        "backbone_init=imagenet", "input_norm=bgr_mean", "steps=2", "n_train=4", "n_test=2", "image_size=32",
        "batch_size=2", "fps_size=32", "fps_repeats=1", "figure_examples=1", "ablation=false",
        "pretrain_steps=1", "pretrain_images=4", "pretrain_size=32", "pretrain_batch=2",
    ]  # fmt: skip
    args = ["run", "ras", "--out", str(out)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["imagenet_backbone"] == 0.0
    assert any(note.startswith("FALLBACK") for note in results["notes"])


def test_eccv_optimizer_groups_follow_the_prototxt_multipliers():
    from reprolab.ras import RAS
    from reprolab.ras.train import Recipe, make_optimizer

    model = RAS(width=0.125)
    recipe = Recipe(optimizer="sgd", lr=1e-8, weight_decay=5e-4, s6_lr_mult=0.1, bias_lr_mult=2.0, bias_decay=False)
    optimizer = make_optimizer(model, recipe)
    by_param = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["global_saliency.predict.weight"])]["lr"] == pytest.approx(1e-9)
    assert by_param[id(named["global_saliency.predict.bias"])]["lr"] == pytest.approx(2e-9)
    assert by_param[id(named["backbone.features.0.bias"])]["lr"] == pytest.approx(2e-8)
    assert by_param[id(named["backbone.features.0.bias"])]["weight_decay"] == 0.0
    assert by_param[id(named["backbone.features.0.weight"])]["weight_decay"] == 5e-4
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_split_and_evaluate_only_from_a_saved_run(tmp_path):
    import numpy as np
    from PIL import Image

    for i in range(10):
        for sub in ("img", "gt"):
            (tmp_path / sub).mkdir(exist_ok=True)
        image = np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "img" / f"p{i}.jpg")
        mask = np.zeros((20, 20), dtype=np.uint8)  # masks at half the image size: resized to their image
        mask[5:15, 5:15] = 255
        Image.fromarray(mask).save(tmp_path / "gt" / f"p{i}.png")
    common = [
        "data=folder", f"train_images={tmp_path / 'img'}", f"train_masks={tmp_path / 'gt'}", "split=0.3",
        "steps=2", "image_size=32", "batch_size=2", "fps_size=32", "fps_repeats=1", "figure_examples=1",
        "backbone_init=scratch", "ablation=false",
    ]  # fmt: skip
    args = ["run", "ras", "--out", str(tmp_path / "train")]
    for item in common:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trained = json.loads((tmp_path / "train" / "results.json").read_text())
    assert (tmp_path / "train" / "models" / "ras_seed0.pt").exists()
    import reprolab  # the safetensors copy load_run rebuilds holds the weights evaluate_run reads from the .pt

    saved = torch.load(tmp_path / "train" / "models" / "ras_seed0.pt", map_location="cpu", weights_only=True)
    rebuilt = reprolab.load_run(tmp_path / "train").model("ras_seed0").state_dict()
    assert rebuilt.keys() == saved.keys() and all(torch.equal(rebuilt[k], saved[k]) for k in saved)
    assert any("3 test pairs" in note and "10 mask(s)" in note for note in trained["notes"])
    args = ["run", "ras", "--out", str(tmp_path / "eval"), "--set", f"evaluate_run={tmp_path / 'train'}"]
    for item in common:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert again["metrics"]["ras_mae"] == trained["metrics"]["ras_mae"]
    assert not (tmp_path / "eval" / "models").exists()


def test_presets_resolve_and_bad_configs_name_the_field():
    experiment = get_experiment("ras")
    with pytest.raises(ConfigError, match="pretrained_vgg16"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"pretrained_vgg16": "x.pth"})
    assert resolve_config(experiment.config_cls, experiment.presets, "quick").backbone_init == "proxy"
    with pytest.raises(ConfigError, match="backbone_init"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"backbone_init": "resnet"})
    with pytest.raises(ConfigError, match="pretrain_size"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"pretrain_size": 16})
    with pytest.raises(ConfigError, match="coarse_oracle"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"coarse_oracle": -1})
    with pytest.raises(ConfigError, match="scene_style"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"scene_style": "holes"})
    with pytest.raises(ConfigError, match="data"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"data": "imagenet"})
    with pytest.raises(ConfigError, match="train_images"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"data": "folder"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", -1, "lr: must be > 0"),
        ("weight_decay", -0.1, "weight_decay: must be >= 0"),
        ("checkpoint_every", -3, "checkpoint_every: must be >= 0"),
        ("figure_examples", -1, "figure_examples: must be >= 0"),
        ("n_test", 0, "n_test: must be >= 1"),
        ("batch_size", 0, "batch_size: must be >= 1"),
        ("steps", -5, "steps: must be >= 0"),
        ("width", float("nan"), "width: must be a finite number"),
        ("pretrain_lr", 0, "pretrain_lr: must be > 0"),
        ("pretrain_batch", 0, "pretrain_batch: must be >= 1"),
        ("fps_repeats", 0, "fps_repeats: must be >= 1"),
    ],
)
def test_each_bad_value_names_its_field(key, value, message):
    experiment = get_experiment("ras")
    with pytest.raises(ConfigError, match=message):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {key: value})
