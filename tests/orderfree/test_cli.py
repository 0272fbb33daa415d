"""One short end-to-end run through the CLI, and configuration errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError
from reprolab.orderfree.experiment import PRESETS, OrderFreeConfig

TINY = ["n_train=160", "n_test=40", "widths=[8,8,16]", "cnn_steps=15", "rnn_steps=15", "hidden=16", "embed=4",
        "attention_dim=8", "cnn_batch_size=16", "rnn_batch_size=16", "attention_images=2"]


@pytest.mark.slow
def test_cli_quick_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    args = ["run", "orderfree", "--seed", "2", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "orderfree" and results["seed"] == 2
    metrics = results["metrics"]
    for model in ("br", "fixed_beam", "fixed_greedy", "cnnrnn_beam", "cnnrnn_greedy", "orderfree_beam",
                  "orderfree_greedy", "noatt_beam", "noatt_greedy"):
        for key in ("cp", "cr", "cf1", "op", "or", "of1"):
            assert 0.0 <= metrics[f"{model}_{key}"] <= 100.0
    assert 0.0 <= metrics["br_map"] <= 100.0
    for key in ("beam_is_map", "greedy_is_map", "greedy_p_over_half", "map_cf1", "map_of1"):  # search diagnostics
        assert 0.0 <= metrics[f"orderfree_{key}"] <= 100.0
    verdicts = {claim["id"] for claim in results["claims"]}
    assert verdicts == {"orderfree_beats_fixed_order_cf1", "orderfree_beats_fixed_order_of1",
                        "orderfree_beats_cnnrnn_cf1", "orderfree_beats_cnnrnn_of1",
                        "beam_beats_greedy_cf1", "beam_beats_greedy_of1", "attention_helps_cf1",
                        "attention_helps_of1"}
    assert (out / "figures" / "attention_maps.png").is_file()
    assert (out / "figures" / "per_class_f1.png").is_file()
    assert any("binary relevance" in note for note in results["notes"])
    _saved_models_predict_as_in_the_run(out, metrics)


def _saved_models_predict_as_in_the_run(out, metrics) -> None:
    """models/<name>, rebuilt by load_run, give the run's beam-search (or BR) F1 scores on its test canvases."""
    import reprolab
    from reprolab.orderfree.data import make_digit_canvases
    from reprolab.orderfree.metrics import multilabel_scores

    run = reprolab.load_run(out)
    assert run.models == ["br", "cnnrnn", "fixed", "noatt", "orderfree"]
    c = run.config
    _, test = make_digit_canvases(c["n_train"], c["n_test"], canvas=c["canvas"], max_digits=c["max_digits"],
                                  partner_prob=c["partner_prob"], scale_range=(c["scale_min"], c["scale_max"]), seed=2)
    for name in run.models:
        predicted = run.model(name).predict(test.images, width=c["beam_width"], max_labels=c["max_labels"] or None,
                                            threshold=c["threshold"])
        scores = multilabel_scores(predicted, test.targets)
        key = name if name == "br" else f"{name}_beam"
        assert scores["cf1"] == pytest.approx(metrics[f"{key}_cf1"], abs=1e-5)
        assert scores["of1"] == pytest.approx(metrics[f"{key}_of1"], abs=1e-5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("stem", "huge", "stem"), ("widths", [8, 8], "widths"), ("beam_width", 0, "beam_width"),
     ("threshold", 1.0, "threshold"), ("scale_max", 40, "scale_max"), ("max_digits", 11, "max_digits"),
     ("hidden", 0, "hidden"), ("embed", 0, "embed"), ("attention_dim", 0, "attention_dim"),
     ("cnn_lr", -1.0, "cnn_lr"), ("rnn_lr", 0.0, "rnn_lr"), ("prob_weight", -1.0, "prob_weight"),
     ("attention_images", -1, "attention_images"), ("checkpoint_every", -5, "checkpoint_every")],
)
def test_config_validation_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        OrderFreeConfig(**{field: value}).validate()


@pytest.mark.parametrize("item", ["attention_images=-1", "cnn_lr=-1", "hidden=0"])
def test_cli_bad_value_is_one_line_error_naming_the_field(tmp_path, item):
    result = CliRunner().invoke(app, ["run", "orderfree", "--set", item, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert item.split("=")[0] in result.output


def test_cli_rejects_unknown_key(tmp_path):
    result = CliRunner().invoke(app, ["run", "orderfree", "--set", "nonsense=1", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "nonsense" in result.output


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_valid(preset):
    OrderFreeConfig(**PRESETS[preset]).validate()


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    args = ["run", "orderfree", "--out", str(tmp_path / "run"), "--set", f"pretrained_path={tmp_path}/none.pth"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "none.pth" in result.output


@pytest.mark.slow
def test_cli_run_with_fine_tuned_backbone(tmp_path):
    out = tmp_path / "run"
    args = ["run", "orderfree", "--out", str(out), "--set", "finetune_backbone=true", "--set", "n_test=20",
            "--set", "rnn_steps=5"]
    for item in TINY:
        if not item.startswith(("n_test", "rnn_steps")):
            args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert 0.0 <= metrics["orderfree_beam_cf1"] <= 100.0


@pytest.mark.slow
def test_cli_run_initialises_the_cnn_from_a_torchvision_format_file(tmp_path):
    import torch

    from reprolab.orderfree.model import ResNetBackbone

    state = ResNetBackbone((8, 8, 16), (1, 1, 1), in_channels=3).state_dict()
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 16), torch.randn(1000)
    weights = tmp_path / "resnet.pth"
    torch.save(state, weights)
    out = tmp_path / "run"
    args = ["run", "orderfree", "--out", str(out), "--set", f"pretrained_path={weights}"]
    for item in [*TINY, "n_train=40", "n_test=10", "cnn_steps=2", "rnn_steps=2", "cnn_batch_size=8",
                 "rnn_batch_size=8"]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    notes = json.loads((out / "results.json").read_text())["notes"]
    assert any(str(weights) in note and "fc.bias, fc.weight" in note for note in notes)


REAL_TINY = ["image_size=16", "cnn_steps=3", "rnn_steps=3", "widths=[4,4,8]", "hidden=8", "attention_dim=4",
             "cnn_batch_size=4", "rnn_batch_size=4", "attention_images=1", "attention_ablation=false"]


def _coco_split(root, name, label_sets, categories):
    """A COCO instances JSON and an image folder with one small PNG per image."""
    from PIL import Image

    folder = root / name
    folder.mkdir()
    images, annotations = [], []
    for index, labels in enumerate(label_sets):
        Image.new("RGB", (20, 12), (40 * index, 90, 200)).save(folder / f"im{index}.png")
        images.append({"id": 100 + index, "file_name": f"im{index}.png"})
        annotations += [{"id": len(annotations), "image_id": 100 + index, "category_id": c} for c in labels]
    path = root / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, folder


@pytest.mark.slow
def test_cli_trains_on_coco_json_and_refuses_missing_inputs_before_a_run_folder(tmp_path):
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
    train_json, train_dir = _coco_split(tmp_path, "train", [[1], [3, 18], [1, 18], [3]], categories)
    test_json, test_dir = _coco_split(tmp_path, "val", [[18], [1, 3]], categories)
    out = tmp_path / "run"
    args = ["run", "orderfree", "--out", str(out), "--set", "data=coco", "--set", f"train_annotations={train_json}",
            "--set", f"train_images={train_dir}", "--set", f"test_annotations={test_json}",
            "--set", f"test_images={test_dir}"]
    for item in REAL_TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert any("3 classes" in note for note in results["notes"])
    assert 0.0 <= results["metrics"]["orderfree_beam_cf1"] <= 100.0
    # a missing image folder: one line naming the field, exit 2, no run folder
    bad = [a if not a.startswith("test_images=") else f"test_images={tmp_path / 'nowhere'}" for a in args]
    bad[bad.index(str(out))] = str(tmp_path / "bad")
    result = CliRunner().invoke(app, bad)
    assert result.exit_code == 2 and "test_images" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_cli_trains_on_yolo_folders(tmp_path, real_data):
    root = real_data("coco8")
    args = ["run", "orderfree", "--out", str(tmp_path / "run"), "--set", "data=yolo", "--set", f"data_root={root}"]
    for item in REAL_TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any("4 train / 4 test images" in note and "80 classes" in note for note in results["notes"])
