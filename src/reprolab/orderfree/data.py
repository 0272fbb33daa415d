"""Multi-label image data: digit canvases (embedded default) and readers for COCO / YOLO annotations.

The paper evaluates on MS-COCO and NUS-WIDE (Sec. 4.1), where every image carries a *set* of labels.
Neither fits here, so the embedded default builds canvases from the real handwritten digits that ship
with scikit-learn: one to four digits at random positions and scales, labels = the set of digits
present. Labels co-occur by design (each digit has a *partner* that appears with it most of the time)
and have unequal frequencies, so label dependencies and a frequent-first order both mean something.

The readers turn object boxes into image-level multi-label targets, as the paper does for COCO:
``read_coco_instances`` (an ``instances_*.json`` file) and ``read_yolo_labels`` (a folder of YOLO
``class cx cy w h`` text files, e.g. ``shared/data/coco8``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reprolab.core.errors import DataError, DatasetMissingError
from reprolab.core.readers import load_json_capped, open_image_safe, read_text_utf8

__all__ = [
    "DIGIT_PARTNERS",
    "CanvasSplit",
    "MultiLabelSet",
    "label_sets_to_targets",
    "load_image_tensor",
    "make_digit_canvases",
    "read_coco_dataset",
    "read_coco_instances",
    "read_yolo_dataset",
    "read_yolo_labels",
]

NUM_DIGITS = 10
# each digit's partner: when a digit is drawn, its partner joins it with probability ``partner_prob``
DIGIT_PARTNERS: tuple[int, ...] = (6, 7, 5, 8, 9, 2, 0, 1, 3, 4)
# unequal label frequencies (a frequent-first order is well defined): prior weight of each digit
DIGIT_PRIOR: tuple[float, ...] = (0.22, 0.16, 0.13, 0.11, 0.09, 0.08, 0.07, 0.06, 0.05, 0.03)


@dataclass
class CanvasSplit:
    """Images ``N x 1 x S x S`` in [0, 1], multi-hot targets ``N x K`` and per-digit boxes."""

    images: Tensor
    targets: Tensor
    boxes: list[list[tuple[int, int, int, int, int]]]  # (label, top, left, height, width)

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class MultiLabelSet:
    """Image identifiers with their label sets, and the class names (index = label id)."""

    ids: list[str]
    labels: list[set[int]]
    class_names: list[str]

    def targets(self) -> Tensor:
        return label_sets_to_targets(self.labels, len(self.class_names))


def label_sets_to_targets(labels: Sequence[set[int]], num_classes: int) -> Tensor:
    """Multi-hot ``N x K`` float targets from label sets."""
    out = torch.zeros(len(labels), num_classes)
    for row, items in enumerate(labels):
        for label in items:
            if not 0 <= label < num_classes:
                raise DataError(f"label {label} outside 0..{num_classes - 1} (item {row})")
            out[row, label] = 1.0
    return out


# -- digit canvases ----------------------------------------------------------------------------
def _sample_label_set(rng: np.random.Generator, max_digits: int, partner_prob: float) -> list[int]:
    count = int(rng.integers(1, max_digits + 1))
    prior = np.asarray(DIGIT_PRIOR, dtype=float)
    chosen: list[int] = []
    while len(chosen) < count:
        weights = prior.copy()
        weights[chosen] = 0.0
        digit = int(rng.choice(NUM_DIGITS, p=weights / weights.sum()))
        chosen.append(digit)
        partner = DIGIT_PARTNERS[digit]
        if len(chosen) < count and partner not in chosen and rng.random() < partner_prob:
            chosen.append(partner)
    return chosen


def _place(rng: np.random.Generator, occupied: np.ndarray, size: int, canvas: int) -> tuple[int, int]:
    """Top-left corner with the least overlap with what is already drawn (best of a few tries)."""
    best, best_overlap = (0, 0), None
    for _ in range(8):
        top, left = int(rng.integers(0, canvas - size + 1)), int(rng.integers(0, canvas - size + 1))
        overlap = float(occupied[top : top + size, left : left + size].sum())
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = (top, left), overlap
        if overlap == 0:
            break
    return best


def _resized_pools(images: np.ndarray, targets: np.ndarray, sizes: range) -> dict[tuple[int, int], np.ndarray]:
    """Every source digit resized (bilinear) to every size once: {(digit, size): n x size x size}."""
    source = torch.from_numpy(images)[:, None]
    pools = {}
    for size in sizes:
        resized = F.interpolate(source, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
        for digit in range(NUM_DIGITS):
            pools[(digit, size)] = resized[targets == digit]
    return pools


def _render(
    pools: dict[tuple[int, int], np.ndarray], labels: list[int], rng: np.random.Generator, canvas: int,
    scale_range: tuple[int, int],
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    image = np.zeros((canvas, canvas), dtype=np.float32)
    occupied = np.zeros((canvas, canvas), dtype=np.float32)
    boxes = []
    for label in labels:
        size = int(rng.integers(scale_range[0], scale_range[1] + 1))
        pool = pools[(label, size)]
        patch = pool[int(rng.integers(0, len(pool)))]
        top, left = _place(rng, occupied, size, canvas)
        region = image[top : top + size, left : left + size]
        np.maximum(region, patch, out=region)
        occupied[top : top + size, left : left + size] = 1.0
        boxes.append((label, top, left, size, size))
    return image, boxes


def make_digit_canvases(
    n_train: int,
    n_test: int,
    *,
    canvas: int = 28,
    max_digits: int = 4,
    partner_prob: float = 0.7,
    scale_range: tuple[int, int] = (8, 14),
    seed: int = 0,
) -> tuple[CanvasSplit, CanvasSplit]:
    """Train and test canvases of sklearn digits; train and test use disjoint digit images.

    Each canvas holds 1..``max_digits`` distinct digits (labels drawn from ``DIGIT_PRIOR``; a drawn digit
    brings its ``DIGIT_PARTNERS`` partner with probability ``partner_prob``), each resized to a random
    size in ``scale_range`` pixels and placed where it overlaps least with the others.
    """
    from sklearn.datasets import load_digits

    if not 1 <= max_digits <= NUM_DIGITS:
        raise ValueError(f"max_digits must be in 1..{NUM_DIGITS}, got {max_digits}")
    if not 1 <= scale_range[0] <= scale_range[1] <= canvas:
        raise ValueError(f"scale_range {scale_range} must satisfy 1 <= lo <= hi <= canvas={canvas}")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(12345).permutation(len(images))
    half = len(images) // 2
    splits = []
    for part, (n, idx) in enumerate(((n_train, order[:half]), (n_test, order[half:]))):
        pools = _resized_pools(images[idx], digits.target[idx], range(scale_range[0], scale_range[1] + 1))
        rng = np.random.default_rng([seed, part])
        canvases, targets, boxes = [], torch.zeros(n, NUM_DIGITS), []
        for row in range(n):
            labels = _sample_label_set(rng, max_digits, partner_prob)
            image, item_boxes = _render(pools, labels, rng, canvas, scale_range)
            canvases.append(image)
            targets[row, labels] = 1.0
            boxes.append(item_boxes)
        stacked = torch.from_numpy(np.stack(canvases))[:, None] if n else torch.zeros(0, 1, canvas, canvas)
        splits.append(CanvasSplit(stacked, targets, boxes))
    return splits[0], splits[1]


# -- COCO instances JSON ------------------------------------------------------------------------
def _require_keys(item: object, keys: tuple[str, ...], where: str) -> dict:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [key for key in keys if key not in item]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    return item


def _require_list(data: dict, key: str, path: Path) -> list:
    value = data[key]
    if not isinstance(value, list):
        raise DataError(f"{path}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _integer_id(value: object, where: str, field: str) -> int:
    """An integer id (COCO ids are integers); a string of digits is accepted, anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{where}: {field} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError as error:
        raise DataError(f"{where}: {field} must be an integer, got {value!r}") from error


def _image_id(value: object, where: str, field: str) -> int | str:
    """An image id: an integer (COCO) or a string (some COCO-style exports); nothing else."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{where}: {field} must be an integer or a string, got {value!r}")
    return value


def read_coco_instances(path: str | Path) -> MultiLabelSet:
    """Image-level label sets from a COCO ``instances_*.json``: an image's labels = its boxes' categories.

    Category ids (sparse in COCO: 1..90) are mapped to contiguous labels in increasing id order.
    Images without annotations get an empty label set. Errors name the file and the offending entry
    (missing fields, non-integer or duplicated ids, annotations pointing at unknown images or categories).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"{path}: COCO instances JSON not found")
    data = load_json_capped(path)
    data = _require_keys(data, ("images", "annotations", "categories"), str(path))
    category_ids: dict[int, str] = {}
    for i, category in enumerate(_require_list(data, "categories", path)):
        where = f"{path}: categories[{i}]"
        category = _require_keys(category, ("id", "name"), where)
        key = _integer_id(category["id"], where, "id")
        if key in category_ids:
            raise DataError(f"{where}: duplicate category id {key}")
        category_ids[key] = str(category["name"])
    label_of = {key: index for index, key in enumerate(sorted(category_ids))}
    position: dict[int | str, int] = {}
    ids: list[str] = []
    for i, image in enumerate(_require_list(data, "images", path)):
        where = f"{path}: images[{i}]"
        image = _require_keys(image, ("id",), where)
        key = _image_id(image["id"], where, "id")
        if key in position:
            raise DataError(f"{where}: duplicate image id {key}")
        position[key] = len(ids)
        ids.append(str(image.get("file_name", image["id"])))
    labels: list[set[int]] = [set() for _ in ids]
    for i, ann in enumerate(_require_list(data, "annotations", path)):
        where = f"{path}: annotations[{i}]"
        ann = _require_keys(ann, ("image_id", "category_id"), where)
        image_id = _image_id(ann["image_id"], where, "image_id")
        category_id = _integer_id(ann["category_id"], where, "category_id")
        if image_id not in position:
            raise DataError(f"{where}: image_id {ann['image_id']} is not in images")
        if category_id not in label_of:
            raise DataError(f"{where}: category_id {ann['category_id']} is not in categories")
        labels[position[image_id]].add(label_of[category_id])
    return MultiLabelSet(ids, labels, [category_ids[key] for key in sorted(category_ids)])


# -- YOLO label folders -------------------------------------------------------------------------
def _parse_yolo_file(path: Path, num_classes: int) -> set[int]:
    text = read_text_utf8(path, what="YOLO label file")
    labels: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            raise DataError(f"{path}:{lineno}: expected 'class x_center y_center width height', got {line!r}")
        try:
            label = int(fields[0])
            coords = [float(v) for v in fields[1:5]]
        except ValueError as error:
            raise DataError(f"{path}:{lineno}: expected an integer class and four numbers, got {line!r}") from error
        if not 0 <= label < num_classes:
            raise DataError(f"{path}:{lineno}: class {label} outside 0..{num_classes - 1}")
        if any(not 0.0 <= v <= 1.0 for v in coords):
            raise DataError(f"{path}:{lineno}: box coordinates must be normalised to [0, 1], got {fields[1:5]}")
        labels.add(label)
    return labels


def read_yolo_labels(
    folder: str | Path, num_classes: int = 80, class_names: Sequence[str] | None = None
) -> MultiLabelSet:
    """Image-level label sets from a folder of YOLO ``*.txt`` files (one per image, one box per line)."""
    folder = Path(folder)
    if num_classes < 1:
        raise DataError(f"{folder}: num_classes must be >= 1, got {num_classes}")
    if not folder.is_dir():
        raise DatasetMissingError(f"{folder}: YOLO label folder not found")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise DataError(f"{folder}: no YOLO *.txt label files")
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise DataError(f"{folder}: {len(names)} class names for {num_classes} classes")
    return MultiLabelSet([f.stem for f in files], [_parse_yolo_file(f, num_classes) for f in files], names)


def load_image_tensor(path: str | Path, size: int, channels: int = 3) -> Tensor:
    """An image file as a ``channels x size x size`` float tensor in [0, 1] (PIL, bilinear resize)."""
    from PIL import Image

    image = open_image_safe(path, "RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1).contiguous() if channels == 3 else tensor[None]


def read_yolo_dataset(root: str | Path, split: str, *, size: int = 64, num_classes: int = 80) -> tuple[Tensor, Tensor]:
    """Images ``N x 3 x size x size`` and multi-hot targets from ``root/images/split`` + ``root/labels/split``."""
    root = Path(root)
    labels = read_yolo_labels(root / "labels" / split, num_classes)
    image_dir = root / "images" / split
    if not image_dir.is_dir():
        raise DatasetMissingError(f"{image_dir}: YOLO image folder not found")
    images = []
    for stem in labels.ids:
        candidates = [image_dir / f"{stem}{ext}" for ext in (".jpg", ".jpeg", ".png")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"{image_dir / stem}.jpg|.jpeg|.png: no image for label file {stem}.txt")
        images.append(load_image_tensor(found, size))
    return torch.stack(images), labels.targets()


def read_coco_dataset(
    annotations: str | Path, image_dir: str | Path, *, size: int = 64
) -> tuple[Tensor, Tensor, list[str]]:
    """Images ``N x 3 x size x size``, multi-hot targets and class names from a COCO ``instances_*.json`` and
    the folder holding its images (each image's ``file_name``, else its id, relative to ``image_dir``)."""
    labels = read_coco_instances(annotations)
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DatasetMissingError(f"{image_dir}: COCO image folder not found")
    missing = [name for name in labels.ids if not (image_dir / name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{annotations}: {len(missing)} image(s) not found in {image_dir}: {shown}")
    images = torch.stack([load_image_tensor(image_dir / name, size) for name in labels.ids])
    return images, labels.targets(), labels.class_names
