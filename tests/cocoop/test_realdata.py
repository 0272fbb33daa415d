"""CoOp-layout real datasets: split-file reading, base/new halves, few-shot sampling, errors, a CLI run."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.cocoop.data import ShapesWorld
from reprolab.cocoop.experiment import CoCoOpConfig
from reprolab.cocoop.realdata import export_shapes_folder, load_full_task, load_real_task, load_test_split
from reprolab.core.config import ConfigError
from reprolab.core.errors import DataError

CLASSES = ["red circle", "blue square", "red square", "blue circle"]  # words the mini CLIP's tokenizer knows
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 50), "yellow": (240, 230, 30)}


def _draw(draw: ImageDraw.ImageDraw, shape: str, fill: tuple[int, int, int]) -> None:
    box = (4, 2, 12, 10)
    if shape == "triangle":
        draw.polygon([(8, 2), (4, 10), (12, 10)], fill=fill)
    elif shape == "cross":
        draw.rectangle((7, 2, 9, 10), fill=fill)
        draw.rectangle((4, 5, 12, 7), fill=fill)
    else:
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=fill)


def _fabricate(
    folder, per_class_train: int = 3, per_class_test: int = 2, classes=tuple(CLASSES), name: str = "Toy"
) -> None:
    """A CoOp-style dataset: images/<shape>/<colour>/<i>.png and split_zhou_<name>.json with
    [impath, label, classname]."""
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, classname in enumerate(classes):
        colour, shape = classname.split()
        (folder / "images" / shape / colour).mkdir(parents=True, exist_ok=True)
        for part, count in (("train", per_class_train), ("test", per_class_test)):
            for i in range(count):
                image = Image.new("RGB", (20, 12), (10, 10, 10))
                _draw(ImageDraw.Draw(image), shape, COLOURS[colour])
                rel = f"{shape}/{colour}/{part}{i}.png"
                image.save(folder / "images" / rel)
                split[part].append([rel, label, classname])
    (folder / f"split_zhou_{name}.json").write_text(json.dumps(split))


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
    sets += ["shots=1", "coop_epochs=1", "cocoop_epochs=1", "test_per_class=1", "shot_curve=[]"]
    sets += [f"dataset={tmp_path / 'Toy'}"]
    args = ["run", "cocoop", "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "['zebra'] are not in the mini CLIP's vocabulary" in report
    assert report.count("are not in the mini CLIP's vocabulary") == 1


PETS = ("green triangle", "yellow cross", "green cross")  # a target with its own class names
CARS = ("yellow triangle", "green circle")


def test_full_task_and_target_test_split(tmp_path):
    """Cross-dataset source: shots of every class; target: its whole test split over all its classes."""
    _fabricate(tmp_path / "Toy")
    task = load_full_task(tmp_path / "Toy", 8, shots=2, test_per_class=1, generator=torch.Generator().manual_seed(0))
    assert task.names == CLASSES and task.train_x.shape == (8, 3, 8, 8)
    assert task.train_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and task.test_y.tolist() == [0, 1, 2, 3]
    _fabricate(tmp_path / "Pets", classes=PETS, name="OxfordPets")
    names, x, y = load_test_split(tmp_path / "Pets", 8, 0, torch.Generator())
    assert names == list(PETS) and x.shape == (6, 3, 8, 8) and y.tolist() == [0, 0, 1, 1, 2, 2]


def test_cli_cross_dataset_transfer(tmp_path, monkeypatch, tiny_cli_args):
    """Table 2's protocol end to end: prompts learned on Toy, evaluated unchanged on two other folders."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    _fabricate(tmp_path / "Toy")
    _fabricate(tmp_path / "Pets", classes=PETS, name="OxfordPets")
    _fabricate(tmp_path / "Cars", classes=CARS, name="Cars")
    targets = f"target_datasets=[{tmp_path / 'Pets'}, {tmp_path / 'Cars'}]"
    args = tiny_cli_args(tmp_path / "run", "test_per_class=0", f"dataset={tmp_path / 'Toy'}", targets)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    metrics = results["metrics"]
    for m in ("zs", "coop", "cocoop"):
        assert 0 <= metrics[f"{m}_source"] <= 100
        assert metrics[f"{m}_target_avg"] == pytest.approx(
            (metrics[f"{m}_target_oxfordpets"] + metrics[f"{m}_target_cars"]) / 2
        )
    assert "coop_base" not in metrics  # base-to-new is not run in this mode
    verdicts = {c["id"] for c in results["claims"]}
    assert "cocoop_beats_coop_cross_dataset" in verdicts and "coop_improves_base" not in verdicts
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Cross-dataset transfer" in report and "89.14" in report  # paper's OxfordPets CoOp number beside ours
    assert (tmp_path / "run" / "figures" / "cross_dataset.png").exists()


def test_bad_target_folders_are_named(tmp_path, monkeypatch):
    """A missing or malformed target fails before the mini CLIP is pretrained, naming the field and the path."""
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "home"))
    _fabricate(tmp_path / "Toy")
    _fabricate(tmp_path / "Bad", name="Bad")
    (tmp_path / "Bad" / "split_zhou_Bad.json").write_text('{"train": [], "test": [["a.png", 0]]}')
    base = ["run", "cocoop", "--set", f"dataset={tmp_path / 'Toy'}"]
    base += ["--set", "pretrain_steps=100000", "--set", "test_per_class=0"]
    for target, match in ((tmp_path / "Pets", "dataset folder not found"), (tmp_path / "Bad", "test[0]")):
        args = [
            *base,
            "--out",
            str(tmp_path / f"run_{target.name}"),
            "--set",
            f"target_datasets=[{tmp_path / 'Toy'}, {target}]",
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0
        assert f"target_datasets[1]: {target}" in result.output and match in result.output
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.pt"))
    with pytest.raises(ConfigError, match="needs a source dataset"):
        CoCoOpConfig(target_datasets=["Pets"]).validate()
    with pytest.raises(ConfigError, match="more than once"):
        CoCoOpConfig(dataset="Toy", test_per_class=0, target_datasets=["Pets", "Pets"]).validate()


def test_exported_shapes_folder_round_trips(tmp_path):
    """Generated shapes written as a CoOp-layout folder load back as the same images (up to 8-bit rounding)."""
    world = ShapesWorld(8, 2, 2)
    export_shapes_folder(world, tmp_path / "S", [3, 0], "striped", (2, 1), seed=5, name="Shapes")
    task = load_full_task(tmp_path / "S", 8, shots=2, test_per_class=0, generator=torch.Generator())
    assert task.names == [world.classnames[3], world.classnames[0]] and task.test_y.tolist() == [0, 1]
    pixels, _ = world.render(torch.full((2,), 3), torch.Generator().manual_seed(5), "striped")
    assert torch.allclose(task.train_x[:2], pixels, atol=0.01 / 0.26)  # CLIP std ~0.26: 1/255 + rounding
