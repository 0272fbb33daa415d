"""End-to-end CLI run of the missing-prompts experiment (shrunk), presets and config validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
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
        "methods=[prompt_input,prompt_attention,prompt_shared,head_only,finetune]",
        "tasks=[single,multi]",
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
        for method in ("prompt_input", "prompt_attention", "prompt_shared", "head_only", "finetune"):
            for kind in ("complete", "text", "image", "both", "sweep1", "sweep_mean", "text_saved", "both_saved"):
                assert metrics[f"{task}_{method}_{kind}"] is not None
        assert metrics[f"{task}_finetune_trainable_fraction"] == 1.0
        assert metrics[f"{task}_head_only_trainable_fraction"] < metrics[f"{task}_prompt_input_trainable_fraction"] < 1
    assert (run / "figures" / "metric_vs_missing_rate.png").is_file()
    for kind in ("text", "image", "both"):  # Table 1: each scenario trains with its own missing type
        table = json.loads((run / "missing_tables" / f"single_train_{kind}.json").read_text())
        assert len(table["table"]) == 24 and table["rate"] == 0.7 and table["missing_type"] == kind
        assert "extra_draw_seeds" not in table  # the training table is drawn once
    log = (run / "metrics.jsonl").read_text()
    assert all(f"single/{kind}/prompt_input" in log for kind in ("text", "image", "both"))
    test_table = json.loads((run / "missing_tables" / "single_image.json").read_text())
    assert len(test_table["extra_draw_seeds"]) == 31  # test_table_draws = 32, draw 0 is the saved table
    assert list((tmp_path / "cache" / "missing_prompts").glob("minivilt-*.pt"))  # pretrained backbone cached
    _saved_models_predict_as_in_the_run(run, results)


def _saved_models_predict_as_in_the_run(out, results) -> None:
    """models/<task>-<scenario>-<method>: the prompts, pooler and head only (a fine-tuned model whole); rebuilt on
    the cached mini ViLT they give the run's metric on the complete test set."""
    from types import SimpleNamespace

    import reprolab
    from reprolab.core.seeding import derive_seed, torch_generator
    from reprolab.missing_prompts.data import GlyphWordWorld
    from reprolab.missing_prompts.experiment import MissingPromptsConfig
    from reprolab.missing_prompts.model import COMPLETE
    from reprolab.missing_prompts.pipeline import _synthetic_tasks
    from reprolab.missing_prompts.train import predict_per_case, table_metric

    run = reprolab.load_run(out)
    assert len(run.models) == 2 * 3 * 5 and "single-both-prompt_input" in run.models
    config = MissingPromptsConfig(**run.config)
    world = GlyphWordWorld(image_size=config.image_size, n_codes=config.n_codes, pixel_noise=config.pixel_noise)
    ctx = SimpleNamespace(generator=lambda *keys, device=None: torch_generator(derive_seed(results["seed"], *keys)))
    task = _synthetic_tasks(config, ctx, world)[0]
    complete = torch.full((len(task.test),), COMPLETE, dtype=torch.long)
    for method in ("prompt_input", "prompt_attention", "finetune"):
        with safe_open(str(out / "models" / f"single-both-{method}.safetensors"), "pt") as handle:
            saved = list(handle.keys())
        assert any(k.startswith("vilt.encoder.") for k in saved) == (method == "finetune")
        logits = predict_per_case(run.model(f"single-both-{method}"), task.test)
        value = table_metric(logits, complete, task.test.labels, task.metric)
        assert value == pytest.approx(results["metrics"][f"single_{method}_complete"], abs=1e-6)


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
    for table in ("single_train_both.json", "single_both.json", "single_text.json"):
        assert (tmp_path / "a" / "missing_tables" / table).read_text() == (
            tmp_path / "b" / "missing_tables" / table
        ).read_text()
    notes = json.loads((tmp_path / "b" / "results.json").read_text())["notes"]
    assert any("loaded from the cache" in n for n in notes)
    # issue 18: another run seed is another unit and pretrains its own backbone (pretrain_seed + seed) ...
    args = ["run", "missing_prompts", "--seed", "4", "--out", str(tmp_path / "c")]
    for item in base:
        args += ["--set", item]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert len(list((tmp_path / "cache" / "missing_prompts").glob("minivilt-*.pt"))) == 2
    notes = json.loads((tmp_path / "c" / "results.json").read_text())["notes"]
    assert any("pretraining seed 4" in n for n in notes) and not any("loaded from the cache" in n for n in notes)
    # ... unless backbone_per_seed is off (the paper preset): then every seed shares pretrain_seed's backbone
    paper = resolve_config(get_experiment("missing_prompts").config_cls, get_experiment("missing_prompts").presets,
                           "paper")  # fmt: skip
    assert not paper.backbone_per_seed


def test_presets_resolve_and_bad_values_are_refused():
    exp = get_experiment("missing_prompts")
    paper = resolve_config(exp.config_cls, exp.presets, "paper")
    assert paper.prompt_layers == [0, 1, 2, 3, 4, 5] and paper.prompt_length == 16 and paper.layers == 12
    # official task_finetune_*: 20 epochs at batch 256 (per-GPU batch x accumulation)
    assert (paper.epochs, paper.batch_size, paper.lr, paper.weight_decay) == (20, 256, 1e-2, 2e-2)
    assert paper.grad_accumulation > 1 and paper.scenarios == ["text", "image", "both"]
    assert paper.tasks == ["single", "multi"] and "finetune" in paper.methods
    for bad in (
        ["tasks=[audio]"],
        ["methods=[lora]"],
        ["train_missing_rate=1.5"],
        ["scenarios=[video]"],
        ["scenarios=[text]"],  # the default sweep needs the "both" scenario
        ["baseline_prompts=learned"],
        ["grad_accumulation=5"],
        ["prompt_layers=[7]"],
        ["real_dataset=coco"],
        ["n_classes=26"],
        ["pretrain_negatives=easy"],
        ["sweep_rates=[1.5]"],
        ["heads=3"],
        ["layers=0"],
        ["image_size=0"],
        ["pretrain_pool=0"],
        ["pretrain_batch=0"],
        ["real_train_limit=-1"],
        ["multi_word_shift=2"],
        ["n_codes=7"],
    ):
        with pytest.raises(ConfigError):
            resolve_config(exp.config_cls, exp.presets, "quick", parse_set_options(bad))


def _fabricate_hateful_memes(
    data: Path, counts: dict[str, int], size: tuple[int, int], colour: tuple[int, int]
) -> None:
    """A Hateful Memes folder (``<split>.jsonl`` + ``img/``) under ``data``: label i % 2, whose image's red channel
    is ``colour[0] * label`` and blue channel ``colour[1]``, and whose text names the label."""
    from PIL import Image

    root = data / "hateful_memes"
    (root / "img").mkdir(parents=True)
    for split, n in counts.items():
        lines = []
        for i in range(n):
            name = f"img/{split}{i}.png"
            Image.new("RGB", size, (colour[0] * (i % 2), 0, colour[1])).save(root / name)
            lines.append(json.dumps({"id": i, "img": name, "label": i % 2, "text": f"meme number {i % 2}"}))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def test_real_format_run_on_fabricated_hateful_memes(tmp_path, monkeypatch):
    """The real-data path end to end on a fabricated Hateful Memes folder (mini ViLT trained from scratch)."""

    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    _fabricate_hateful_memes(tmp_path / "data", {"train": 12, "dev_seen": 8}, size=(9, 9), colour=(40, 200))
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


def test_bad_vilt_path_and_empty_real_split_give_clear_errors(tmp_path, monkeypatch):
    """A vilt_path without a saved model and a real split with no samples stop the run with a message naming the
    folder / file, not a traceback from transformers or the training loop."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "no_vilt_here"
    result = CliRunner().invoke(app, ["run", "missing_prompts", "--out", str(tmp_path / "a"), "--set",
                                      f"vilt_path={missing}"])  # fmt: skip
    assert result.exit_code != 0 and "no_vilt_here" in result.output and "config.json" in result.output
    root = tmp_path / "data" / "hateful_memes"
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("")
    (root / "dev_seen.jsonl").write_text(json.dumps({"id": 1, "img": "img/1.png", "label": 0, "text": "x"}) + "\n")
    args = ["run", "missing_prompts", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b")]
    for item in ("real_dataset=hateful_memes", "hidden=16", "layers=1", "heads=2", "prompt_layers=[0]"):
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "train.jsonl" in result.output and "no samples" in result.output


def test_vilt_path_loads_a_saved_vilt_and_tokenizer(tmp_path, monkeypatch):
    """``vilt_path`` = a folder written by ``save_pretrained`` (a tiny ViltModel + a BERT vocabulary): the run loads
    both with ``from_pretrained`` and uses the model's image size and text length on a real-format dataset."""
    from transformers import BertTokenizer

    from reprolab.missing_prompts.model import build_mini_vilt

    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "meme", "number", "0", "1"]
    folder = tmp_path / "vilt"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    build_mini_vilt(len(words), image_size=8, hidden=16, layers=2, heads=2, max_text_len=6).save_pretrained(folder)
    _fabricate_hateful_memes(tmp_path / "data", {"train": 8, "dev_seen": 6}, size=(11, 9), colour=(200, 90))
    args = ["run", "missing_prompts", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    for item in (f"vilt_path={folder}", "real_dataset=hateful_memes", "epochs=1", "batch_size=4",
                 "prompt_layers=[0,1]", "sweep_rates=[0.0,1.0]", "methods=[prompt_input,head_only]"):  # fmt: skip
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any("loaded from" in n and "vilt" in n for n in results["notes"])
    assert 0.0 <= results["metrics"]["hateful_memes_prompt_input_both"] <= 100.0
