"""Local ``train/valid/test.txt`` triple readers (tab-separated labels) into PyKEEN ``TriplesFactory``.

No download ever happens: the embedded Nations/Kinships/UMLS files are read from inside the installed
PyKEEN wheel; any other folder (WN18RR, WN18, FB15k, ``kg_small/<name>``) is read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reprolab.core.errors import DataError, DatasetMissingError
from reprolab.core.readers import read_text_utf8

if TYPE_CHECKING:
    from pykeen.triples import TriplesFactory

__all__ = ["EMBEDDED", "KGSplits", "embedded_folder", "load_splits", "read_triples"]

EMBEDDED = ("nations", "kinships", "umls")
SPLITS = ("train", "valid", "test")


def read_triples(path: str | Path) -> np.ndarray:
    """Read ``head<TAB>relation<TAB>tail`` lines into an ``(n, 3)`` string array.

    Blank lines are skipped; any other line without exactly three non-empty tab-separated fields is a
    :class:`DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"{path}: triple file not found (expected head<TAB>relation<TAB>tail lines)")
    rows: list[tuple[str, str, str]] = []
    for number, line in enumerate(read_text_utf8(path, what="triple file").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or any(not f.strip() for f in fields):
            raise DataError(
                f"{path}:{number}: expected 3 non-empty tab-separated fields (head, relation, tail), "
                f"got {len(fields)}: {line[:80]!r}"
            )
        rows.append((fields[0].strip(), fields[1].strip(), fields[2].strip()))
    if not rows:
        raise DataError(f"{path}:1: file holds no triples")
    return np.asarray(rows, dtype=str)


@dataclass
class KGSplits:
    """Train/valid/test factories sharing one entity and relation vocabulary."""

    name: str
    training: TriplesFactory
    validation: TriplesFactory
    testing: TriplesFactory


def embedded_folder(name: str) -> Path:
    """Folder inside the PyKEEN wheel that holds the embedded dataset ``name``."""
    import pykeen.datasets

    key = name.lower()
    if key not in EMBEDDED:
        raise DatasetMissingError(f"{name!r} is not embedded; embedded datasets: {', '.join(EMBEDDED)}")
    return Path(pykeen.datasets.__file__).parent / key


def _split_file(folder: Path, split: str) -> Path:
    candidates = [folder / f"{split}.txt"]
    if split == "valid":
        candidates.append(folder / "validate.txt")  # PyKEEN's own file name
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetMissingError(f"{folder}: missing {split}.txt (expected train.txt, valid.txt, test.txt)")


def load_splits(source: str | Path) -> KGSplits:
    """Read an embedded dataset name or a folder with ``train/valid/test.txt`` into ``KGSplits``.

    The vocabulary covers all three splits (as in the WN18/FB15k ``entity2id`` files), so test triples
    whose entities never occur in training still get an id; they keep their randomly initialised vectors.
    """
    from pykeen.triples import TriplesFactory

    text = str(source)
    folder = embedded_folder(text) if text.lower() in EMBEDDED and not Path(text).is_dir() else Path(text)
    if not folder.is_dir():
        raise DatasetMissingError(f"{folder}: dataset folder not found (expected train.txt, valid.txt, test.txt)")
    arrays = {split: read_triples(_split_file(folder, split)) for split in SPLITS}
    everything = np.concatenate(list(arrays.values()))
    entity_to_id = {e: i for i, e in enumerate(sorted(set(everything[:, 0]) | set(everything[:, 2])))}
    relation_to_id = {r: i for i, r in enumerate(sorted(set(everything[:, 1])))}

    def factory(split: str) -> TriplesFactory:
        return TriplesFactory.from_labeled_triples(
            arrays[split], entity_to_id=entity_to_id, relation_to_id=relation_to_id, create_inverse_triples=False
        )

    return KGSplits(folder.name, factory("train"), factory("valid"), factory("test"))
