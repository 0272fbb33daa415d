"""CoOp-layout real datasets: split-file reading, base/new halves, few-shot sampling, errors, a CLI run."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.cocoop.realdata import load_real_task
from reprolab.core.errors import DataError

CLASSES = ["red circle", "blue square", "red square", "blue circle"]  # words the mini CLIP's tokenizer knows
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def _fabricate(folder, per_class_train: int = 3, per_class_test: int = 2) -> None:
    """A CoOp-style dataset: images/<class>/<i>.png and split_zhou_Toy.json with [impath, label, classname]."""
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(CLASSES):
        colour, shape = name.split()
        (folder / "images" / shape / colour).mkdir(parents=True, exist_ok=True)
        for part, count in (("train", per_class_train), ("test", per_class_test)):
            for i in range(count):
                image = Image.new("RGB", (20, 12), (10, 10, 10))
                draw = ImageDraw.Draw(image)
                box = (4, 2, 12, 10)
                (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
                rel = f"{shape}/{colour}/{part}{i}.png"
                image.save(folder / "images" / rel)
                split[part].append([rel, label, name])
    (folder / "split_zhou_Toy.json").write_text(json.dumps(split))


def test_base_new_halves_and_shots(tmp_path):
    _fabricate(tmp_path)
    task = load_real_task(tmp_path, 8, shots=2, test_per_class=0, generator=torch.Generator().manual_seed(0))
    assert task.base_names == CLASSES[:2] and task.new_names == CLASSES[2:]  # first ceil(n/2) sorted labels
    assert task.train_x.shape == (4, 3, 8, 8) and task.train_y.tolist() == [0, 0, 1, 1]
    assert task.test["base"][0].shape[0] == 4 and task.test["new"][1].tolist() == [0, 0, 1, 1]
    again = load_real_task(tmp_path, 8, shots=2, test_per_class=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(task.train_x, again.train_x)  # seeded few-shot draw


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        load_real_task(tmp_path / "nope", 8, 1, 1, torch.Generator())
    with pytest.raises(DataError, match="split_zhou"):
        load_real_task(tmp_path, 8, 1, 1, torch.Generator())
    _fabricate(tmp_path)
    with pytest.raises(DataError, match="fewer than 5 training images"):
        load_real_task(tmp_path, 8, 5, 1, torch.Generator())
    split = json.loads((tmp_path / "split_zhou_Toy.json").read_text())
    split["test"][0][2] = "green circle"
    (tmp_path / "split_zhou_Toy.json").write_text(json.dumps(split))
    with pytest.raises(DataError, match="split_zhou_Toy.json: label 0 is named both"):
        load_real_task(tmp_path, 8, 1, 1, torch.Generator())


def test_cli_run_on_a_coop_layout_folder(tmp_path, monkeypatch, tiny_cli_args):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    _fabricate(tmp_path / "Toy")
    args = tiny_cli_args(tmp_path / "run", "test_per_class=0", "shot_curve=[]", f"dataset={tmp_path / 'Toy'}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "cocoop_new" in results["metrics"] and "cocoop_shift" not in results["metrics"]


def test_unknown_class_words_are_reported(tmp_path, monkeypatch):
    """Class names the mini CLIP's word tokenizer does not know become <unk>: the report warns."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    _fabricate(tmp_path / "Toy")
    split_file = tmp_path / "Toy" / "split_zhou_Toy.json"
    split_file.write_text(split_file.read_text().replace('"red circle"', '"zebra circle"'))
    sets = ["pretrain_steps=2", "pretrain_batch=8", "image_size=8", "width=32", "layers=1", "seeds=[1]"]
    sets += ["shots=1", "epochs=1", "test_per_class=1", "shot_curve=[]", f"dataset={tmp_path / 'Toy'}"]
    args = ["run", "cocoop", "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "['zebra'] are not in the mini CLIP's vocabulary" in report
    assert report.count("are not in the mini CLIP's vocabulary") == 1
