"""Data for RAS: a generated salient-object set (the embedded default) and a reader for the usual
saliency layout (a folder of images and a folder of binary masks with matching names: DUTS, ECSSD,
MSRA-B, HKU-IS, DUT-OMRON).

Generated scenes: a textured, cluttered background (smooth colour field, noise, many small blobs and
lines), one to three *salient* objects (large, saturated colour that contrasts with the background,
optionally striped) and *distractors* (objects of similar size but with colours close to the local
background, and small high-contrast specks). The mask holds the salient objects only, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reprolab.core.errors import DataError
from reprolab.core.readers import open_image_safe

__all__ = [
    "CAFFE_BGR_MEAN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SCENE_STYLES",
    "SaliencySet",
    "generate_scenes",
    "normalize",
    "folder_names",
    "read_saliency_folder",
    "split_names",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (104.00699, 116.66877, 122.67892)  # train.prototxt mean_value, B, G, R
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".gif")


@dataclass
class SaliencySet:
    """Images (N x 3 x H x W, float in [0, 1]) with binary masks (N x 1 x H x W, {0, 1}) and names."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    resized_masks: list[str] = field(default_factory=list)  # stems whose mask was resized to its image

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be N x 3 x H x W, got {tuple(self.images.shape)}")
        if self.masks.shape != (self.images.shape[0], 1, *self.images.shape[2:]):
            raise ValueError(f"masks must be N x 1 x H x W matching images, got {tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: torch.Tensor | slice) -> SaliencySet:
        names = self.names[index] if isinstance(index, slice) else [self.names[int(i)] for i in index]
        return SaliencySet(self.images[index], self.masks[index], names)


def normalize(images: torch.Tensor, mode: str = "imagenet") -> torch.Tensor:
    """Input normalisation of RGB images in [0, 1].

    ``imagenet``: mean/std (what torchvision-format VGG-16 weights expect). ``bgr_mean``: the ECCV Caffe
    data layer (``train.prototxt``): channels in BGR order on the 0-255 scale with the mean
    (104.00699, 116.66877, 122.67892) subtracted and no division (what Caffe's VGG-16 weights expect).
    """
    if mode == "bgr_mean":
        mean = torch.tensor(CAFFE_BGR_MEAN, device=images.device).view(1, 3, 1, 1)
        return images.flip(1) * 255.0 - mean
    if mode != "imagenet":
        raise ValueError(f"unknown input normalisation {mode!r}")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


# --------------------------------------------------------------------------------------------- generated
@lru_cache(maxsize=8)
def _grid(size: int, kind: str) -> np.ndarray:
    """The pixel grid ``(yy, xx)`` (2 x size x size) the scene drawing uses, built once per size instead of per
    shape: ``"index"`` = ``np.mgrid`` (integers), ``"centre"`` = pixel centres (+0.5, float64), ``"unit"`` =
    ``np.mgrid / size``. Read-only: callers compute new arrays from it."""
    grid = np.mgrid[0:size, 0:size]
    if kind == "centre":
        grid = grid.astype(np.float64) + 0.5
    elif kind == "unit":
        grid = grid / size
    grid.setflags(write=False)
    return grid


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _shape_mask(
    rng: np.random.Generator, size: int, radius: float, cy: float, cx: float, kind: int | None = None
) -> np.ndarray:
    """A random ellipse (kind 0), rectangle (1) or star-ish blob (2) of about ``radius`` pixels at (cy, cx).

    ``kind=None`` draws the kind at random; the random stream is the same either way."""
    yy, xx = _grid(size, "centre")
    angle = rng.uniform(0, math.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    aspect = rng.uniform(0.55, 1.0)
    drawn = int(rng.integers(3))
    kind = drawn if kind is None else kind
    if kind == 0:  # ellipse
        return (u / radius) ** 2 + (v / (radius * aspect)) ** 2 <= 1.0
    if kind == 1:  # rectangle
        return (np.abs(u) <= radius) & (np.abs(v) <= radius * aspect)
    lobes = int(rng.integers(3, 7))  # wobbly blob: radius varies with the polar angle
    theta = np.arctan2(v, u)
    r = radius * (0.75 + 0.25 * np.cos(lobes * theta + rng.uniform(0, 2 * math.pi)))
    return np.hypot(u, v / aspect) <= r


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = _grid(size, "unit")
    base = _hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.75))
    other = _hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.75))
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(direction) * xx + np.sin(direction) * yy + 1.0) / 2.0
    image = base[None, None] * (1 - ramp[..., None]) + other[None, None] * ramp[..., None]
    coarse = rng.normal(0, 0.06, (3, max(2, size // 8), max(2, size // 8)))
    noise = F.interpolate(torch.from_numpy(coarse)[None], size=(size, size), mode="bilinear", align_corners=False)
    image = image + noise[0].permute(1, 2, 0).numpy() + rng.normal(0, 0.03, image.shape)
    for _ in range(int(rng.integers(8, 16))):  # clutter: small low-contrast blobs
        cy, cx = rng.uniform(0, size, 2)
        blob = _shape_mask(rng, size, rng.uniform(0.03, 0.08) * size, cy, cx)
        image[blob] = image[blob] * 0.6 + 0.4 * _hsv_to_rgb(
            rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8)
        )
    for _ in range(int(rng.integers(2, 5))):  # clutter: thin lines
        row = int(rng.integers(size))
        if rng.uniform() < 0.5:
            image[row : row + 1] = image[row : row + 1] * 0.7 + 0.3 * rng.uniform(0.2, 0.8)
        else:
            image[:, row : row + 1] = image[:, row : row + 1] * 0.7 + 0.3 * rng.uniform(0.2, 0.8)
    return image


def _salient_colour(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """A saturated colour far (> 0.45 in RGB) from the background mean."""
    for _ in range(50):
        colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
        if np.linalg.norm(colour - background_mean) > 0.45:
            return colour
    return 1.0 - background_mean


def _fine_parts(
    rng: np.random.Generator, shape: np.ndarray, size: int, radius: float, cy: float, cx: float
) -> np.ndarray:
    """``shape`` with fine structure a coarse map cannot resolve (``style="fine"``): 2-5 thin legs
    (1.5-3.5% of the image wide) reaching 0.6-1.1 radii beyond the body, and with probability 0.5 a hole
    (an ellipse of 0.3-0.45 radii inside the body that shows the background)."""
    yy, xx = _grid(size, "centre")
    out = shape.copy()
    for _ in range(int(rng.integers(2, 6))):
        angle = rng.uniform(0, 2 * math.pi)
        length = radius * rng.uniform(1.6, 2.1)
        half_width = max(0.75, rng.uniform(0.0075, 0.0175) * size)
        along = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        across = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        out |= (along >= 0) & (along <= length) & (np.abs(across) <= half_width)
    if rng.uniform() < 0.5:
        hole_r = radius * rng.uniform(0.3, 0.45)
        hy, hx = cy + rng.uniform(-0.2, 0.2) * radius, cx + rng.uniform(-0.2, 0.2) * radius
        out &= ~((yy - hy) ** 2 + ((xx - hx) * rng.uniform(0.7, 1.0)) ** 2 <= hole_r**2)
    return out


def _scene(
    rng: np.random.Generator, size: int, fine: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One scene and its mask. ``fine``: a second random stream that adds thin legs and holes to the
    salient objects (``style="fine"``)."""
    image = _background(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    yy, xx = _grid(size, "index")
    for _ in range(int(rng.integers(1, 4)) if rng.uniform() < 0.6 else 1):  # distractors first
        radius = rng.uniform(0.1, 0.2) * size
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        shape = _shape_mask(rng, size, radius, cy, cx)
        local = image[shape].mean(axis=0) if shape.any() else image.mean(axis=(0, 1))
        image[shape] = np.clip(local + rng.normal(0, 0.08, 3), 0, 1) + rng.normal(0, 0.02, (int(shape.sum()), 3))
    n_salient = 1 if rng.uniform() < 0.6 else int(rng.integers(2, 4))
    for _ in range(n_salient):
        radius = rng.uniform(0.12, 0.24) * size / math.sqrt(n_salient) * 1.3
        cy, cx = rng.uniform(0.25, 0.75, 2) * size
        shape = _shape_mask(rng, size, radius, cy, cx)
        if fine is not None:
            shape = _fine_parts(fine, shape, size, radius, cy, cx)
        colour = _salient_colour(rng, image.mean(axis=(0, 1)))
        fill = np.broadcast_to(colour, (size, size, 3)).copy()
        if rng.uniform() < 0.35:  # striped texture inside the object
            period = rng.uniform(3, 7)
            stripes = (np.sin((xx * math.cos(cy) + yy * math.sin(cy)) * 2 * math.pi / period) > 0)[..., None]
            fill = np.where(stripes, fill, fill * 0.55)
        image[shape] = fill[shape] + rng.normal(0, 0.03, (int(shape.sum()), 3))
        mask |= shape
    for _ in range(int(rng.integers(3, 8))):  # small high-contrast specks: not salient
        cy, cx = rng.uniform(0, size, 2)
        speck = (yy - cy) ** 2 + (xx - cx) ** 2 <= (rng.uniform(0.01, 0.025) * size) ** 2
        speck &= ~mask
        image[speck] = _hsv_to_rgb(rng.uniform(), 1.0, 1.0)
    return np.clip(image, 0.0, 1.0), mask


SCENE_STYLES = ("blobs", "fine")


def generate_scenes(count: int, size: int, seed: int, style: str = "blobs") -> SaliencySet:
    """``count`` generated scenes of ``size`` x ``size`` pixels (deterministic in ``seed``).

    ``style="blobs"``: compact salient objects; ``"fine"``: the same scenes, with thin legs and holes
    added to the salient objects (fine boundaries for the side outputs to recover)."""
    if count < 1 or size < 16:
        raise ValueError(f"need count >= 1 and size >= 16, got count={count}, size={size}")
    if style not in SCENE_STYLES:
        raise ValueError(f"style must be one of {', '.join(SCENE_STYLES)}, got {style!r}")
    rng = np.random.default_rng(seed)
    fine = np.random.default_rng([seed, 1]) if style == "fine" else None
    images, masks = [], []
    for _ in range(count):
        image, mask = _scene(rng, size, fine)
        images.append(image.transpose(2, 0, 1))
        masks.append(mask[None])
    return SaliencySet(
        torch.from_numpy(np.stack(images)).float(),
        torch.from_numpy(np.stack(masks)).float(),
        [f"scene_{i:05d}" for i in range(count)],
    )


# --------------------------------------------------------------------------------------------- reader
def _index(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            if path.stem in files:
                raise DataError(f"{path}: two {what} files share the name {path.stem!r} ({files[path.stem].name})")
            files[path.stem] = path
    if not files:
        raise DataError(f"{folder}: no {what} files ({', '.join(suffixes)})")
    return files


def _open(path: Path, mode: str) -> np.ndarray:
    return np.asarray(open_image_safe(path, mode))


def _resize(array: torch.Tensor, size: int | None, mode: str) -> torch.Tensor:
    if size is None:
        return array
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(array[None], size=(size, size), mode=mode, **kwargs)[0]


def read_saliency_folder(
    image_dir: str | Path,
    mask_dir: str | Path,
    *,
    size: int | None = None,
    limit: int | None = None,
    threshold: int = 128,
    names: list[str] | None = None,
) -> SaliencySet:
    """Read an image folder and a mask folder whose files match by name (stem).

    Masks are grey-level images binarised at ``threshold`` (>=); a mask whose only values are 0 and 1
    (masks saved as class indices rather than 0/255) is read as 0/1. A mask whose size differs from its image
    is resized to the image (nearest neighbour; counted in ``SaliencySet.resized_masks``). With ``size``, images
    are resized bilinearly and masks by nearest neighbour to ``size`` x ``size``; without it all pairs must share
    one size. ``names`` restricts the read to those stems (a split). Raises :class:`DataError` listing every
    unmatched name, or every file that cannot be decoded, at once.
    """
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    images = _index(image_dir, IMAGE_SUFFIXES, "image")
    masks = _index(mask_dir, MASK_SUFFIXES, "mask")
    only_images = sorted(set(images) - set(masks))
    only_masks = sorted(set(masks) - set(images))
    if only_images or only_masks:
        parts = []
        if only_images:
            listed = ", ".join(images[n].name for n in only_images)
            parts.append(f"{len(only_images)} image(s) without a mask in {mask_dir}: {listed}")
        if only_masks:
            listed = ", ".join(masks[n].name for n in only_masks)
            parts.append(f"{len(only_masks)} mask(s) without an image in {image_dir}: {listed}")
        raise DataError("; ".join(parts))
    if names is not None:
        unknown = sorted(set(names) - set(images))
        if unknown:
            raise DataError(f"{image_dir}: {len(unknown)} listed name(s) not found: {', '.join(unknown)}")
        chosen = sorted(set(names))
    else:
        chosen = sorted(images)
    chosen = chosen[:limit] if limit else chosen
    image_list, mask_list, resized, unreadable = [], [], [], []
    for name in chosen:
        try:
            image = _open(images[name], "RGB")
            mask = _open(masks[name], "L")
        except DataError as err:
            unreadable.append(str(err))
            continue
        image_t = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0
        cut = 1 if mask.max() == 1 else threshold  # 0/1-coded mask: every 1 is salient
        mask_t = torch.from_numpy((mask >= cut).astype(np.float32))[None]
        if image.shape[:2] != mask.shape[:2]:  # e.g. masks saved at another scale: bring them to their image
            mask_t = F.interpolate(mask_t[None], size=image.shape[:2], mode="nearest")[0]
            resized.append(name)
        image_list.append(_resize(image_t, size, "bilinear").clamp(0, 1))
        mask_list.append(_resize(mask_t, size, "nearest"))
    if unreadable:
        raise DataError(f"{len(unreadable)} unreadable file(s): " + "; ".join(unreadable))
    shapes = {tuple(t.shape) for t in image_list}
    if len(shapes) > 1:
        raise DataError(f"{image_dir}: images differ in size ({sorted(shapes)[:3]}); pass size= to resize them")
    return SaliencySet(torch.stack(image_list), torch.stack(mask_list), chosen, resized)


def folder_names(image_dir: str | Path) -> list[str]:
    """The stems of the image files in ``image_dir`` (sorted)."""
    return sorted(_index(Path(image_dir), IMAGE_SUFFIXES, "image"))


def split_names(names: list[str], split: str) -> tuple[list[str], list[str]]:
    """(train, test) stems: ``split`` is a test ratio in (0, 1) (a fixed shuffle with seed 0, so every run seed
    sees the same split) or a text file listing the test stems, one per line (file names are reduced to stems)."""
    try:
        ratio: float | None = float(split)
    except ValueError:
        ratio = None
    if ratio is None:
        path = Path(split)
        try:
            listed = [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]
        except OSError as err:
            raise DataError(f"{path}: unreadable split list ({err})") from err
        unknown = sorted(set(listed) - set(names))
        if unknown:
            raise DataError(f"{path}: {len(unknown)} listed name(s) have no image: {', '.join(unknown)}")
        test = sorted(set(listed))
    else:
        order = np.random.default_rng(0).permutation(len(names))
        count = max(1, round(ratio * len(names)))
        test = sorted(names[i] for i in order[:count])
    train = [n for n in names if n not in set(test)]
    if not train or not test:
        raise DataError(f"split {split!r}: leaves {len(train)} training and {len(test)} test pairs; both must be > 0")
    return train, test
