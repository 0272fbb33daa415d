"""End-to-end CLI run of the CoCoOp experiment (shrunk) and preset validation."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.cocoop.experiment import CoCoOpConfig
from reprolab.core.config import ConfigError, resolve_config
from reprolab.core.registry import get_experiment


def test_quick_run_end_to_end(tmp_path, monkeypatch, tiny_cli_args):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    args = tiny_cli_args(tmp_path / "run", "test_per_class=3", "shot_curve=[1]")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    cross = "cocoop_beats_coop_cross_dataset"  # needs dataset= and target_datasets= (test_realdata.py)
    assert {c["id"] for c in results["claims"]} == {c.id for c in get_experiment("cocoop").claims} - {cross}
    assert [c["id"] for c in results["claims_not_evaluated"]] == [cross]
    for name in ("zs_base", "coop_new", "cocoop_h", "cocoop_shift", "coop_trainable_params", "lp_base", "lp_new"):
        assert name in results["metrics"]
        assert results["metrics"][name] >= 0
    assert (tmp_path / "run" / "figures" / "base_new_h.png").exists()
    assert (tmp_path / "run" / "figures" / "accuracy_vs_shots.png").exists()
    assert list((tmp_path / "home" / "cocoop").glob("miniclip-*.pt"))  # pretrained model cached
    _saved_learners_predict_as_in_the_run(tmp_path / "run", results)


def _saved_learners_predict_as_in_the_run(out, results) -> None:
    """models/coop and models/cocoop: only the learners saved; rebuilt on the cached mini CLIP, they give the run's
    base accuracy on the run's own base test images."""
    import reprolab
    from reprolab.cocoop.data import ShapesWorld, base_new_split
    from reprolab.cocoop.train import accuracy
    from reprolab.core.seeding import derive_seed, torch_generator

    run = reprolab.load_run(out)
    assert set(run.models) == {"coop", "cocoop"}
    config = run.config
    world = ShapesWorld(config["image_size"], config["n_colours"], config["n_shapes"])
    base, _ = base_new_split(world)
    labels = torch.tensor(base).repeat_interleave(config["test_per_class"])
    pixels, _ = world.render(labels, torch_generator(derive_seed(results["seed"], "test", 1), "cpu"), "dark")
    local = torch.arange(len(base)).repeat_interleave(config["test_per_class"])
    for method in ("coop", "cocoop"):
        model = run.model(method)
        assert not any(k.startswith("clip.") for k in safetensors_keys(out / "models" / f"{method}.safetensors"))
        assert accuracy(model, pixels, local) == pytest.approx(results["metrics"][f"{method}_base"], abs=1e-9)


def safetensors_keys(path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return list(handle.keys())


def test_each_seed_gets_its_own_cached_backbone_unless_shared(tmp_path, monkeypatch, tiny_cli_args):
    """Issue 18: the claims' units (prompt-learning seeds) each pretrain their own mini CLIP (seed pretrain_seed +
    s, in the cache key), so they sample the backbone's variance; backbone_per_seed=false shares one (paper)."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    result = CliRunner().invoke(app, tiny_cli_args(tmp_path / "own", "seeds=[1, 2]", "test_per_class=2"))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "home" / "cocoop").glob("miniclip-*.pt"))) == 2
    units = json.loads((tmp_path / "own" / "results.json").read_text())["units"]
    assert sorted(units) == ["seed1", "seed2"]
    args = tiny_cli_args(tmp_path / "shared", "seeds=[1, 2]", "test_per_class=2", "backbone_per_seed=false")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "home" / "cocoop").glob("miniclip-*.pt"))) == 3  # pretrain_seed 0: one more
    quick = resolve_config(CoCoOpConfig, get_experiment("cocoop").presets, "quick")
    paper = resolve_config(CoCoOpConfig, get_experiment("cocoop").presets, "paper")
    assert quick.backbone_per_seed and len(quick.seeds) == 15 and not paper.backbone_per_seed


def test_paper_preset_gives_coop_and_cocoop_their_own_official_recipes():
    """Official configs: CoOp vit_b16_ctxv1 (batch 32, lr 0.002, 200 epochs), CoCoOp vit_b16_c4_ep10_batch1_ctxv1
    (batch 1, lr 0.002, 10 epochs), both with 1 constant warm-up epoch at 1e-5 (issue 21)."""
    experiment = get_experiment("cocoop")
    for preset in ("paper", "quick"):
        config = resolve_config(experiment.config_cls, experiment.presets, preset)
        coop = (config.coop_epochs, config.coop_batch_size, config.coop_lr)
        cocoop = (config.cocoop_epochs, config.cocoop_batch_size, config.cocoop_lr)
        assert coop != cocoop
        assert config.coop_epochs > config.cocoop_epochs and config.coop_batch_size > config.cocoop_batch_size
    assert coop != cocoop  # the paper preset, checked against the official values:
    config = resolve_config(experiment.config_cls, experiment.presets, "paper")
    assert (config.coop_batch_size, config.coop_lr, config.coop_epochs) == (32, 0.002, 200)
    assert (config.cocoop_batch_size, config.cocoop_lr, config.cocoop_epochs) == (1, 0.002, 10)
    assert (config.warmup_epochs, config.warmup_lr, config.weight_decay) == (1, 1e-5, 5e-4)


def test_paper_preset_resolves_and_bad_values_refused():
    experiment = get_experiment("cocoop")
    config = resolve_config(experiment.config_cls, experiment.presets, "paper")
    config.validate()
    assert config.seeds == [1, 2, 3] and config.shots == 16
    config.template = "a photo of a"
    with pytest.raises(ConfigError, match="template"):
        config.validate()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("template", "{} and {}", "exactly one"),
        ("coop_lr", -1.0, "coop_lr, cocoop_lr and pretrain_lr"),
        ("cocoop_lr", 0.0, "coop_lr, cocoop_lr and pretrain_lr"),
        ("pretrain_lr", 0.0, "coop_lr, cocoop_lr and pretrain_lr"),
        ("cocoop_batch_size", 0, "cocoop_epochs >= 0 and cocoop_batch_size >= 1"),
        ("warmup_lr", -1.0, "warmup_lr"),
        ("width", 30, "width"),
        ("layers", 0, "layers"),
        ("image_size", 0, "image_size"),
        ("pretrain_batch", 0, "pretrain_batch"),
        ("n_ctx", 40, "32 text positions"),
        ("clip_path", "/nonexistent/clip", "clip_path"),
        ("ctx_init", "a zebra of a", "ctx_init: words \\['zebra'\\]"),
        ("template", "a sketch of a {}", "template: words \\['sketch'\\]"),
    ],
)
def test_bad_values_name_the_field(field, value, match):
    config = CoCoOpConfig()
    if field == "n_ctx":
        config.ctx_init = ""
    setattr(config, field, value)
    with pytest.raises(ConfigError, match=match):
        config.validate()


def test_m16_context_fits_and_is_accepted():
    config = CoCoOpConfig(ctx_init="", n_ctx=16)
    config.validate()  # M = 16 (the paper's other context length) with a random init


def test_missing_dataset_fails_before_pretraining(tmp_path, monkeypatch):
    """A wrong ``dataset`` is reported at once, not after minutes of mini-CLIP pretraining."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    args = ["run", "cocoop", "--out", str(tmp_path / "run"), "--set", f"dataset={tmp_path / 'nope'}"]
    args += ["--set", "pretrain_steps=100000", "--set", "test_per_class=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "dataset folder not found" in result.output
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.pt"))


def test_base_gain_claim_cannot_pass_when_coop_gains_nothing():
    """Issue 21: with CoOp's base gain ~0, "CoCoOp keeps half of it" must not pass however much CoCoOp gains."""
    from reprolab.core.claims import RunUnits

    claim = next(c for c in get_experiment("cocoop").claims if c.id == "cocoop_keeps_base_gain")

    def units(coop_gains, cocoop_gains):
        rows = {f"seed{i}": {"zs_base": 50.0, "coop_base": 50.0 + a, "cocoop_base": 50.0 + b}
                for i, (a, b) in enumerate(zip(coop_gains, cocoop_gains))}  # fmt: skip
        return [RunUnits(0, {}, rows)]

    assert claim.evaluate(units([0.1, -0.2, 0.1, 0.0], [8.0, 9.0, 7.5, 8.2])).verdict != "pass"
    assert claim.evaluate(units([10.0, 11.0, 9.5, 10.2], [8.0, 9.0, 7.5, 8.2])).verdict == "pass"
    assert claim.evaluate(units([10.0, 11.0, 9.5, 10.2], [1.0, 0.0, 1.5, 0.5])).verdict == "fail"


def test_zero_shot_clip_uses_the_official_template_of_the_split_files_dataset(tmp_path):
    """Zero-shot CLIP's prompt is the official per-dataset template (ZeroshotCLIP's CUSTOM_TEMPLATES), picked by the
    name in CoOp's split file; a set ``template`` overrides it; the shapes world and unknown sets use the default."""
    from reprolab.cocoop.experiment import DEFAULT_TEMPLATE, zero_shot_template
    from reprolab.cocoop.realdata import dataset_name

    config = CoCoOpConfig()
    assert zero_shot_template(config, "EuroSAT") == "a centered satellite photo of {}."
    assert zero_shot_template(config, "DescribableTextures") == "{} texture."
    assert zero_shot_template(config, "") == zero_shot_template(config, "MyOwnSet") == DEFAULT_TEMPLATE
    assert zero_shot_template(CoCoOpConfig(template="itap of a {}."), "EuroSAT") == "itap of a {}."
    (tmp_path / "split_zhou_EuroSAT.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    assert dataset_name(tmp_path) == "EuroSAT"
