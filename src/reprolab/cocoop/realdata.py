"""Real datasets in CoOp's layout for the base-to-new protocol (paper Sec. 4.1) and the cross-dataset transfer
(Sec. 4.2, Table 2).

A dataset folder holds the images and CoOp's split file (``split_zhou_<Name>.json``, lists of
``[impath, label, classname]`` for ``train``/``val``/``test``; ``impath`` relative to ``<folder>/images`` or, if
that does not exist, to ``<folder>``). As in CoCoOp's ``subsample_classes``: the labels are sorted, the first
``ceil(n/2)`` are the base classes and the rest the new classes. ``shots`` training images per base class are
drawn with the run's seed (CoOp's few-shot sampling), and at most ``test_per_class`` test images per class are
used (all of them when it is 0). For the cross-dataset transfer every class of the source is used for prompt
learning (:func:`load_full_task`) and a target contributes its test split over all of its classes
(:func:`load_test_split`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from reprolab.cocoop.data import CLIP_MEAN, CLIP_STD, ShapesWorld, load_image_folder, read_split_json
from reprolab.core.errors import DataError

__all__ = [
    "FullTask",
    "RealTask",
    "check_dataset_folder",
    "dataset_name",
    "export_shapes_folder",
    "find_split_file",
    "load_full_task",
    "load_real_task",
    "load_test_split",
]


@dataclass
class RealTask:
    """Few-shot training images of the base classes and test images of both halves, labels local to each half."""

    base_names: list[str]
    new_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test: dict[str, tuple[torch.Tensor, torch.Tensor]]


def find_split_file(folder: Path) -> Path:
    """The one ``split_zhou_*.json`` (or ``split*.json``) in ``folder``."""
    candidates = sorted(folder.glob("split_zhou_*.json")) or sorted(folder.glob("split*.json"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise DataError(f"{folder}: expected exactly one CoOp split file split_zhou_<Name>.json, found {found}")
    return candidates[0]


def _class_names(items: list[tuple[str, int, str]], path: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    for impath, label, name in items:
        if names.setdefault(label, name) != name:
            raise DataError(f"{path}: label {label} is named both {names[label]!r} and {name!r} ({impath})")
    return names


def _pick(items: list[tuple[str, int, str]], labels: list[int], per_class: int, generator: torch.Generator):
    """Up to ``per_class`` items of each label in ``labels`` (all when 0), drawn without replacement."""
    chosen, local = [], []
    for index, label in enumerate(labels):
        rows = [item for item in items if item[1] == label]
        if per_class:
            order = torch.randperm(len(rows), generator=generator)[:per_class].tolist()
            rows = [rows[i] for i in sorted(order)]
        chosen += rows
        local += [index] * len(rows)
    return chosen, torch.tensor(local, dtype=torch.long)


def check_dataset_folder(folder: Path) -> Path:
    """The dataset folder's split file, read and checked (raises :class:`DataError` naming the file)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (expected CoOp's layout: <folder>/images/... and "
                        "<folder>/split_zhou_<Dataset>.json; a bare name is looked up under <data home>/coop/)")
    split_path = find_split_file(folder)
    read_split_json(split_path)
    return split_path


def load_real_task(
    folder: str | Path, image_size: int, shots: int, test_per_class: int, generator: torch.Generator
) -> RealTask:
    """Read a CoOp-layout dataset and build one seed's base-to-new task (images resized to the CLIP input)."""
    folder = Path(folder)
    split_path = check_dataset_folder(folder)
    split = read_split_json(split_path)
    names = _class_names(split["train"] + split["test"], split_path)
    labels = sorted(names)
    m = math.ceil(len(labels) / 2)
    base, new = labels[:m], labels[m:]
    if not new:
        raise DataError(f"{split_path}: base-to-new needs at least two classes, found {len(labels)}")
    root = _image_root(folder)
    train_items, train_y = _pick(split["train"], base, shots, generator)
    short = [names[b] for b in base if sum(1 for item in split["train"] if item[1] == b) < shots]
    if short:
        raise DataError(f"{split_path}: fewer than {shots} training images for classes {short[:5]}")
    test: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for half, half_labels in (("base", base), ("new", new)):
        items, y = _pick(split["test"], half_labels, test_per_class, generator)
        if not items:
            raise DataError(f"{split_path}: no test images for the {half} classes")
        test[half] = (load_image_folder(root, items, image_size), y)
    return RealTask(
        base_names=[names[b] for b in base],
        new_names=[names[n] for n in new],
        train_x=load_image_folder(root, train_items, image_size),
        train_y=train_y,
        test=test,
    )


@dataclass
class FullTask:
    """A whole dataset: few-shot training images of every class and its test images (labels = sorted order)."""

    names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def dataset_name(folder: Path) -> str:
    """The dataset's name from its split file: ``split_zhou_OxfordPets.json`` -> ``OxfordPets``."""
    stem = find_split_file(folder).stem
    return stem.removeprefix("split_zhou_").removeprefix("split_") or folder.name


def _image_root(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def load_test_split(
    folder: str | Path, image_size: int, test_per_class: int, generator: torch.Generator
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """A target dataset of the cross-dataset transfer: class names (sorted labels) and its test images, at most
    ``test_per_class`` per class (all when 0)."""
    folder = Path(folder)
    split_path = check_dataset_folder(folder)
    split = read_split_json(split_path)
    names = _class_names(split["train"] + split["test"], split_path)
    labels = sorted(names)
    items, y = _pick(split["test"], labels, test_per_class, generator)
    if not items:
        raise DataError(f"{split_path}: the test split is empty")
    return [names[label] for label in labels], load_image_folder(_image_root(folder), items, image_size), y


def load_full_task(
    folder: str | Path, image_size: int, shots: int, test_per_class: int, generator: torch.Generator
) -> FullTask:
    """The source dataset of the cross-dataset transfer: ``shots`` training images of *every* class (the paper
    learns prompts on all 1,000 ImageNet classes) and its test split."""
    folder = Path(folder)
    split_path = check_dataset_folder(folder)
    split = read_split_json(split_path)
    names = _class_names(split["train"] + split["test"], split_path)
    labels = sorted(names)
    short = [names[b] for b in labels if sum(1 for item in split["train"] if item[1] == b) < shots]
    if short:
        raise DataError(f"{split_path}: fewer than {shots} training images for classes {short[:5]}")
    train_items, train_y = _pick(split["train"], labels, shots, generator)
    test_items, test_y = _pick(split["test"], labels, test_per_class, generator)
    if not test_items:
        raise DataError(f"{split_path}: the test split is empty")
    root = _image_root(folder)
    return FullTask(
        names=[names[label] for label in labels],
        train_x=load_image_folder(root, train_items, image_size),
        train_y=train_y,
        test_x=load_image_folder(root, test_items, image_size),
        test_y=test_y,
    )


def export_shapes_folder(
    world: ShapesWorld,
    folder: str | Path,
    labels: list[int],
    background: str,
    per_class: tuple[int, int],
    seed: int,
    name: str,
) -> Path:
    """Write generated shapes of ``labels`` on ``background`` as a CoOp-layout folder (``images/<class>/*.png``
    and ``split_zhou_<name>.json``; ``per_class`` = (train, test) images per class; labels renumbered 0..n-1 in
    the given order). Lets the cross-dataset protocol run on the generated world, e.g. source = base classes on
    dark backgrounds, targets = new classes or other backgrounds. Returns the split file."""
    from PIL import Image

    folder = Path(folder)
    gen = torch.Generator().manual_seed(seed)
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    split: dict[str, list[list[object]]] = {"train": [], "val": [], "test": []}
    for local, label in enumerate(labels):
        classname = world.classnames[label]
        (folder / "images" / classname.replace(" ", "_")).mkdir(parents=True, exist_ok=True)
        for part, count in zip(("train", "test"), per_class, strict=True):
            pixels, _ = world.render(torch.full((count,), label), gen, background)
            raw = ((pixels * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
            for i, image in enumerate(raw.numpy()):
                rel = f"{classname.replace(' ', '_')}/{part}_{i:04d}.png"
                Image.fromarray(image).save(folder / "images" / rel)
                split[part].append([rel, local, classname])
    path = folder / f"split_zhou_{name}.json"
    path.write_text(json.dumps(split))
    return path
