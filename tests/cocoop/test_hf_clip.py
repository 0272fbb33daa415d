"""A real-CLIP-style checkpoint: ``CLIPModel``/``CLIPTokenizer.from_pretrained(local_dir)`` with a BPE tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.cocoop.model import CoOpPromptLearner, HFTokenizer, build_mini_clip, encode_token_ids, freeze

WORDS = ["a", "photo", "of", "red", "green", "square", "circle", "blue", "cross"]


def _save_clip_folder(folder) -> None:
    """A tiny BPE vocabulary (characters merged left to right into whole words) and a mini CLIP, both saved
    with ``save_pretrained`` as a real CLIP checkpoint folder would be."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in sorted(set("".join(WORDS))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges: list[str] = []
    for word in WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    build_mini_clip(len(vocab), image_size=8, width=32, layers=1).save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    _save_clip_folder(folder)
    return folder


def test_hf_tokenizer_context_positions(clip_folder):
    """With a real (BPE) CLIP tokenizer, context initialised from "a photo of a" reproduces the tokenised
    hand-written prompt's features (the context sits between [SOS] and the class name)."""
    from transformers import CLIPModel, CLIPTokenizer

    clip = freeze(CLIPModel.from_pretrained(clip_folder, attn_implementation="eager"))
    hf = CLIPTokenizer.from_pretrained(clip_folder)
    tok = HFTokenizer(hf)
    names = ["red square", "green circle"]
    learner = CoOpPromptLearner(clip, tok, names, init="a photo of a")
    assert learner.n_ctx == 4
    ids = torch.tensor(hf([f"a photo of a {n}" for n in names], padding=True)["input_ids"])
    assert ids[0, 0] == tok.bos_id
    ref = F.normalize(encode_token_ids(clip, ids, tok.eos_id), dim=-1)
    assert torch.allclose(learner.text_features(clip), ref, atol=1e-5)


def test_cli_run_with_clip_path(clip_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    sets = ["n_colours=2", "n_shapes=2", "seeds=[1]", "shots=2", "coop_epochs=1", "cocoop_epochs=1", "test_per_class=2"]
    sets += ["coop_batch_size=4", "cocoop_batch_size=4"]
    args = ["run", "cocoop", "--out", str(tmp_path / "run"), "--set", f"clip_path={clip_folder}"]
    args += ["--set", "shot_curve=[]"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metrics"]["cocoop_trainable_params"] > results["metrics"]["coop_trainable_params"] > 0
    assert not list((tmp_path / "home").rglob("miniclip-*.pt"))  # no mini CLIP pretrained
    assert "Real CLIP weights loaded" in (tmp_path / "run" / "report.md").read_text()
