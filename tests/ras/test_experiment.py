from __future__ import annotations

import json

import pytest
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


def test_presets_resolve_and_bad_configs_name_the_field():
    experiment = get_experiment("ras")
    paper = resolve_config(experiment.config_cls, experiment.presets, "paper")
    assert paper.width == 1.0 and paper.full_width_fps
    with pytest.raises(ConfigError, match="pretrained_vgg16"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"pretrained_vgg16": "x.pth"})
    assert resolve_config(experiment.config_cls, experiment.presets, "quick").backbone_init == "proxy"
    with pytest.raises(ConfigError, match="backbone_init"):
        resolve_config(experiment.config_cls, experiment.presets, "quick", {"backbone_init": "imagenet"})
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
