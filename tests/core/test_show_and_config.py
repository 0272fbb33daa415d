"""`reprolab show`, `run --config FILE`, and `--resume` that reads the run's own settings."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.describe import field_docs, preset_docs, required_extras
from reprolab.core.registry import get_experiment, list_experiments

runner = CliRunner()
TINY = [f"--set={s}" for s in ("steps=15", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16")]


def test_show_lists_every_setting_with_type_default_preset_value_and_meaning():
    result = runner.invoke(app, ["show", "demi", "--preset", "paper"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ") and " -> " in line}
    assert "InfoNCE capped at log N" in rows["batch_size"]  # the meaning, read from the dataclass comment
    assert rows["steps"].split()[1:5] == ["int", "600", "->", "20000"]  # type, default -> the preset's value
    assert "[empirical]" in result.output and "presets" in result.output
    bad = runner.invoke(app, ["show", "nope"])
    assert bad.exit_code == 2 and "unknown method" in bad.output


def test_field_docs_read_comments_and_extras_read_imports():
    from dataclasses import dataclass

    @dataclass
    class Example:
        # the learning rate
        # of the outer loop
        lr: float = 0.1
        steps: int = 3  # optimiser steps
        plain: int = 0

    assert field_docs(Example) == {"lr": "the learning rate of the outer loop", "steps": "optimiser steps", "plain": ""}
    assert required_extras(get_experiment("diffpool")) == ["graph"]
    assert required_extras(get_experiment("domain_kge")) == ["kg"]
    for experiment in list_experiments():  # every method's presets and fields are readable
        docs = preset_docs(experiment)
        assert set(docs) == set(experiment.presets)
        # every preset says what it is in `reprolab show` (quick may be the bare defaults)
        assert [name for name, text in docs.items() if not text and experiment.presets[name]] == [], experiment.name
        assert set(field_docs(experiment.config_cls)) == set(experiment.describe()["defaults"])


def test_run_with_a_config_file_records_its_overrides(tmp_path):
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"steps": 15, "eval_batches": 2, "true_mis": [2, 20], "ks": [2], "digits": False}))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "demi", "--config", str(config), "--set", "hidden=16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["overrides"]["steps"] == 15 and results["overrides"]["hidden"] == 16
    assert yaml.safe_load((out / "config.yaml").read_text())["overrides"] == results["overrides"]
    config.write_text("- not\n- a mapping\n")
    bad = runner.invoke(app, ["run", "demi", "--config", str(config), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "settings.yaml" in bad.output and not (tmp_path / "x").exists()


def test_resume_reads_the_runs_settings_and_refuses_contradictions(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", "demi", *TINY, "--seed", "2", "--out", str(out)]).exit_code == 0
    finished = json.loads((out / "results.json").read_text())
    (out / "results.json").unlink()  # as if killed before the end
    resumed = runner.invoke(app, ["run", "demi", "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    again = json.loads((out / "results.json").read_text())
    assert again["seed"] == 2 and again["metrics"] == finished["metrics"] and again["overrides"]["steps"] == 15
    other = runner.invoke(app, ["run", "demi", "--out", str(out), "--resume", "--set", "steps=16"])
    assert other.exit_code == 2 and "steps=16 differs from the run's steps=15" in other.output
    seed = runner.invoke(app, ["run", "demi", "--out", str(out), "--resume", "--seed", "1"])
    assert seed.exit_code == 2 and "--seed 1 differs" in seed.output
    method = runner.invoke(app, ["run", "lds", "--out", str(out), "--resume"])
    assert method.exit_code == 2 and "holds a 'demi' run" in method.output


def test_preset_docs_read_only_the_presets_literal_and_presets_item_assignments(tmp_path, monkeypatch):
    """A comment above a same-named key of another dict (a table of paper numbers, seeds per preset) is not the
    preset's description; ``PRESETS["name"] = ...`` statements are read; bare-default presets say so."""
    (tmp_path / "fake_method_presets.py").write_text(
        "SEEDS = {\n"
        "    # how many seeds quick needs (not a description of the preset)\n"
        '    "quick": 3,\n'
        "}\n"
        "PRESETS = {\n"
        '    "quick": {},\n'
        "    # the paper's protocol\n"
        '    "paper": {"steps": 100},\n'
        "}\n"
        "# the official script's settings\n"
        'PRESETS["official"] = {"steps": 50}\n'
        "def run(config, ctx):\n"
        "    return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import types

    module = importlib.import_module("fake_method_presets")
    experiment = types.SimpleNamespace(run=module.run, presets={"quick": {}, "paper": {"steps": 100},
                                                                "official": {"steps": 50}})
    assert preset_docs(experiment) == {
        "quick": "the config's defaults (the settings table's default column)",
        "paper": "the paper's protocol",
        "official": "the official script's settings",
    }
