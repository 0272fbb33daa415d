"""Models a user can keep: a run's trained models saved as safetensors and loaded back with load_run."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import reprolab
from reprolab.cli import app
from reprolab.core.errors import ReproError

SETTINGS = ["steps=15", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16", "batch_size=32"]


def test_load_run_rebuilds_a_saved_model_that_predicts_as_in_the_run(tmp_path, saved_demi_estimate):
    out = tmp_path / "run"
    args = ["run", "demi", *[f"--set={s}" for s in SETTINGS], "--seed", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = reprolab.load_run(out)
    assert run.method == "demi" and run.config["steps"] == 15 and set(run.verdicts) == {c["id"] for c in run.claims}
    assert "demi_k2-mi20" in run.models and "infonce-mi2" in run.models
    assert not run.model("demi_k2-mi20").training
    assert json.loads((out / "models" / "demi_k2-mi20.json").read_text())["meta"]
    # the reloaded weights give exactly the run's own evaluation (same evaluation batches, same seed)
    estimate = saved_demi_estimate(run, "demi_k2-mi20", "gauss/demi_k2/mi20", 20.0)
    assert estimate == pytest.approx(run.metrics["demi_k2_at_20"], abs=1e-6)
    with pytest.raises(ReproError, match="no saved model 'nope'"):
        run.model("nope")


def test_load_run_refuses_non_runs_and_foreign_builders(tmp_path):
    with pytest.raises(ReproError, match="no results.json"):
        reprolab.load_run(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"method": "demi"}))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.json").write_text(json.dumps({"build": "os:system", "kwargs": {}}))
    with pytest.raises(ReproError, match="outside reprolab"):
        reprolab.load_run(tmp_path).model("x")


def test_frozen_parts_are_not_saved_and_must_be_the_only_missing_keys(tmp_path):
    """``frozen=`` prefixes (a pretrained backbone the builder restores) stay out of the file; loading accepts exactly
    those keys missing. Here the builder's backbone is a fresh one: only the head is the saved model's."""
    from safetensors import safe_open

    from reprolab.core.results import save_model
    from reprolab.orderfree.model import build_image_labeller

    (tmp_path / "results.json").write_text(json.dumps({"method": "orderfree"}))
    kwargs = {"backbone": {"widths": [4, 4, 8], "blocks": [1, 1, 1]}, "decoder": "br", "num_classes": 3}
    model = build_image_labeller(**kwargs)
    save_model(tmp_path, "m", model, build=build_image_labeller, kwargs=kwargs, frozen=("backbone.",))
    with safe_open(str(tmp_path / "models" / "m.safetensors"), "pt") as handle:
        assert sorted(handle.keys()) == ["decoder.fc.bias", "decoder.fc.weight"]
    rebuilt = reprolab.load_run(tmp_path).model("m")
    assert torch.equal(rebuilt.decoder.fc.weight, model.decoder.fc.weight)
    card = json.loads((tmp_path / "models" / "m.json").read_text())
    card["frozen"] = ["nothing."]  # the file then lacks keys the card does not explain
    (tmp_path / "models" / "m.json").write_text(json.dumps(card))
    with pytest.raises(ReproError, match="do not fit the rebuilt model"):
        reprolab.load_run(tmp_path).model("m")
