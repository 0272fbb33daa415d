"""Malformed-input fuzz suite: every reader, many broken variants of a valid sample, one line each.

A generator derives variants (truncated, wrong column count, non-numeric, empty, binary junk, UTF-16 and
Latin-1 text, NaN/inf, huge values, missing files, deeply nested JSON, decompression bombs, unsafe archive
members) from small valid sample files of every reader, and runs each through its documented entry point:
the CLI where one reads the file before any work (run-folder ``config.yaml`` and checkpoint on ``--resume``,
``results.json`` on ``report``, model/data files named by ``--set`` with the run stopped before training),
the reader API otherwise. Each variant must end in one ``ReproError`` line (CLI: ``error: ...``, exit 2)
naming the file -- and the line where the format has lines -- with no traceback, no results.json and no
run folder left behind. The valid sample itself must read without error.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reprolab.core.errors import ReproError

# --------------------------------------------------------------------------------------- mutations
JUNK = b"\x00\xff\xfe\x80\x81 junk \xc3\x28\x9f" * 4
BOMB_PIXELS = 60_000


def _png_bomb() -> bytes:
    """A PNG header declaring 60000 x 60000 pixels (3.6 gigapixels) with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", BOMB_PIXELS, BOMB_PIXELS, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b""
    )


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _split_tokens(line: str) -> tuple[list[str], str]:
    for sep in ("\t", ", ", ",", " "):
        if sep in line:
            return line.split(sep), sep
    return [line], " "


def _set_token(path: Path, value: str, row: int = 1, col: int = 0) -> None:
    lines = _lines(path)
    tokens, sep = _split_tokens(lines[row])
    tokens[col] = value
    lines[row] = sep.join(tokens)
    _write_lines(path, lines)


def _truncate_line(path: Path) -> None:
    """Cut the file right after the first separator of its middle line (too few fields there)."""
    lines = _lines(path)
    row = len(lines) // 2
    tokens, sep = _split_tokens(lines[row])
    lines = lines[:row] + [tokens[0] + sep.rstrip()]
    path.write_text("\n".join(lines), encoding="utf-8")


def _drop_column(path: Path) -> None:
    lines = _lines(path)
    tokens, sep = _split_tokens(lines[1])
    lines[1] = sep.join(tokens[:-1]) if len(tokens) > 1 else f"{tokens[0]}{sep}{tokens[0]}"
    _write_lines(path, lines)


def _latin1(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1] + b"\xe9"
    path.write_bytes(b"\n".join(lines))


def _nest_json(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def _json_edit(edit: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))), encoding="utf-8")

    return apply


def _jsonl_edit(edit: Callable[[dict], Any], row: int = 1) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        lines = _lines(path)
        lines[row] = json.dumps(edit(json.loads(lines[row])))
        _write_lines(path, lines)

    return apply


def _jsonl_raw(text: str, row: int = 1) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        lines = _lines(path)
        lines[row] = text
        _write_lines(path, lines)

    return apply


def _state_edit(edit: Callable[[dict], Any]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        torch.save(edit(state), path)

    return apply


def _first_float(state: dict, value: float) -> dict:
    key = next(k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = value
    return state


def _drop_first_key(state: dict) -> dict:
    del state[next(iter(state))]
    return state


def _reshape_first(state: dict) -> dict:
    key = next(k for k, v in state.items() if isinstance(v, torch.Tensor) and v.ndim >= 2)
    state[key] = torch.zeros(3, 3)
    return state


class _Evil:
    def __reduce__(self):  # executed by an unsafe loader only
        return (os.system, ("echo pwned",))


# name -> (mutate(path), the error must name a line)
BASIC: dict[str, tuple[Callable[[Path], None], bool]] = {
    "empty": (lambda p: p.write_bytes(b""), False),
    "binary": (lambda p: p.write_bytes(JUNK), False),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: max(1, len(p.read_bytes()) // 2)]), False),
    "missing": (lambda p: p.unlink(), False),
}
TEXT = {
    **{k: BASIC[k] for k in ("empty", "binary", "missing")},
    "utf16": (lambda p: p.write_bytes(p.read_text().encode("utf-16")), False),
    "latin1": (_latin1, True),
    "truncated": (_truncate_line, True),
    "wrong_columns": (_drop_column, True),
}
NUMERIC = {
    **TEXT,
    "non_numeric": (lambda p: _set_token(p, "abc"), True),
    "nan": (lambda p: _set_token(p, "nan"), True),
    "inf": (lambda p: _set_token(p, "inf"), True),
    "float": (lambda p: _set_token(p, "1.5"), True),
    "huge": (lambda p: _set_token(p, "99999999999999999999"), True),
    "negative": (lambda p: _set_token(p, "-3"), True),
}
INDEX = {**NUMERIC, "zero": (lambda p: _set_token(p, "0"), True), "big": (lambda p: _set_token(p, "2000000000"), True)}
FLOATS = {
    **TEXT,
    "non_numeric": (lambda p: _set_token(p, "abc"), True),
    "nan": (lambda p: _set_token(p, "nan"), True),
    "inf": (lambda p: _set_token(p, "inf"), True),
    "overflow": (lambda p: _set_token(p, "1e999"), True),
}
JSON = {
    **BASIC,
    "utf16": (lambda p: p.write_bytes(p.read_text().encode("utf-16")), False),
    "nested": (_nest_json, False),
    "list": (lambda p: p.write_text("[1, 2, 3]"), False),
    "string": (lambda p: p.write_text('"text"'), False),
    "nan_literal": (lambda p: p.write_text('{"x": NaN}'), False),
}
IMAGE = {
    **BASIC,
    "bomb": (lambda p: p.write_bytes(_png_bomb()), False),
    "text": (lambda p: p.write_text("not an image\n"), False),
}
TORCH = {
    **BASIC,
    "not_a_dict": (lambda p: torch.save([torch.zeros(2)], p), False),
    "nan_weight": (_state_edit(lambda s: _first_float(s, float("nan"))), False),
    "inf_weight": (_state_edit(lambda s: _first_float(s, float("inf"))), False),
    "missing_key": (_state_edit(_drop_first_key), False),
    "wrong_shape": (_state_edit(_reshape_first), False),
    "evil_pickle": (lambda p: p.write_bytes(pickle.dumps({"w": _Evil()})), False),
}
PICKLE = {
    **BASIC,
    "wrong_object": (lambda p: p.write_bytes(pickle.dumps("oops", protocol=2)), False),
    "evil_pickle": (lambda p: p.write_bytes(pickle.dumps(_Evil(), protocol=2)), False),
    "list_matrix": (lambda p: p.write_bytes(pickle.dumps([[1, 2]], protocol=2)), False),
}


# a single-column file cut mid-way holds fewer values: the count mismatch names the file, not a line
SHORT = (_truncate_line, False)


def _pick(table: dict, *names: str, **extra: tuple[Callable[[Path], None], bool]) -> dict:
    chosen = {name: table[name] for name in names} if names else dict(table)
    return {**chosen, **extra}


# ----------------------------------------------------------------------------------------- readers
@dataclass
class Reader:
    """A reader: ``make(dir)`` writes a valid sample, ``call(dir)`` reads it through the entry point."""

    name: str
    make: Callable[[Path], None]
    call: Callable[[Path], Any]
    targets: dict[str, dict[str, tuple[Callable[[Path], None], bool]]]
    cli: bool = False
    run_dir: str | None = None  # CLI readers: the run folder that must not gain results.json / must vanish
    fresh_run: bool = False  # the run folder did not exist before: none may be left behind
    extra_checks: list[Callable[[Path], None]] = field(default_factory=list)


def _triples(path: Path, rows: list[tuple[str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_lines(path, ["\t".join(row) for row in rows])


def _make_grail(root: Path) -> None:
    rows = [(f"e{i}", f"r{i % 2}", f"e{i + 1}") for i in range(6)]
    for folder in ("toy", "toy_ind"):
        for split in ("train", "valid", "test"):
            _triples(root / folder / f"{split}.txt", rows)


def _call_grail(root: Path) -> Any:
    from reprolab.compile_kg.data import load_grail_split

    return load_grail_split(root, "toy")


def _make_kg(root: Path) -> None:
    _triples(root / "train.txt", [(f"e{i}", f"r{i % 2}", f"e{i + 1}") for i in range(6)])


def _call_kg(root: Path) -> Any:
    from reprolab.domain_kge.data import read_triples

    return read_triples(root / "train.txt")


def _make_tu(root: Path) -> None:
    """Six 3-node path graphs, two classes (enough for 2 folds with both classes in every training fold)."""
    root.mkdir(parents=True, exist_ok=True)
    edges = [f"{3 * g + a}, {3 * g + b}" for g in range(6) for a, b in ((1, 2), (2, 1), (2, 3), (3, 2))]
    _write_lines(root / "toy_A.txt", edges)
    _write_lines(root / "toy_graph_indicator.txt", [str(g + 1) for g in range(6) for _ in range(3)])
    _write_lines(root / "toy_graph_labels.txt", [str(1 + g % 2) for g in range(6)])
    _write_lines(root / "toy_node_labels.txt", [str(i % 2) for i in range(18)])
    _write_lines(root / "toy_node_attributes.txt", [f"{i}.5, 0.25" for i in range(18)])


def _call_tu(root: Path) -> Any:
    from reprolab.diffpool.data import read_tu_dataset

    return read_tu_dataset(root, "toy")


def _make_planetoid(root: Path) -> None:
    import scipy.sparse as sp

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n, d, c = 520, 4, 3
    features = rng.random((n, d))
    labels = np.eye(c)[rng.integers(0, c, n)]
    test = np.arange(n - 10, n)[::-1]
    objects = {
        "x": sp.csr_matrix(features[:4]), "y": labels[:4], "allx": sp.csr_matrix(features[: n - 10]),
        "ally": labels[: n - 10], "tx": sp.csr_matrix(features[np.sort(test)]), "ty": labels[np.sort(test)],
        "graph": {i: [(i + 1) % n, (i + 7) % n] for i in range(n)},
    }  # fmt: skip
    for suffix, value in objects.items():
        (root / f"ind.toy.{suffix}").write_bytes(pickle.dumps(value, protocol=2))
    _write_lines(root / "ind.toy.test.index", [str(i) for i in test])


def _call_planetoid(root: Path) -> Any:
    from reprolab.lds.data import read_planetoid

    return read_planetoid(root, "toy")


def _nan_matrix(path: Path) -> None:
    value = pickle.loads(path.read_bytes(), encoding="latin1")
    dense = np.asarray(value.toarray() if hasattr(value, "toarray") else value, dtype=np.float64)
    dense[0, 0] = np.nan
    path.write_bytes(pickle.dumps(dense, protocol=2))


def _label_row(row: list[int]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        labels = np.asarray(pickle.loads(path.read_bytes(), encoding="latin1"), dtype=np.float64)
        labels[0] = row
        path.write_bytes(pickle.dumps(labels, protocol=2))

    return apply


def _graph_edit(edit: Callable[[dict], dict]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        path.write_bytes(pickle.dumps(edit(pickle.loads(path.read_bytes())), protocol=2))

    return apply


def _image(path: Path, size: tuple[int, int] = (12, 10), mode: str = "RGB", colour: Any = (200, 30, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def _make_coop(root: Path) -> None:
    _image(root / "images" / "a.png")
    _image(root / "images" / "b.png", colour=(0, 0, 200))
    split = {"train": [["a.png", 0, "red"]], "val": [], "test": [["b.png", 1, "blue"]]}
    (root / "split.json").write_text(json.dumps(split))


def _call_coop_split(root: Path) -> Any:
    from reprolab.cocoop.data import read_split_json

    return read_split_json(root / "split.json")


def _call_coop_images(root: Path) -> Any:
    from reprolab.cocoop.data import load_image_folder

    return load_image_folder(root / "images", [("a.png", 0, "red"), ("b.png", 1, "blue")], 8)


def _make_mmimdb(root: Path) -> None:
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    (root / "split.json").write_text(json.dumps({"train": ["001", "002"], "dev": [], "test": []}))
    for key, genre in (("001", "Drama"), ("002", "Comedy")):
        (root / f"dataset/{key}.json").write_text(json.dumps({"genres": [genre], "plot": ["A plot."]}))
        _image(root / f"dataset/{key}.jpeg")


def _vl_tensors(records: list) -> Any:
    from reprolab.missing_prompts.data import WordVocab, records_to_tensors

    vocab = WordVocab.build([r.text for r in records])
    labels = max(max(r.label) if isinstance(r.label, tuple) else r.label for r in records) + 2
    multi = isinstance(records[0].label, tuple)
    return records_to_tensors(records, vocab.encode, image_size=4, max_text_len=6, n_labels=labels, multi_label=multi)


def _call_mmimdb(root: Path) -> Any:
    from reprolab.missing_prompts.data import read_mmimdb

    return _vl_tensors(read_mmimdb(root, "train"))


def _make_food(root: Path) -> None:
    for cls in ("apple_pie", "pizza"):
        _image(root / "images/train" / cls / f"{cls}_0.jpg")
    (root / "texts").mkdir()
    _write_lines(root / "texts/train_titles.csv", ["apple_pie_0.jpg,Best pie,apple_pie", "pizza_0.jpg,Pizza,pizza"])


def _call_food(root: Path) -> Any:
    from reprolab.missing_prompts.data import read_food101

    records, _ = read_food101(root, "train")
    return _vl_tensors(records)


def _make_memes(root: Path) -> None:
    _image(root / "img/01.png")
    _image(root / "img/02.png")
    rows = [{"id": i, "img": f"img/0{i}.png", "label": i % 2, "text": "a meme"} for i in (1, 2)]
    _write_lines(root / "train.jsonl", [json.dumps(row) for row in rows])


def _call_memes(root: Path) -> Any:
    from reprolab.missing_prompts.data import read_hateful_memes

    return _vl_tensors(read_hateful_memes(root, "train"))


def _make_missing_table(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.json").write_text(json.dumps({"table": [0, 1, 2, 0]}))


def _call_missing_table(root: Path) -> Any:
    from reprolab.missing_prompts.data import load_missing_table

    return load_missing_table(root / "table.json")


def _make_coco(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 3}, {"image_id": 2, "category_id": 5}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    (root / "instances.json").write_text(json.dumps(data, indent=1))


def _call_coco(root: Path) -> Any:
    from reprolab.orderfree.data import read_coco_instances

    return read_coco_instances(root / "instances.json")


def _make_yolo(root: Path) -> None:
    for stem in ("a", "b"):
        _image(root / "images/train" / f"{stem}.png")
        _write_lines(root / "labels/train" / f"{stem}.txt", ["1 0.5 0.5 0.2 0.2", "3 0.25 0.5 0.1 0.3"])


def _call_yolo(root: Path) -> Any:
    from reprolab.orderfree.data import read_yolo_dataset

    return read_yolo_dataset(root, "train", size=8, num_classes=5)


def _make_saliency(root: Path) -> None:
    for stem in ("a", "b"):
        _image(root / "images" / f"{stem}.png")
        _image(root / "masks" / f"{stem}.png", mode="L", colour=255)


def _call_saliency(root: Path) -> Any:
    from reprolab.ras.data import read_saliency_folder

    return read_saliency_folder(root / "images", root / "masks")


def _make_imnet(root: Path) -> None:
    from reprolab.imnet.data import make_shape_set, write_imnet_hdf5

    root.mkdir(parents=True, exist_ok=True)
    write_imnet_hdf5(root / "shapes.hdf5", make_shape_set(["chair"], 2, 8, seed=0), [4], seed=0)


def _call_imnet(root: Path) -> Any:
    from reprolab.imnet.data import read_imnet_hdf5

    return read_imnet_hdf5(root / "shapes.hdf5")


def _h5_edit(key: str, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        import h5py

        with h5py.File(path, "a") as handle:
            data = edit(np.asarray(handle[key]))
            del handle[key]
            handle.create_dataset(key, data=data)

    return apply


def _h5_labels(values: list[int]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        import h5py

        with h5py.File(path, "a") as handle:
            if "labels" in handle:
                del handle["labels"]
            handle.create_dataset("labels", data=np.asarray(values, dtype=np.int64))

    return apply


def _nan_first(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32)
    array.reshape(-1)[0] = np.nan
    return array


def _make_binvox(root: Path) -> None:
    from reprolab.imnet.data import write_binvox

    root.mkdir(parents=True, exist_ok=True)
    vox = np.zeros((4, 4, 4), dtype=np.uint8)
    vox[1:3, 1:3, 1:3] = 1
    write_binvox(root / "shape.binvox", vox)


def _call_binvox(root: Path) -> Any:
    from reprolab.imnet.data import read_binvox

    return read_binvox(root / "shape.binvox")


def _binvox_header(replace: tuple[bytes, bytes]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = path.read_bytes()
        head, _, body = data.partition(b"data\n")
        head = re.sub(replace[0], replace[1], head)
        path.write_bytes(head + b"data\n" + body)

    return apply


def _make_maxk(root: Path) -> None:
    from reprolab.maxk_proofs.model import MaxKConfig, MaxKTransformer, save_state_dict_file

    torch.manual_seed(0)
    save_state_dict_file(MaxKTransformer(MaxKConfig(d_vocab=6, n_ctx=2, d_model=8, d_head=8)), root / "model.pth")


def _maxk_sized(d_vocab: int, n_ctx: int) -> Callable[[Path], None]:
    """Replace the model file by a valid model of other sizes (the file's shapes, not the config, set them)."""

    def apply(path: Path) -> None:
        from reprolab.maxk_proofs.model import MaxKConfig, MaxKTransformer, save_state_dict_file

        save_state_dict_file(MaxKTransformer(MaxKConfig(d_vocab=d_vocab, n_ctx=n_ctx, d_model=4, d_head=4)), path)

    return apply


def _call_maxk(root: Path) -> Any:
    from reprolab.maxk_proofs.model import load_state_dict_file

    return load_state_dict_file(root / "model.pth")


def _make_resnet(root: Path) -> None:
    from reprolab.orderfree.model import ResNetBackbone

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(ResNetBackbone(widths=(4, 8), blocks=(1, 1)).state_dict(), root / "resnet.pth")


def _call_resnet(root: Path) -> Any:
    from reprolab.orderfree.model import ResNetBackbone, load_torchvision_resnet

    return load_torchvision_resnet(ResNetBackbone(widths=(4, 8), blocks=(1, 1)), root / "resnet.pth")


TINY_DEMI = ["steps=4", "true_mis=[2]", "ks=[2]", "digits=false", "hidden=8", "embed=4", "batch_size=8",
             "eval_batches=2", "checkpoint_every=2"]  # fmt: skip


_RUN_SAMPLE: dict[str, Path] = {}


def _make_run(root: Path) -> None:
    """A tiny demi run folder killed after its last checkpoint (made once per worker, copied per variant)."""
    import shutil

    from reprolab.core.config import parse_set_options
    from reprolab.core.runner import run_experiment

    if "run" not in _RUN_SAMPLE or not _RUN_SAMPLE["run"].is_dir():
        sample = root.parent / f"{root.name}-sample" / "run"
        run_experiment("demi", "quick", parse_set_options(TINY_DEMI), seed=0, out=sample)
        (sample / "results.json").unlink()  # as if killed after its last checkpoint
        _RUN_SAMPLE["run"] = sample
    shutil.copytree(_RUN_SAMPLE["run"], root / "run")


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from reprolab.cli import app

    return CliRunner().invoke(app, list(args))


def _resume_args(root: Path) -> list[str]:
    sets = [part for item in TINY_DEMI for part in ("--set", item)]
    return ["run", "demi", *sets, "--seed", "0", "--out", str(root / "run"), "--resume"]


def _call_resume(root: Path) -> Any:
    return _cli(*_resume_args(root))


def _make_finished(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    results = {"method": "demi", "preset": "quick", "seed": 0, "metrics": {}, "claims": [], "runtime_s": 1.0}
    (root / "results.json").write_text(json.dumps(results))


def _call_report(root: Path) -> Any:
    return _cli("report", str(root))


def _make_tu_cli(root: Path) -> None:
    _make_tu(root / "tu")


def _call_tu_cli(root: Path) -> Any:
    sets = [f"tu_folder={root / 'tu'}", "dataset=toy", "epochs=1", "folds=2", "run_folds=1", "models=[diffpool]"]
    return _cli("run", "diffpool", *[part for item in sets for part in ("--set", item)], "--out", str(root / "run"))


def _make_maxk_cli(root: Path) -> None:
    _make_maxk(root)


def _call_maxk_cli(root: Path) -> Any:
    model = root / "model.pth"
    return _cli("run", "maxk_proofs", "--set", f"model_files=[{model}]", "--set", "d_vocab=6",
                "--set", "n_ctx=2", "--set", "d_model=8", "--set", "d_head=8", "--set", "forward_check_samples=10",
                "--out", str(root / "run"))  # fmt: skip


def _make_archive_zip(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        zf.writestr("folder/a.txt", "hello")


def _make_archive_tar(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "data.tar", "w") as tf:
        payload = b"hello"
        info = tarfile.TarInfo("folder/a.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))


def _call_extract(name: str) -> Callable[[Path], Any]:
    def call(root: Path) -> Any:
        from reprolab.core.data import safe_extract

        return safe_extract(root / name, root / "out")

    return call


def _zip_member(name: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(name, "x")

    return apply


def _zip_through_symlink(path: Path) -> None:
    """A member written through a symlink that already exists in the destination, pointing outside it."""
    out = path.parent / "out"
    out.mkdir(exist_ok=True)
    (path.parent / "outside").mkdir(exist_ok=True)
    (out / "link").symlink_to(path.parent / "outside")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("link/escaped.txt", "x")


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with tarfile.open(path, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            data = b"" if kind != tarfile.REGTYPE else b"x"
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

    return apply


def _run_config(text: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(text)


READERS: list[Reader] = [
    Reader("grail_triples", _make_grail, _call_grail,
           {"toy/train.txt": TEXT, "toy_ind/test.txt": _pick(TEXT, "binary", "utf16", "latin1", "truncated",
                                                               "wrong_columns", "missing")}),
    Reader("kg_triples", _make_kg, _call_kg, {"train.txt": TEXT}),
    Reader("tu_dataset", _make_tu, _call_tu, {
        # an empty A file is a dataset without edges, which the reader accepts on purpose
        "toy_A.txt": _pick(INDEX, *[k for k in INDEX if k != "empty"]),
        "toy_graph_indicator.txt": _pick(INDEX, *[k for k in INDEX if k not in ("wrong_columns", "truncated")],
                                         truncated=SHORT),
        # labels are category codes (negative ones occur in TU sets), so only non-integers and overflow are wrong
        "toy_graph_labels.txt": _pick(NUMERIC, "empty", "binary", "utf16", "latin1", "non_numeric", "nan", "inf",
                                      "float", "huge", "missing", truncated=SHORT),
        "toy_node_labels.txt": _pick(NUMERIC, "empty", "binary", "utf16", "latin1", "non_numeric", "nan", "inf",
                                     "float", "huge", truncated=SHORT),
        "toy_node_attributes.txt": _pick(FLOATS, *[k for k in FLOATS if k != "missing"]),
    }),
    Reader("tu_dataset_cli", _make_tu_cli, _call_tu_cli, {
        "tu/toy_A.txt": _pick(INDEX, "binary", "non_numeric", "zero", "big", "nan"),
        "tu/toy_node_attributes.txt": _pick(FLOATS, "nan", "inf", "utf16"),
    }, cli=True, run_dir="run", fresh_run=True),
    Reader("planetoid", _make_planetoid, _call_planetoid, {
        **{f"ind.toy.{s}": _pick(PICKLE, nan=(_nan_matrix, False)) for s in ("x", "allx", "tx")},
        **{f"ind.toy.{s}": _pick(PICKLE, zero_label_row=(_label_row([0, 0, 0]), False),
                                 two_labels=(_label_row([1, 1, 0]), False)) for s in ("y", "ally", "ty")},
        "ind.toy.graph": _pick(PICKLE, "empty", "binary", "truncated", "missing", "wrong_object", "evil_pickle",
                               node_out_of_range=(_graph_edit(lambda g: {**g, 0: [10**9]}), False),
                               negative_node=(_graph_edit(lambda g: {**g, 0: [-4]}), False)),
        "ind.toy.test.index": _pick(INDEX, *[k for k in INDEX if k not in ("wrong_columns", "truncated")],
                                    truncated=SHORT),
    }),
    Reader("coop_split", _make_coop, _call_coop_split, {"split.json": _pick(
        JSON, negative_label=(_json_edit(lambda d: {**d, "train": [["a.png", -1, "red"]]}), False),
        missing_test=(_json_edit(lambda d: {"train": d["train"]}), False),
        float_label=(_json_edit(lambda d: {**d, "train": [["a.png", 0.5, "red"]]}), False))}),
    Reader("coop_images", _make_coop, _call_coop_images, {"images/a.png": IMAGE}),
    Reader("mmimdb", _make_mmimdb, _call_mmimdb, {
        "split.json": _pick(JSON, missing_train=(_json_edit(lambda d: {"test": []}), False)),
        "dataset/001.json": _pick(JSON, no_genres=(_json_edit(lambda d: {"plot": d["plot"]}), False),
                                  unknown_genre=(_json_edit(lambda d: {**d, "genres": ["Nope"]}), False)),
        "dataset/002.jpeg": IMAGE,
    }),
    Reader("food101", _make_food, _call_food, {
        "texts/train_titles.csv": _pick(TEXT, "empty", "binary", "utf16", "latin1", "truncated", "wrong_columns",
                                        "missing", unknown_class=(lambda p: _set_token(p, "sushi", 1, 2), True)),
        "images/train/pizza/pizza_0.jpg": IMAGE,
    }),
    Reader("hateful_memes", _make_memes, _call_memes, {
        "train.jsonl": {
            **_pick(TEXT, "empty", "binary", "utf16", "latin1", "missing"),
            "truncated": (_jsonl_raw('{"id": 2, "img": "img/02.p'), True),
            "nested": (_jsonl_raw("[" * 100_000 + "]" * 100_000), True),
            "list": (_jsonl_raw("[1, 2]"), True),
            "nan_label": (_jsonl_raw('{"id": 2, "img": "img/02.png", "label": NaN, "text": "x"}'), True),
            "huge_label": (_jsonl_edit(lambda r: {**r, "label": 10**12}), True),
            "no_img": (_jsonl_edit(lambda r: {"id": r["id"], "label": 0, "text": "x"}), True),
        },
        "img/02.png": IMAGE,
    }),
    Reader("missing_table", _make_missing_table, _call_missing_table, {"table.json": _pick(
        JSON, out_of_range=(_json_edit(lambda d: {"table": [0, 7]}), False),
        float_values=(_json_edit(lambda d: {"table": [0.5, 1]}), False),
        huge=(_json_edit(lambda d: {"table": [10**30]}), False))}),
    Reader("coco_instances", _make_coco, _call_coco, {"instances.json": _pick(
        JSON, missing_images=(_json_edit(lambda d: {k: v for k, v in d.items() if k != "images"}), False),
        float_id=(_json_edit(lambda d: {**d, "categories": [{"id": 3.5, "name": "cat"}]}), False),
        unknown_image=(_json_edit(lambda d: {**d, "annotations": [{"image_id": 9, "category_id": 3}]}), False),
        huge_id=(_json_edit(lambda d: {**d, "categories": [{"id": 10**40, "name": "cat"}]}), False))}),
    Reader("yolo_labels", _make_yolo, _call_yolo, {
        "labels/train/a.txt": _pick(NUMERIC, *[k for k in NUMERIC if k not in ("empty", "missing")],
                                    box_nan=(lambda p: _set_token(p, "nan", 1, 2), True),
                                    box_out=(lambda p: _set_token(p, "7", 1, 3), True)),
        "images/train/b.png": IMAGE,
    }),
    Reader("saliency", _make_saliency, _call_saliency, {"images/a.png": IMAGE, "masks/b.png": IMAGE}),
    Reader("imnet_hdf5", _make_imnet, _call_imnet, {"shapes.hdf5": _pick(
        BASIC, nan_voxels=(_h5_edit("voxels", _nan_first), False),
        nan_points=(_h5_edit("points_4", _nan_first), False),
        nan_values=(_h5_edit("values_4", _nan_first), False),
        huge_labels=(_h5_labels([10**12, 0]), False), negative_labels=(_h5_labels([-1, 0]), False),
        no_voxels=(_h5_edit("voxels", lambda a: a[:0]), False))}),
    Reader("binvox", _make_binvox, _call_binvox, {"shape.binvox": _pick(
        BASIC, huge_dims=(_binvox_header((rb"dim \d+ \d+ \d+", b"dim 100000 100000 100000")), False),
        zero_dims=(_binvox_header((rb"dim \d+ \d+ \d+", b"dim 0 4 4")), False),
        bad_header=(_binvox_header((rb"#binvox 1", b"#binvax 9")), False),
        text_dims=(_binvox_header((rb"dim \d+ \d+ \d+", b"dim a b c")), False))}),
    Reader("maxk_state_dict", _make_maxk, _call_maxk, {"model.pth": TORCH}),
    Reader("maxk_state_dict_cli", _make_maxk_cli, _call_maxk_cli, {"model.pth": _pick(
        TORCH, "nan_weight", "inf_weight", "truncated", "missing_key", "evil_pickle",
        positions_12=(_maxk_sized(16, 12), False), vocab_3000=(_maxk_sized(3000, 2), False))},
        cli=True, run_dir="run", fresh_run=True),
    Reader("resnet_state_dict", _make_resnet, _call_resnet, {"resnet.pth": TORCH}),
    Reader("run_config", _make_run, _call_resume, {"run/config.yaml": {
        "list": (_run_config(b"- a\n- b\n"), False), "string": (_run_config(b"just text\n"), False),
        "binary": (_run_config(JUNK), False), "utf16": (_run_config("method: demi\n".encode("utf-16")), False),
        "broken": (_run_config(b"method: [demi\n"), False), "empty": (_run_config(b""), False),
        "nested": (_run_config(b"[" * 5_000 + b"]" * 5_000), False),
        "number": (_run_config(b"12\n"), False),
    }}, cli=True, run_dir="run"),
    Reader("run_checkpoint", _make_run, _call_resume, {"run/checkpoints/last.pt": _pick(
        TORCH, "empty", "binary", "truncated", "not_a_dict", "evil_pickle",
        no_rng=(_state_edit(lambda s: {**s, "state": {k: v for k, v in s["state"].items() if k != "rng"}}), False),
        no_state=(_state_edit(lambda s: {k: v for k, v in s.items() if k != "state"}), False),
        bad_lines=(_state_edit(lambda s: {**s, "state": {**s["state"], "metrics_lines": -4}}), False),
        bad_tables=(_state_edit(lambda s: {**s, "state": {**s["state"], "tables": "[[["}}), False))},
        cli=True, run_dir="run"),
    Reader("results_json", _make_finished, _call_report, {"results.json": _pick(
        JSON, no_metrics=(_json_edit(lambda d: {k: v for k, v in d.items() if k != "metrics"}), False),
        metrics_list=(_json_edit(lambda d: {**d, "metrics": [1, 2]}), False),
        unknown_method=(_json_edit(lambda d: {**d, "method": 12}), False))}, cli=True),
    Reader("zip_archive", _make_archive_zip, _call_extract("data.zip"), {"data.zip": {
        **_pick(BASIC, "empty", "binary", "truncated"),
        "dotdot": (_zip_member("../evil.txt"), False), "absolute": (_zip_member("/tmp/evil.txt"), False),
        "drive": (_zip_member("C:/evil.txt"), False), "through_symlink": (_zip_through_symlink, False),
    }}),
    Reader("tar_archive", _make_archive_tar, _call_extract("data.tar"), {"data.tar": {
        **_pick(BASIC, "empty", "binary"),
        "truncated": (lambda p: p.write_bytes(p.read_bytes()[:600]), False),  # inside the member's data
        "dotdot": (_tar_member("../evil.txt"), False), "absolute": (_tar_member("/tmp/evil.txt"), False),
        "symlink": (_tar_member("link", tarfile.SYMTYPE, "/etc"), False),
        "hardlink": (_tar_member("link", tarfile.LNKTYPE, "../../etc/passwd"), False),
        "device": (_tar_member("dev", tarfile.CHRTYPE), False),
    }}),
]  # fmt: skip


def _variants() -> list[tuple[Reader, str, str]]:
    return [(r, target, name) for r in READERS for target, table in r.targets.items() for name in table]


VARIANTS = _variants()


def variant_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for reader, _, _ in VARIANTS:
        counts[reader.name] = counts.get(reader.name, 0) + 1
    return counts


def test_the_suite_has_at_least_250_variants_over_every_reader():
    assert len(VARIANTS) >= 250, variant_counts()
    assert len({r.name for r in READERS}) == len(READERS)


# ------------------------------------------------------------------------------------------- checks
def _outcome(reader: Reader, root: Path) -> tuple[str | None, Any]:
    """(error line or None, value); a CLI reader's output must be exactly one ``error:`` line with exit 2."""
    if reader.cli:
        result = reader.call(root)
        if result.exit_code == 0:
            return None, result
        assert result.exit_code == 2, f"exit {result.exit_code}: {result.output[-2000:]} {result.exception!r}"
        lines = result.output.strip().splitlines()
        assert "Traceback" not in result.output
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output[-3000:]
        return lines[0], result
    try:
        return None, reader.call(root)
    except ReproError as err:
        return str(err), err


@pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])
def test_valid_sample_reads(tmp_path, reader):
    if reader.name == "tu_dataset_cli":
        pytest.skip("would train DiffPool; tu_dataset reads the same valid sample through the reader API")
    reader.make(tmp_path)
    error, value = _outcome(reader, tmp_path)
    assert error is None, error


@pytest.mark.parametrize(
    ("reader", "target", "variant"), VARIANTS, ids=[f"{r.name}-{t}-{v}" for r, t, v in VARIANTS]
)
def test_malformed_variant_is_one_line_naming_the_file(tmp_path, reader, target, variant):
    reader.make(tmp_path)
    path = tmp_path / target
    mutate, names_line = reader.targets[target][variant]
    mutate(path)
    error, _ = _outcome(reader, tmp_path)
    assert error is not None, f"{target} ({variant}) was accepted"
    assert "\n" not in error and "Traceback" not in error
    assert (path.stem if variant == "missing" else path.name) in error, error
    if names_line:
        assert re.search(re.escape(path.name) + r":\d+", error), error
    if reader.run_dir is not None:
        run = tmp_path / reader.run_dir
        assert not (run / "results.json").exists()
        if reader.fresh_run:
            assert not run.exists(), sorted(p.name for p in run.iterdir())
    assert not (tmp_path.parent / "outside" / "escaped.txt").exists()
