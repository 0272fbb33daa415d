"""Data for missing-modality experiments: the generated two-modality world, the missing-case protocol, and
readers for the paper's real datasets (MM-IMDb, UPMC Food-101, Hateful Memes) in their owners' formats.

Generated world ("glyphs and words"): an image is a 16x16 RGB canvas cut into 4x4-pixel cells; each *glyph* type is
a fixed 4x4 binary pattern with a fixed colour, drawn into a random cell over Gaussian pixel noise. A text is
``[CLS] w_1 .. w_k [SEP]`` over a small vocabulary of *code words* and filler words, in random order. Labels are
functions of the glyphs and code words present, so that each modality carries part of the label information:

* single-label (accuracy, as Food-101): class y shows glyph ``max(y - 1, 0)`` and word ``min(y, C - 2)``.
  Classes 0 and 1 share a glyph (separable only by the text), classes C-2 and C-1 share a word (separable only by
  the image), every other pair differs in both modalities.
* multi-label (F1-macro, as MM-IMDb, 8 labels): label j is drawn as glyph j for j <= 6 and as word
  ``j - word_shift`` for j >= 1, so label 0 is visible only in the image, label 7 only in the text and labels 1-6
  in both. Default ``word_shift = 1`` (as the single task: the glyph and the word of one label are different
  codes); with ``word_shift = 0`` they are the pair glyph j <-> word j that the backbone's pretraining matches.
Each modality is also noisy: with probability ``noise`` a sample's code glyph/word is replaced by a random one.

Missing protocol (paper Sec. 4.1, official ``missing_table``): a missing rate eta is the fraction of samples with a
missing modality (eta = 70% means 70% of the samples miss one modality, 30% are complete). Missing type ``text``
or ``image`` removes that modality from all of them; ``both`` removes text from half and the image from the other
half. The table is drawn once per split from a seed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reprolab.core.errors import DataError
from reprolab.core.readers import load_json_capped, open_image_safe, read_text_utf8
from reprolab.missing_prompts.model import COMPLETE, IMAGE_MISSING, TEXT_MISSING

__all__ = [
    "MMIMDB_GENRES",
    "GlyphWordWorld",
    "PairData",
    "Record",
    "WordVocab",
    "apply_missing",
    "draw_missing_table",
    "load_missing_table",
    "read_food101",
    "read_hateful_memes",
    "read_mmimdb",
    "records_to_tensors",
    "save_missing_table",
]

PAD, CLS, SEP, MASK = 0, 1, 2, 3
MISSING_TYPES = ("text", "image", "both")


# ---------------------------------------------------------------------------------------------------------
# Tensors of one split
# ---------------------------------------------------------------------------------------------------------
@dataclass
class PairData:
    """One split: ``input_ids``/``text_mask`` (N, T), ``pixel_values`` (N, 3, S, S), ``labels`` (N,) long for
    single-label or (N, C) float for multi-label."""

    input_ids: torch.Tensor
    text_mask: torch.Tensor
    pixel_values: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def multi_label(self) -> bool:
        return self.labels.dim() == 2

    def subset(self, index: torch.Tensor) -> PairData:
        return PairData(self.input_ids[index], self.text_mask[index], self.pixel_values[index], self.labels[index])


def apply_missing(data: PairData, missing_type: torch.Tensor) -> PairData:
    """Replace missing modalities by the paper's dummy inputs: an empty text (``[CLS][SEP]``) for
    ``TEXT_MISSING`` and an all-ones image for ``IMAGE_MISSING`` (official code)."""
    if missing_type.shape != (len(data),):
        raise ValueError(f"missing_type must have shape ({len(data)},), got {tuple(missing_type.shape)}")
    ids, mask, pixels = data.input_ids.clone(), data.text_mask.clone(), data.pixel_values.clone()
    text_gone = missing_type == TEXT_MISSING
    ids[text_gone] = PAD
    ids[text_gone, 0], ids[text_gone, 1] = CLS, SEP
    mask[text_gone] = 0
    mask[text_gone, :2] = 1
    pixels[missing_type == IMAGE_MISSING] = 1.0
    return PairData(ids, mask, pixels, data.labels)


def draw_missing_table(n: int, rate: float, missing_type: str, generator: torch.Generator) -> torch.Tensor:
    """Per-sample missing case (0 complete, 1 text missing, 2 image missing) for one split.

    ``round(rate * n)`` samples chosen at random miss a modality; with ``both`` the first half of them (in the
    random order) miss the text and the rest miss the image (official ``both_ratio = 0.5``)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"missing rate must be in [0, 1], got {rate}")
    if missing_type not in MISSING_TYPES:
        raise ValueError(f"missing_type must be one of {MISSING_TYPES}, got {missing_type!r}")
    table = torch.full((n,), COMPLETE, dtype=torch.long)
    chosen = torch.randperm(n, generator=generator)[: round(rate * n)]
    if missing_type == "text":
        table[chosen] = TEXT_MISSING
    elif missing_type == "image":
        table[chosen] = IMAGE_MISSING
    else:
        half = len(chosen) // 2
        table[chosen[:half]] = TEXT_MISSING
        table[chosen[half:]] = IMAGE_MISSING
    return table


def save_missing_table(
    path: Path,
    table: torch.Tensor,
    *,
    rate: float,
    missing_type: str,
    seed: int,
    extra_draw_seeds: Sequence[int] = (),
) -> Path:
    """Write ``table`` as json with its rate, type and seed; ``extra_draw_seeds`` are the seeds of the further
    draws the test metric is averaged over (each reproduced by ``draw_missing_table`` with that seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, object] = {
        "rate": rate,
        "missing_type": missing_type,
        "seed": seed,
        "codes": "0 complete, 1 text missing, 2 image missing",
    }
    if extra_draw_seeds:
        payload["extra_draw_seeds"] = [int(s) for s in extra_draw_seeds]
    payload["table"] = [int(v) for v in table]
    path.write_text(json.dumps(payload))
    return path


def load_missing_table(path: Path) -> torch.Tensor:
    payload = load_json_capped(path)
    values = payload.get("table") if isinstance(payload, dict) else None
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise DataError(f"{path}: not a missing table (expected {{'table': [0|1|2, ...]}})")
    table = torch.tensor([v if 0 <= v <= 2 else -1 for v in values], dtype=torch.long)
    if table.numel() and (int(table.min()) < 0 or int(table.max()) > 2):
        raise DataError(f"{path}: table values must be 0, 1 or 2")
    return table


# ---------------------------------------------------------------------------------------------------------
# The generated world
# ---------------------------------------------------------------------------------------------------------
class GlyphWordWorld:
    """Generator of image-text pairs (see the module docstring). Glyph patterns, colours and the vocabulary are
    fixed by ``seed`` so that every run and the cached pretrained backbone share them."""

    def __init__(
        self,
        *,
        image_size: int = 16,
        cell: int = 4,
        n_codes: int = 8,
        n_distractors: int = 4,
        n_fillers: int = 12,
        text_len: int = 8,
        pixel_noise: float = 0.5,
        seed: int = 0,
    ) -> None:
        if image_size % cell:
            raise ValueError(f"image_size {image_size} must be a multiple of cell {cell}")
        self.image_size, self.cell = image_size, cell
        self.n_cells = (image_size // cell) ** 2
        self.n_codes, self.n_distractors, self.n_fillers = n_codes, n_distractors, n_fillers
        self.text_len, self.pixel_noise = text_len, pixel_noise
        g = torch.Generator().manual_seed(seed)
        n_glyphs = n_codes + n_distractors
        self.patterns = (torch.rand(n_glyphs, cell, cell, generator=g) < 0.5).float()
        self.colours = torch.rand(n_glyphs, 3, generator=g) * 2 - 1
        self.vocab_size = 4 + n_codes + n_fillers  # PAD, CLS, SEP, MASK, code words, fillers

    def code_word(self, j: int) -> int:
        return 4 + j

    def filler_ids(self) -> list[int]:
        """Token ids of the filler words (no code, no label information)."""
        return list(range(4 + self.n_codes, 4 + self.n_codes + self.n_fillers))

    @property
    def max_text_len(self) -> int:
        return self.text_len + 2

    def render(self, glyph_sets: Sequence[Sequence[int]], generator: torch.Generator) -> torch.Tensor:
        """Images (N, 3, S, S): each listed glyph in its own random cell, over N(0, pixel_noise^2) noise."""
        n, s, c = len(glyph_sets), self.image_size, self.cell
        images = torch.randn(n, 3, s, s, generator=generator) * self.pixel_noise
        per_row = s // c
        for i, glyphs in enumerate(glyph_sets):
            cells = torch.randperm(self.n_cells, generator=generator)[: len(glyphs)]
            for glyph, cell_index in zip(glyphs, cells.tolist()):
                r, col = divmod(cell_index, per_row)
                patch = self.colours[glyph][:, None, None] * self.patterns[glyph][None]
                images[i, :, r * c : (r + 1) * c, col * c : (col + 1) * c] += patch
        return images

    def write(
        self, word_sets: Sequence[Sequence[int]], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask (N, text_len + 2): ``[CLS]`` + code words and fillers in random order + ``[SEP]``."""
        n, length = len(word_sets), self.max_text_len
        ids = torch.zeros(n, length, dtype=torch.long)
        mask = torch.zeros(n, length, dtype=torch.long)
        for i, codes in enumerate(word_sets):
            n_fill = int(torch.randint(1, self.text_len - len(codes) + 1, (1,), generator=generator))
            fillers = (4 + self.n_codes + torch.randint(0, self.n_fillers, (n_fill,), generator=generator)).tolist()
            words = [self.code_word(j) for j in codes] + fillers
            order = torch.randperm(len(words), generator=generator).tolist()
            seq = [CLS] + [words[k] for k in order] + [SEP]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        return ids, mask

    def _distractor(self, generator: torch.Generator) -> list[int]:
        if self.n_distractors == 0 or torch.rand(1, generator=generator) < 0.5:
            return []
        return [self.n_codes + int(torch.randint(0, self.n_distractors, (1,), generator=generator))]

    def pretraining_pool(self, n: int, generator: torch.Generator) -> tuple[PairData, torch.Tensor]:
        """Matched pairs for pretraining: 1-3 random code glyphs drawn in the image and the same code words in
        the text (glyph j <-> word j). Returns the pairs and each pair's code set as a (N, n_codes) 0/1 matrix."""
        glyph_sets, word_sets = [], []
        codes = torch.zeros(n, self.n_codes)
        for i in range(n):
            k = int(torch.randint(1, 4, (1,), generator=generator))
            chosen = torch.randperm(self.n_codes, generator=generator)[:k].tolist()
            codes[i, chosen] = 1
            glyph_sets.append(chosen + self._distractor(generator))
            word_sets.append(chosen)
        ids, mask = self.write(word_sets, generator)
        return PairData(ids, mask, self.render(glyph_sets, generator), torch.zeros(n, dtype=torch.long)), codes

    def is_code_word(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= 4) & (ids < 4 + self.n_codes)

    def _noisy(self, code: int, n_choices: int, noise: float, generator: torch.Generator) -> int:
        if torch.rand(1, generator=generator) < noise:
            return int(torch.randint(0, n_choices, (1,), generator=generator))
        return code

    def single_label(self, n: int, n_classes: int, noise: float, generator: torch.Generator) -> PairData:
        """Single-label task: class y shows glyph ``max(y - 1, 0)`` and word ``min(y, C - 2)``."""
        if not 3 <= n_classes <= self.n_codes + 1:
            raise ValueError(f"n_classes must be in 3..{self.n_codes + 1}, got {n_classes}")
        labels = torch.randint(0, n_classes, (n,), generator=generator)
        glyph_sets, word_sets = [], []
        for y in labels.tolist():
            glyph_sets.append(
                [self._noisy(max(y - 1, 0), n_classes - 1, noise, generator)] + self._distractor(generator)
            )
            word_sets.append([self._noisy(min(y, n_classes - 2), n_classes - 1, noise, generator)])
        ids, mask = self.write(word_sets, generator)
        return PairData(ids, mask, self.render(glyph_sets, generator), labels)

    def multi_label(
        self, n: int, noise: float, generator: torch.Generator, p_label: float = 0.3, word_shift: int = 1
    ) -> PairData:
        """Multi-label task with 8 labels: label j shows glyph j (j <= 6) and word ``j - word_shift`` (j >= 1), so
        label 0 is image only, label 7 text only and labels 1-6 are in both modalities. Label noise replaces a shown
        glyph by a random one of glyphs 0-6 and a shown word by a random one of the 7 task words."""
        n_labels = 8
        if word_shift not in (0, 1):
            raise ValueError(f"word_shift must be 0 or 1, got {word_shift}")
        if self.n_codes < n_labels:
            raise ValueError(f"the multi-label task needs n_codes >= {n_labels}, got {self.n_codes}")
        labels = (torch.rand(n, n_labels, generator=generator) < p_label).float()
        empty = labels.sum(1) == 0
        labels[empty, torch.randint(0, n_labels, (int(empty.sum()),), generator=generator)] = 1.0
        glyph_sets, word_sets = [], []
        for row in labels:
            present = torch.nonzero(row).flatten().tolist()
            glyphs = [self._noisy(j, n_labels - 1, noise, generator) for j in present if j <= n_labels - 2]
            words = [1 - word_shift + self._noisy(j - 1, n_labels - 1, noise, generator) for j in present if j >= 1]
            glyph_sets.append(sorted(set(glyphs))[: self.n_cells] + self._distractor(generator))
            word_sets.append(sorted(set(words)))
        ids, mask = self.write(word_sets, generator)
        return PairData(ids, mask, self.render(glyph_sets, generator), labels)


# ---------------------------------------------------------------------------------------------------------
# Real datasets
# ---------------------------------------------------------------------------------------------------------
MMIMDB_GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror", "Documentary", "Mystery",
    "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History", "Music", "Animation", "Musical", "Western",
    "Sport", "Short", "Film-Noir",
)  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One real sample: image file, text, and a class index (single-label) or label indices (multi-label)."""

    image: Path
    text: str
    label: int | tuple[int, ...]


def _read_json(path: Path) -> object:
    return load_json_capped(path)


def read_mmimdb(root: str | Path, split: str) -> list[Record]:
    """MM-IMDb as distributed (Arevalo et al.): ``split.json`` ({"train"|"dev"|"test": [ids]}) and
    ``dataset/<id>.json`` (with ``genres`` and ``plot``, a list of plot strings) beside ``dataset/<id>.jpeg``.
    Labels are indices into the 23 genres of :data:`MMIMDB_GENRES`; text = the first plot (official code)."""
    root = Path(root)
    splits = _read_json(root / "split.json")
    if not isinstance(splits, dict) or split not in splits or not isinstance(splits[split], list):
        raise DataError(f"{root / 'split.json'}: expected an object with a list under {split!r}")
    index = {g: i for i, g in enumerate(MMIMDB_GENRES)}
    records = []
    for movie in splits[split]:
        meta_path = root / "dataset" / f"{movie}.json"
        meta = _read_json(meta_path)
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get("genres"), list)
            or not isinstance(meta.get("plot"), list)
        ):
            raise DataError(f"{meta_path}: expected an object with lists 'genres' and 'plot'")
        unknown = [g for g in meta["genres"] if g not in index]
        labels = tuple(sorted(index[g] for g in meta["genres"] if g in index))
        if not labels:
            raise DataError(f"{meta_path}: no known genre among {meta['genres']} (unknown: {unknown})")
        text = str(meta["plot"][0]) if meta["plot"] else ""
        records.append(Record(root / "dataset" / f"{movie}.jpeg", text, labels))
    return records


def read_food101(root: str | Path, split: str) -> tuple[list[Record], list[str]]:
    """UPMC Food-101 as distributed: ``images/<split>/<class>/<file>.jpg`` and ``texts/<split>_titles.csv`` with
    rows ``file,text,class`` (an optional header row is skipped). Returns the records and the class names (sorted
    folder names of ``images/train``)."""
    root = Path(root)
    class_dir = root / "images" / "train"
    if not class_dir.is_dir():
        raise DataError(f"{class_dir}: folder of class sub-folders not found")
    classes = sorted(p.name for p in class_dir.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    csv_path = root / "texts" / f"{split}_titles.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found")
    records = []
    text_in = io.StringIO(read_text_utf8(csv_path, what="CSV file"), newline="")
    try:
        for line_no, row in enumerate(csv.reader(text_in), start=1):
            if line_no == 1 and row and row[0].strip().lower() in ("image", "image_path", "file", "filename"):
                continue
            if len(row) != 3:
                raise DataError(f"{csv_path}:{line_no}: expected 3 fields (file,text,class), got {len(row)}")
            name, text, cls = (v.strip() for v in row)
            if cls not in index:
                raise DataError(f"{csv_path}:{line_no}: unknown class {cls!r} (no folder {class_dir / cls})")
            records.append(Record(root / "images" / split / cls / name, text, index[cls]))
    except csv.Error as err:
        raise DataError(f"{csv_path}: malformed CSV ({err})") from None
    if not records:
        raise DataError(f"{csv_path}: holds no rows")
    return records, classes


def read_hateful_memes(root: str | Path, split: str) -> list[Record]:
    """Hateful Memes as distributed: ``<split>.jsonl`` (e.g. ``train``, ``dev_seen``), one object per line with
    ``img`` (a path relative to the root, e.g. ``img/01235.png``), ``text`` and ``label`` (0/1)."""
    root = Path(root)
    path = root / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    records = []
    for line_no, line in enumerate(read_text_utf8(path, what="JSON-lines file").splitlines(), start=1):
        if not line.strip():
            continue
        item = load_json_capped(path, text=line, line=line_no)
        if not isinstance(item, dict) or not {"img", "text", "label"} <= set(item):
            raise DataError(f"{path}:{line_no}: expected keys img, text, label")
        if item["label"] not in (0, 1):
            raise DataError(f"{path}:{line_no}: label must be 0 or 1, got {item['label']!r}")
        records.append(Record(root / str(item["img"]), str(item["text"]), int(item["label"])))
    if not records:
        raise DataError(f"{path}: holds no samples")
    return records


class WordVocab:
    """Lower-case word vocabulary for real texts when no BERT tokenizer is given (``[PAD]``, ``[CLS]``, ``[SEP]``,
    ``[MASK]``, ``[UNK]`` first)."""

    def __init__(self, words: Sequence[str]) -> None:
        self.itos = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9']+", text.lower())

    @classmethod
    def build(cls, texts: Sequence[str], max_size: int = 5000) -> WordVocab:
        counts: dict[str, int] = {}
        for text in texts:
            for w in cls.split(text):
                counts[w] = counts.get(w, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[:max_size]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        body = [self.stoi.get(w, 4) for w in self.split(text)][: max_len - 2]
        return [CLS, *body, SEP]


def records_to_tensors(
    records: Sequence[Record],
    encode: Callable[[str, int], list[int]],
    *,
    image_size: int,
    max_text_len: int,
    n_labels: int,
    multi_label: bool,
) -> PairData:
    """Load images (RGB, resized to ``image_size``, scaled to [-1, 1]) and encode texts into a :class:`PairData`."""
    n = len(records)
    ids = torch.zeros(n, max_text_len, dtype=torch.long)
    mask = torch.zeros(n, max_text_len, dtype=torch.long)
    pixels = torch.zeros(n, 3, image_size, image_size)
    labels = torch.zeros(n, n_labels) if multi_label else torch.zeros(n, dtype=torch.long)
    for i, rec in enumerate(records):
        arr = open_image_safe(rec.image, "RGB").resize((image_size, image_size))
        pixels[i] = (
            torch.frombuffer(bytearray(arr.tobytes()), dtype=torch.uint8)
            .view(image_size, image_size, 3)
            .permute(2, 0, 1)
            / 127.5
            - 1
        )
        seq = encode(rec.text, max_text_len)[:max_text_len]
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
        if multi_label:
            labels[i, list(rec.label)] = 1.0  # type: ignore[arg-type]
        else:
            labels[i] = int(rec.label)  # type: ignore[arg-type]
    return PairData(ids, mask, pixels, labels)
