"""Digit canvases, and the COCO / YOLO readers turning boxes into image-level label sets."""

from __future__ import annotations

import json

import pytest
import torch

from reprolab.core.errors import DataError, DatasetMissingError
from reprolab.orderfree.data import (
    DIGIT_PARTNERS,
    label_sets_to_targets,
    make_digit_canvases,
    read_coco_instances,
    read_yolo_dataset,
    read_yolo_labels,
)


@pytest.fixture(scope="module")
def canvases():
    return make_digit_canvases(600, 50, seed=3)


def test_canvas_shapes_and_label_counts(canvases):
    train, test = canvases
    assert train.images.shape == (600, 1, 28, 28) and test.images.shape == (50, 1, 28, 28)
    assert float(train.images.min()) >= 0.0 and float(train.images.max()) <= 1.0
    counts = train.targets.sum(dim=1)
    assert int(counts.min()) >= 1 and int(counts.max()) <= 4
    for row, boxes in enumerate(train.boxes[:50]):
        assert sorted(b[0] for b in boxes) == sorted(torch.nonzero(train.targets[row]).squeeze(1).tolist())
        for _, top, left, height, width in boxes:
            assert top + height <= 28 and left + width <= 28
            assert 8 <= height <= 14


def test_canvases_are_deterministic_per_seed():
    a, _ = make_digit_canvases(20, 5, seed=1)
    b, _ = make_digit_canvases(20, 5, seed=1)
    c, _ = make_digit_canvases(20, 5, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, c.images)


def test_partners_co_occur_more_than_chance(canvases):
    targets = canvases[0].targets
    lifts = []
    for digit, partner in enumerate(DIGIT_PARTNERS):
        joint = float((targets[:, digit] * targets[:, partner]).mean())
        lifts.append(joint / float(targets[:, digit].mean() * targets[:, partner].mean()))
    assert min(lifts) > 1.3


def test_label_frequencies_are_unequal(canvases):
    frequency = canvases[0].targets.sum(dim=0)
    assert float(frequency.max()) > 2 * float(frequency.min())


def test_label_sets_to_targets_rejects_out_of_range():
    assert label_sets_to_targets([{0, 2}, set()], 3).tolist() == [[1, 0, 1], [0, 0, 0]]
    with pytest.raises(DataError, match="label 5"):
        label_sets_to_targets([{5}], 3)


def _coco(tmp_path, annotations):
    data = {
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 9, "file_name": "b.jpg"}, {"id": 11, "file_name": "c.jpg"}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}],
        "annotations": annotations,
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reader_turns_boxes_into_label_sets(tmp_path):
    path = _coco(tmp_path, [
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"image_id": 7, "category_id": 1, "bbox": [2, 2, 1, 1]},
        {"image_id": 7, "category_id": 90, "bbox": [0, 0, 1, 1]},
        {"image_id": 9, "category_id": 18, "bbox": [0, 0, 1, 1]},
    ])
    result = read_coco_instances(path)
    assert result.class_names == ["person", "dog", "toothbrush"]  # sorted by category id
    assert result.ids == ["a.jpg", "b.jpg", "c.jpg"]
    assert result.labels == [{0, 2}, {1}, set()]
    assert result.targets().tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_coco_reader_errors_name_the_entry(tmp_path):
    with pytest.raises(DataError, match=r"annotations\[0\]: category_id 5"):
        read_coco_instances(_coco(tmp_path, [{"image_id": 7, "category_id": 5}]))
    with pytest.raises(DataError, match=r"annotations\[1\]: missing field\(s\) image_id"):
        read_coco_instances(_coco(tmp_path, [{"image_id": 7, "category_id": 1}, {"category_id": 1}]))
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [\n oops')
    with pytest.raises(DataError, match=r"broken.json:2"):
        read_coco_instances(broken)
    with pytest.raises(DatasetMissingError):
        read_coco_instances(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d.update(categories=5), "'categories' must be a list"),
     (lambda d: d["categories"].append({"id": 1, "name": "again"}), r"categories\[3\]: duplicate category id 1"),
     (lambda d: d["categories"][0].update(id="dog"), r"categories\[0\]: id must be an integer"),
     (lambda d: d["images"].append({"id": 7}), r"images\[3\]: duplicate image id 7"),
     (lambda d: d["images"][0].update(id=[7]), r"images\[0\]: id must be an integer or a string"),
     (lambda d: d["annotations"][0].update(category_id="x"), r"annotations\[0\]: category_id must be an integer")],
)
def test_coco_reader_refuses_malformed_entries(tmp_path, change, message):
    path = _coco(tmp_path, [{"image_id": 7, "category_id": 1}])
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        read_coco_instances(path)


def test_readers_refuse_non_utf8_files(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(DataError, match="bad.json:1: not UTF-8"):
        read_coco_instances(tmp_path / "bad.json")
    (tmp_path / "bad.txt").write_bytes(b"\xff 0.5 0.5 0.5 0.5\n")
    with pytest.raises(DataError, match="bad.txt:1: not UTF-8"):
        read_yolo_labels(tmp_path, num_classes=4)


def test_yolo_reader_turns_boxes_into_label_sets(tmp_path):
    (tmp_path / "x.txt").write_text("3 0.5 0.5 0.2 0.2\n3 0.1 0.1 0.1 0.1\n0 0.5 0.5 1 1\n")
    (tmp_path / "y.txt").write_text("\n")
    result = read_yolo_labels(tmp_path, num_classes=4)
    assert result.ids == ["x", "y"] and result.labels == [{0, 3}, set()]


@pytest.mark.parametrize(
    ("content", "message"),
    [("1 0.5 0.5 0.2\n", "expected 'class"), ("0 0.5 0.5 0.2 0.2\nfoo 0.5 0.5 0.2 0.2\n", "integer class"),
     ("9 0.5 0.5 0.2 0.2\n", "class 9 outside"), ("1 1.5 0.5 0.2 0.2\n", "normalised")],
)
def test_yolo_reader_errors_name_file_and_line(tmp_path, content, message):
    (tmp_path / "bad.txt").write_text(content)
    line = content.count("\n")
    with pytest.raises(DataError, match=rf"bad.txt:{line}: .*{message}"):
        read_yolo_labels(tmp_path, num_classes=4)


def test_coco8_smoke(real_data):
    root = real_data("coco8")
    train = read_yolo_labels(root / "labels" / "train")
    val = read_yolo_labels(root / "labels" / "val")
    # person=0, bicycle.. ; the label sets listed in coco8/SOURCE.md
    assert dict(zip(train.ids, train.labels))["000000000009"] == {45, 49, 50}  # bowl, orange, broccoli
    assert dict(zip(train.ids, train.labels))["000000000030"] == {58, 75}  # potted plant, vase
    assert dict(zip(val.ids, val.labels))["000000000049"] == {0, 17, 58}  # person, horse, potted plant
    images, targets = read_yolo_dataset(root, "val", size=32)
    assert images.shape == (4, 3, 32, 32) and targets.shape == (4, 80)
    assert targets.sum(dim=1).tolist() == [2.0, 1.0, 3.0, 2.0]
