"""End-to-end CLI run of the missing-prompts experiment (shrunk), presets and config validation."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError, parse_set_options, resolve_config
from reprolab.core.registry import get_experiment


def test_quick_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    sets = [
        "pretrain_steps=3",
        "pretrain_batch=8",
        "pretrain_pool=16",
        "hidden=16",
        "layers=2",
        "heads=2",
        "n_train=24",
        "n_test=20",
        "epochs=1",
        "batch_size=12",
        "prompt_length=4",
        "prompt_layers=[0]",
        "sweep_rates=[0.0,0.7,1.0]",
    ]
    args = ["run", "missing_prompts", "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert {c["id"] for c in results["claims"]} == {c.id for c in get_experiment("missing_prompts").claims}
    metrics = results["metrics"]
    for task in ("single", "multi"):
        for method in ("prompt_input", "prompt_attention", "head_only", "finetune"):
            for kind in ("complete", "text", "image", "both", "sweep1", "sweep_mean"):
                assert metrics[f"{task}_{method}_{kind}"] is not None
        assert metrics[f"{task}_finetune_trainable_fraction"] == 1.0
        assert metrics[f"{task}_head_only_trainable_fraction"] < metrics[f"{task}_prompt_input_trainable_fraction"] < 1
    assert (run / "figures" / "metric_vs_missing_rate.png").is_file()
    table = json.loads((run / "missing_tables" / "single_train.json").read_text())
    assert len(table["table"]) == 24 and table["rate"] == 0.7 and table["missing_type"] == "both"
    assert list((tmp_path / "cache" / "missing_prompts").glob("minivilt-*.pt"))  # pretrained backbone cached


def test_missing_table_same_for_same_seed_across_runs(tmp_path, monkeypatch):
    """Two runs with the same seed draw identical missing tables (and a cached backbone is reused)."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    base = ["pretrain_steps=2", "pretrain_batch=4", "pretrain_pool=8", "hidden=16", "layers=1", "heads=2",
            "n_train=16", "n_test=8", "epochs=0", "tasks=[single]", "methods=[head_only]", "prompt_layers=[0]",
            "sweep_rates=[0.0]"]  # fmt: skip
    for name in ("a", "b"):
        args = ["run", "missing_prompts", "--seed", "3", "--out", str(tmp_path / name)]
        for item in base:
            args += ["--set", item]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    for table in ("single_train.json", "single_both.json", "single_text.json"):
        assert (tmp_path / "a" / "missing_tables" / table).read_text() == (
            tmp_path / "b" / "missing_tables" / table
        ).read_text()
    notes = json.loads((tmp_path / "b" / "results.json").read_text())["notes"]
    assert any("loaded from the cache" in n for n in notes)


def test_presets_resolve_and_bad_values_are_refused():
    exp = get_experiment("missing_prompts")
    paper = resolve_config(exp.config_cls, exp.presets, "paper")
    assert paper.prompt_layers == [0, 1, 2, 3, 4, 5] and paper.prompt_length == 16 and paper.layers == 12
    for bad in (
        ["tasks=[audio]"],
        ["methods=[lora]"],
        ["train_missing_rate=1.5"],
        ["train_missing_type=video"],
        ["prompt_layers=[7]"],
        ["real_dataset=coco"],
        ["n_classes=26"],
        ["pretrain_negatives=easy"],
    ):
        with pytest.raises(ConfigError):
            resolve_config(exp.config_cls, exp.presets, "quick", parse_set_options(bad))


def test_real_format_run_on_fabricated_hateful_memes(tmp_path, monkeypatch):
    """The real-data path end to end on a fabricated Hateful Memes folder (mini ViLT trained from scratch)."""
    from PIL import Image

    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data" / "hateful_memes"
    (root / "img").mkdir(parents=True)
    for split, n in (("train", 12), ("dev_seen", 8)):
        lines = []
        for i in range(n):
            name = f"img/{split}{i}.png"
            Image.new("RGB", (9, 9), (40 * (i % 2), 0, 200)).save(root / name)
            lines.append(json.dumps({"id": i, "img": name, "label": i % 2, "text": f"meme number {i % 2}"}))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    args = ["run", "missing_prompts", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    for item in ("real_dataset=hateful_memes", "hidden=16", "layers=1", "heads=2", "epochs=1", "batch_size=6",
                 "prompt_layers=[0]", "real_max_text_len=6", "sweep_rates=[0.0]"):  # fmt: skip
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert 0.0 <= metrics["hateful_memes_prompt_input_both"] <= 100.0  # AUROC in percent
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "single_input_prompts_beat_head_only_both" in {c["id"] for c in results["claims_not_evaluated"]}
