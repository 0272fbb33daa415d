"""Data for CoOp/CoCoOp: a procedural shapes world (images + captions), a word tokenizer, CoOp split files.

The embedded default replaces CLIP's web data and the 11 benchmark datasets (paper Sec. 4): images of a
coloured shape on a background, captions naming colour, shape, size and background. A *class* is a
(colour, shape) pair; base-to-new generalisation (paper Sec. 4.1) splits these pairs into two halves.
A second domain (striped backgrounds) gives the shifted distribution of the domain-generalisation setting.
``ShapesWorld.miscaption`` makes the pretraining captions of some classes name another class (systematic,
class-specific caption errors, as for the poorly grounded class names of real CLIP on EuroSAT or DTD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reprolab.core.errors import DataError
from reprolab.core.readers import load_json_capped, open_image_safe

__all__ = [
    "COLOURS",
    "SHAPES",
    "ShapesWorld",
    "WordTokenizer",
    "base_new_split",
    "load_image_folder",
    "read_split_json",
]

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.15, 0.8),
    "cyan": (0.1, 0.85, 0.9),
    "orange": (1.0, 0.55, 0.05),
    "pink": (1.0, 0.5, 0.75),
}
SHAPES = ("square", "circle", "triangle", "cross", "ring", "bar")
SIZES = ("small", "large")
BACKGROUNDS = ("dark", "striped", "light")
TEMPLATES = (
    "a photo of a {size} {colour} {shape}",
    "a {colour} {shape}",
    "a {size} {colour} {shape} on a {bg} background",
    "an image of the {colour} {shape}",
    "{colour} {shape}",
    "a picture of a {colour} {shape} on a {bg} background",
)
_EXTRA_WORDS = ("a", "an", "the", "photo", "image", "picture", "of", "on", "background", "shape", "object")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class WordTokenizer:
    """A whitespace tokenizer over a fixed vocabulary; ids 0..3 are pad, bos, unk, eos.

    The eos id is deliberately not 2, so that ``transformers`` pools at the first eos token (the text
    encoder's end-of-text pooling) instead of the legacy arg-max rule.
    """

    pad_id, bos_id, unk_id, eos_id = 0, 1, 2, 3

    def __init__(self, words: Sequence[str]) -> None:
        self.vocab = ["<pad>", "<bos>", "<unk>", "<eos>", *dict.fromkeys(words)]
        self.index = {word: i for i, word in enumerate(self.vocab)}

    @classmethod
    def for_shapes(cls) -> WordTokenizer:
        return cls([*_EXTRA_WORDS, *COLOURS, *SHAPES, *SIZES, *BACKGROUNDS])

    def encode(self, text: str) -> list[int]:
        """Word ids without bos/eos; unknown words map to ``unk``."""
        return [self.index.get(word, self.unk_id) for word in text.lower().replace(".", " ").split()]

    def batch(self, texts: Sequence[str], length: int | None = None) -> torch.Tensor:
        """``[bos] words [eos] pad...`` for every text, as one (len(texts), length) tensor."""
        rows = [[self.bos_id, *self.encode(t), self.eos_id] for t in texts]
        length = length or max(len(r) for r in rows)
        if any(len(r) > length for r in rows):
            raise DataError(f"a text is longer than {length} tokens: {max(rows, key=len)}")
        return torch.tensor([r + [self.pad_id] * (length - len(r)) for r in rows], dtype=torch.long)


@dataclass(frozen=True)
class ShapesWorld:
    """Renders ``size x size`` RGB images of one coloured shape; classes are (colour, shape) pairs."""

    size: int = 16
    n_colours: int = 6
    n_shapes: int = 4
    noise: float = 0.08
    miscaption: float = 0.0  # probability that a mis-captioned class's caption names its partner class

    @property
    def colours(self) -> list[str]:
        return list(COLOURS)[: self.n_colours]

    @property
    def shapes(self) -> list[str]:
        return list(SHAPES[: self.n_shapes])

    @property
    def classnames(self) -> list[str]:
        return [f"{c} {s}" for c in self.colours for s in self.shapes]

    def class_attributes(self, label: int) -> tuple[int, int]:
        return divmod(label, self.n_shapes)

    def miscaption_partners(self) -> dict[int, int]:
        """Class-specific caption errors of the pretraining data: label -> the class its captions name instead.

        Within one colour, the shapes of one half of the checkerboard split (:func:`base_new_split`) are paired
        (1st with 2nd, 3rd with 4th, ...) and the pair's names are swapped. The base half has swapped pairs
        for the first ``n_colours // 2`` colours, the new half for the last ``n_colours // 2``, so both halves
        hold mis-captioned classes but no colour has them in both halves (a correction learned on base classes
        does not carry over to new ones). Empty when ``miscaption`` is 0.
        """
        if self.miscaption <= 0:
            return {}
        k = self.n_colours // 2
        partners: dict[int, int] = {}
        for c in range(self.n_colours):
            for parity, swapped in ((0, c < k), (1, c >= self.n_colours - k)):  # 0 = base half, 1 = new half
                if not swapped:
                    continue
                shapes = [s for s in range(self.n_shapes) if (c + s) % 2 == parity]
                for a, b in zip(shapes[0::2], shapes[1::2]):
                    partners[c * self.n_shapes + a] = c * self.n_shapes + b
                    partners[c * self.n_shapes + b] = c * self.n_shapes + a
        return partners

    def render(
        self, labels: torch.Tensor, generator: torch.Generator, background: str = "dark"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 3, size, size), CLIP-normalised, and the drawn size index (0 small, 1 large)."""
        n, s = labels.shape[0], self.size
        colour_idx, shape_idx = labels // self.n_shapes, labels % self.n_shapes
        big = torch.randint(0, 2, (n,), generator=generator)
        radius = torch.where(big.bool(), 0.36, 0.22) * s * (0.9 + 0.2 * torch.rand(n, generator=generator))
        margin = radius + 0.5
        centre = margin[:, None] + torch.rand(n, 2, generator=generator) * (s - 1 - 2 * margin)[:, None]
        grid = torch.arange(s, dtype=torch.float32)
        dy = grid[None, :, None] - centre[:, 1, None, None]
        dx = grid[None, None, :] - centre[:, 0, None, None]
        mask = _shape_mask(shape_idx, dx, dy, radius[:, None, None])
        rgb = torch.tensor([COLOURS[c] for c in self.colours])[colour_idx]
        rgb = (rgb + 0.08 * torch.randn(n, 3, generator=generator)).clamp(0, 1)
        bg = _background(background, n, s, generator)
        img = torch.where(mask[:, None], rgb[:, :, None, None], bg)
        img = (img + self.noise * torch.randn(img.shape, generator=generator)).clamp(0, 1)
        return normalise(img), big

    def captions(
        self, labels: torch.Tensor, big: torch.Tensor, background: str, generator: torch.Generator
    ) -> list[str]:
        """One caption per image from a random template (the pretraining text of the mini CLIP). With
        ``miscaption`` > 0, a mis-captioned class (:meth:`miscaption_partners`) is named as its partner class
        with that probability: a systematic, class-specific error of the captions, not of the images."""
        picks = torch.randint(0, len(TEMPLATES), (labels.shape[0],), generator=generator).tolist()
        named = labels.tolist()
        partners = self.miscaption_partners()
        if partners:
            flip = (torch.rand(labels.shape[0], generator=generator) < self.miscaption).tolist()
            named = [partners.get(lab, lab) if f else lab for lab, f in zip(named, flip)]
        out = []
        for label, b, t in zip(named, big.tolist(), picks):
            c, sh = self.class_attributes(label)
            out.append(TEMPLATES[t].format(size=SIZES[b], colour=self.colours[c], shape=self.shapes[sh], bg=background))
        return out


def _shape_mask(shape_idx: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    dist = (dx**2 + dy**2).sqrt()
    masks = torch.stack(
        [
            (dx.abs() <= 0.8 * r) & (dy.abs() <= 0.8 * r),  # square
            dist <= r,  # circle
            (dy.abs() <= r) & (dx.abs() <= (dy + r) / 2),  # triangle
            ((dx.abs() <= r / 3) & (dy.abs() <= r)) | ((dy.abs() <= r / 3) & (dx.abs() <= r)),  # cross
            (dist <= r) & (dist >= 0.55 * r),  # ring
            (dx.abs() <= r) & (dy.abs() <= r / 3.5),  # bar
        ]
    )
    return masks[shape_idx, torch.arange(shape_idx.shape[0])]


def _background(kind: str, n: int, s: int, generator: torch.Generator) -> torch.Tensor:
    if kind == "dark":
        level = 0.05 + 0.2 * torch.rand(n, 1, 1, 1, generator=generator)
        return level.expand(n, 3, s, s).clone()
    if kind == "light":
        level = 0.7 + 0.2 * torch.rand(n, 1, 1, 1, generator=generator)
        return level.expand(n, 3, s, s).clone()
    if kind == "striped":
        period = torch.randint(2, 5, (n, 1, 1), generator=generator)
        phase = torch.randint(0, 4, (n, 1, 1), generator=generator)
        rows = torch.arange(s)[None, :, None] + torch.arange(s)[None, None, :]
        stripe = ((rows + phase) // period % 2).float()
        return (0.15 + 0.45 * stripe)[:, None].expand(n, 3, s, s).clone()
    raise DataError(f"background {kind!r} is not one of {', '.join(BACKGROUNDS)}")


def normalise(img: torch.Tensor) -> torch.Tensor:
    """CLIP's per-channel mean/std normalisation of images in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    return (img - mean) / std


def base_new_split(world: ShapesWorld) -> tuple[list[int], list[int]]:
    """Checkerboard split of the (colour, shape) grid: every colour and shape occurs in both halves,
    but no new (colour, shape) pair is ever seen during prompt learning."""
    base, new = [], []
    for label in range(len(world.classnames)):
        c, s = world.class_attributes(label)
        (base if (c + s) % 2 == 0 else new).append(label)
    return base, new


def read_split_json(path: str | Path) -> dict[str, list[tuple[str, int, str]]]:
    """Read CoOp's ``split_zhou_<Dataset>.json``: ``{"train"|"val"|"test": [[impath, label, classname], ...]}``."""
    path = Path(path)
    raw = load_json_capped(path)
    if not isinstance(raw, dict) or not {"train", "test"} <= set(raw):
        raise DataError(f"{path}: expected an object with 'train', 'val' and 'test' lists")
    out: dict[str, list[tuple[str, int, str]]] = {}
    for split, items in raw.items():
        if not isinstance(items, list):
            raise DataError(f"{path}: '{split}' must be a list of [impath, label, classname]")
        rows = []
        for i, item in enumerate(items):
            ok = isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], int)
            if not ok or not isinstance(item[2], str) or item[1] < 0:
                raise DataError(f"{path}: {split}[{i}]: expected [impath, label>=0, classname], got {item!r}")
            rows.append((item[0], item[1], item[2]))
        out[split] = rows
    return out


def load_image_folder(root: str | Path, items: Sequence[tuple[str, int, str]], size: int) -> torch.Tensor:
    """Load ``items`` (paths relative to ``root``), centre-crop, resize to ``size`` and CLIP-normalise."""
    from PIL import Image

    tensors = []
    for impath, _, _ in items:
        file = Path(root) / impath
        im = open_image_safe(file, "RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        tensors.append(data.view(size, size, 3).permute(2, 0, 1).float() / 255.0)
    return normalise(torch.stack(tensors))
