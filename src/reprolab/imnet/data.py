"""Shapes for IM-NET: procedural primitive-built categories, voxels, point-value samples, HDF5 and binvox I/O.

Coordinates live in the unit cube ``[-0.5, 0.5]^3`` with ``y`` up. A voxel grid ``vox[i, j, k]`` of resolution
``R`` holds the occupancy of the cell centred at ``((i, j, k) + 0.5) / R - 0.5``.

Point-value pairs follow the paper's Sec. 3.1 / official sampling: at resolution ``r`` every cell is a point
with value 1 (inside) or 0 (outside); points are drawn near the surface first (cells whose 3x3x3
neighbourhood holds both values), then uniformly from the rest. The HDF5 layout is the official one:
``voxels`` (N, 64, 64, 64, 1) and ``points_{r}`` (N, M, 3) integer coordinates on a 256^3 grid with
``values_{r}`` (N, M, 1); a point ``p`` maps to ``(p + 0.5) / 256 - 0.5``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprolab.core.errors import DataError
from reprolab.core.readers import check_finite

__all__ = [
    "CATEGORIES",
    "PointValueSet",
    "Primitive",
    "ShapeSet",
    "cell_centres",
    "downsample_max",
    "make_shape",
    "make_shape_set",
    "occupancy",
    "points_from_grid256",
    "read_binvox",
    "read_imnet_hdf5",
    "sample_point_values",
    "voxelize",
    "write_binvox",
    "write_imnet_hdf5",
]

CATEGORIES = ("chair", "table", "lamp", "airplane")
GRID256 = 256


@dataclass(frozen=True)
class Primitive:
    """A solid primitive: ``box`` (centre, half sizes), ``cylinder`` (centre, radius, half height, axis),
    ``cone`` (centre, bottom radius, top radius, half height; y axis) or ``ellipsoid`` (centre, radii)."""

    kind: str
    centre: tuple[float, float, float]
    size: tuple[float, ...]
    axis: int = 1

    def contains(self, pts: np.ndarray) -> np.ndarray:
        d = pts - np.asarray(self.centre, dtype=pts.dtype)
        if self.kind == "box":
            return np.all(np.abs(d) <= np.asarray(self.size, dtype=pts.dtype), axis=1)
        if self.kind == "ellipsoid":
            return np.sum((d / np.asarray(self.size, dtype=pts.dtype)) ** 2, axis=1) <= 1.0
        if self.kind in ("cylinder", "cone"):
            a = self.axis
            radial = np.delete(d, a, axis=1)
            r2 = np.sum(radial**2, axis=1)
            half = self.size[-1]
            if self.kind == "cylinder":
                radius = np.full(len(pts), self.size[0])
            else:  # linear radius from bottom (size[0]) to top (size[1])
                t = np.clip((d[:, a] + half) / (2 * half), 0.0, 1.0)
                radius = self.size[0] + t * (self.size[1] - self.size[0])
            return (np.abs(d[:, a]) <= half) & (r2 <= radius**2)
        raise ValueError(f"unknown primitive kind {self.kind!r}")


def occupancy(prims: list[Primitive], pts: np.ndarray) -> np.ndarray:
    """Union of the primitives' solids at ``pts`` (M, 3) -> bool (M,)."""
    inside = np.zeros(len(pts), dtype=bool)
    for prim in prims:
        inside |= prim.contains(pts)
    return inside


def cell_centres(res: int) -> np.ndarray:
    """(res^3, 3) cell centres of a ``res``^3 grid over the unit cube, in ``[i, j, k]`` C order."""
    axis = (np.arange(res, dtype=np.float32) + 0.5) / res - 0.5
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


def voxelize(prims: list[Primitive], res: int) -> np.ndarray:
    """Occupancy of every cell centre: a (res, res, res) uint8 grid."""
    return occupancy(prims, cell_centres(res)).reshape(res, res, res).astype(np.uint8)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _chair(rng: np.random.Generator) -> list[Primitive]:
    w, d = _u(rng, 0.22, 0.34), _u(rng, 0.2, 0.32)  # seat half width / depth
    seat_y, seat_t = _u(rng, -0.1, 0.02), _u(rng, 0.025, 0.05)
    leg = _u(rng, 0.025, 0.045)
    floor = -0.45
    leg_half = (seat_y - seat_t - floor) / 2
    prims = [Primitive("box", (0.0, seat_y, 0.0), (w, seat_t, d))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            prims.append(
                Primitive("box", (sx * (w - leg), floor + leg_half, sz * (d - leg)), (leg, leg_half + 0.01, leg))
            )
    back_h = _u(rng, 0.14, 0.22)
    back_t = _u(rng, 0.025, 0.045)
    prims.append(Primitive("box", (0.0, seat_y + back_h, -d + back_t), (w, back_h, back_t)))
    if rng.random() < 0.5:  # armrests
        for sx in (-1, 1):
            prims.append(Primitive("box", (sx * (w - 0.025), seat_y + 0.06, 0.0), (0.025, 0.06, 0.8 * d)))
    return prims


def _table(rng: np.random.Generator) -> list[Primitive]:
    w, d = _u(rng, 0.3, 0.44), _u(rng, 0.2, 0.4)
    top_y, top_t = _u(rng, 0.05, 0.25), _u(rng, 0.02, 0.045)
    floor = -0.45
    prims = [Primitive("box", (0.0, top_y, 0.0), (w, top_t, d))]
    height_half = (top_y - top_t - floor) / 2
    if rng.random() < 0.6:
        leg = _u(rng, 0.025, 0.05)
        for sx in (-1, 1):
            for sz in (-1, 1):
                prims.append(
                    Primitive(
                        "box", (sx * (w - leg), floor + height_half, sz * (d - leg)), (leg, height_half + 0.01, leg)
                    )
                )
    else:  # pedestal with a round base
        prims.append(Primitive("cylinder", (0.0, floor + height_half, 0.0), (_u(rng, 0.04, 0.07), height_half + 0.01)))
        prims.append(Primitive("cylinder", (0.0, floor + 0.02, 0.0), (_u(rng, 0.15, 0.25), 0.02)))
    return prims


def _lamp(rng: np.random.Generator) -> list[Primitive]:
    floor = -0.45
    base_r, base_t = _u(rng, 0.1, 0.2), _u(rng, 0.02, 0.04)
    pole_r = _u(rng, 0.035, 0.05)
    shade_h = _u(rng, 0.08, 0.15)
    top = _u(rng, 0.3, 0.44)
    pole_top = top - 2 * shade_h
    pole_half = (pole_top - floor) / 2
    r_bottom, r_top = _u(rng, 0.14, 0.24), _u(rng, 0.05, 0.12)
    return [
        Primitive("cylinder", (0.0, floor + base_t, 0.0), (base_r, base_t)),
        Primitive("cylinder", (0.0, floor + pole_half, 0.0), (pole_r, pole_half + 0.01)),
        Primitive("cone", (0.0, top - shade_h, 0.0), (r_bottom, r_top, shade_h)),
    ]


def _airplane(rng: np.random.Generator) -> list[Primitive]:
    length, radius = _u(rng, 0.36, 0.45), _u(rng, 0.045, 0.075)
    span, chord = _u(rng, 0.3, 0.45), _u(rng, 0.06, 0.12)
    wing_x = _u(rng, -0.05, 0.08)
    tail_x = -length + 0.06
    tail_h = _u(rng, 0.06, 0.12)
    return [
        Primitive("ellipsoid", (0.0, 0.0, 0.0), (length, radius, radius)),
        Primitive("box", (wing_x, 0.0, 0.0), (chord, 0.025, span)),
        Primitive("box", (tail_x, 0.0, 0.0), (0.045, 0.02, _u(rng, 0.1, 0.16))),
        Primitive("box", (tail_x, tail_h / 2 + radius / 2, 0.0), (0.05, tail_h / 2 + radius / 2, 0.02)),
    ]


_BUILDERS = {"chair": _chair, "table": _table, "lamp": _lamp, "airplane": _airplane}


def make_shape(category: str, rng: np.random.Generator) -> list[Primitive]:
    """Random primitives for one shape of ``category`` (one of :data:`CATEGORIES`)."""
    if category not in _BUILDERS:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}")
    prims = _BUILDERS[category](rng)
    if rng.random() < 0.5:  # mirror front/back so orientations vary a little
        prims = [Primitive(p.kind, (p.centre[0], p.centre[1], -p.centre[2]), p.size, p.axis) for p in prims]
    return prims


@dataclass
class ShapeSet:
    """Voxelised shapes with their category labels and (for procedural data) the primitives."""

    voxels: np.ndarray  # (N, R, R, R) uint8
    labels: np.ndarray  # (N,) int
    categories: tuple[str, ...]
    primitives: list[list[Primitive]] | None = None

    def __len__(self) -> int:
        return len(self.voxels)

    @property
    def res(self) -> int:
        return int(self.voxels.shape[1])

    def subset(self, index: np.ndarray) -> ShapeSet:
        prims = [self.primitives[i] for i in index] if self.primitives is not None else None
        return ShapeSet(self.voxels[index], self.labels[index], self.categories, prims)


def make_shape_set(categories: tuple[str, ...] | list[str], per_category: int, res: int, seed: int) -> ShapeSet:
    """``per_category`` random shapes of each category, voxelised at ``res``^3 (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    centres = cell_centres(res)
    voxels, labels, prims_all = [], [], []
    for label, category in enumerate(categories):
        for _ in range(per_category):
            prims = make_shape(category, rng)
            voxels.append(occupancy(prims, centres).reshape(res, res, res).astype(np.uint8))
            labels.append(label)
            prims_all.append(prims)
    return ShapeSet(np.stack(voxels), np.asarray(labels), tuple(categories), prims_all)


def downsample_max(vox: np.ndarray, res: int) -> np.ndarray:
    """Occupancy at a coarser ``res`` (a cell is inside when any fine voxel in it is): (..., R, R, R) -> res^3."""
    full = vox.shape[-1]
    if full % res:
        raise ValueError(f"resolution {res} does not divide the voxel resolution {full}")
    b = full // res
    shape = vox.shape[:-3] + (res, b, res, b, res, b)
    return vox.reshape(shape).max(axis=(-5, -3, -1))


@dataclass
class PointValueSet:
    """Point-value pairs of N shapes at one resolution: ``points`` (N, M, 3) float in the unit cube."""

    res: int
    points: np.ndarray
    values: np.ndarray  # (N, M, 1) float32 in {0, 1}


def _near_surface(grid: np.ndarray) -> np.ndarray:
    """Cells whose 3x3x3 neighbourhood (edge-padded) contains both inside and outside cells."""
    padded = np.pad(grid, 1, mode="edge")
    res = grid.shape[0]
    lo = np.ones_like(grid)
    hi = np.zeros_like(grid)
    for di in range(3):
        for dj in range(3):
            for dk in range(3):
                window = padded[di : di + res, dj : dj + res, dk : dk + res]
                lo = np.minimum(lo, window)
                hi = np.maximum(hi, window)
    return lo != hi


def sample_point_values(
    vox: np.ndarray, res: int, n_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n_points`` cells of one shape at resolution ``res`` (Sec. 3.1, official sampling).

    Cells near the surface are taken first (a random subset if there are more than ``n_points``), the rest is
    filled uniformly from the other cells. Returns integer 256-grid coordinates (n, 3) and values (n, 1).
    """
    grid = downsample_max(vox, res) if vox.shape[0] != res else vox
    flat = grid.reshape(-1)
    n_cells = flat.size
    if n_points > n_cells:
        raise ValueError(f"n_points={n_points} exceeds the {n_cells} cells of a {res}^3 grid")
    near = np.flatnonzero(_near_surface(grid).reshape(-1))
    if len(near) >= n_points:
        chosen = rng.choice(near, n_points, replace=False)
    else:
        far = np.setdiff1d(np.arange(n_cells), near, assume_unique=True)
        chosen = np.concatenate([near, rng.choice(far, n_points - len(near), replace=False)])
    chosen.sort()
    ijk = np.stack(np.unravel_index(chosen, grid.shape), axis=1)
    block = GRID256 // res
    points = (ijk * block + block // 2).astype(np.uint8 if GRID256 <= 256 else np.int32)
    return points, flat[chosen].astype(np.uint8)[:, None]


def points_from_grid256(points: np.ndarray) -> np.ndarray:
    """The official mapping of integer 256-grid coordinates to the unit cube: ``(p + 0.5) / 256 - 0.5``."""
    return (points.astype(np.float32) + 0.5) / GRID256 - 0.5


def point_counts(res: int) -> int:
    """Points per shape at ``res`` in the official sampling: 16^3 for 16 and 32, 4 x 16^3 for 64 and above."""
    return min(res**3, 4096 if res <= 32 else 16384)


def write_imnet_hdf5(path: str | Path, shapes: ShapeSet, resolutions: list[int], seed: int) -> Path:
    """Write ``voxels`` and ``points_{r}``/``values_{r}`` for every ``r`` in the official IM-NET layout."""
    import h5py

    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("voxels", data=shapes.voxels[..., None].astype(np.uint8), compression="gzip")
        handle.create_dataset("labels", data=shapes.labels.astype(np.int64))
        handle.attrs["categories"] = ",".join(shapes.categories)
        for res in resolutions:
            n = point_counts(res)
            pairs = [sample_point_values(v, res, n, rng) for v in shapes.voxels]
            handle.create_dataset(f"points_{res}", data=np.stack([p for p, _ in pairs]), compression="gzip")
            handle.create_dataset(f"values_{res}", data=np.stack([v for _, v in pairs]), compression="gzip")
    return path


def read_imnet_hdf5(path: str | Path, resolutions: list[int] | None = None) -> tuple[ShapeSet, list[PointValueSet]]:
    """Read an IM-NET point-value HDF5 file (official layout); malformed files raise :class:`DataError`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IM-NET HDF5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with handle:
        if "voxels" not in handle:
            raise DataError(f"{path}: dataset 'voxels' missing; found {sorted(handle.keys())}")
        _check_declared_size(path, handle, "voxels")
        voxels = np.asarray(handle["voxels"])
        if voxels.ndim == 5 and voxels.shape[-1] == 1:
            voxels = voxels[..., 0]
        if voxels.ndim != 4 or not (voxels.shape[1] == voxels.shape[2] == voxels.shape[3]):
            raise DataError(f"{path}: 'voxels' must have shape (N, R, R, R[, 1]), got {voxels.shape}")
        n = len(voxels)
        if n == 0:
            raise DataError(f"{path}: 'voxels' holds no shapes")
        check_finite(voxels, path, "'voxels'")  # NaN > 0 is False: NaN voxels would read as empty space
        if resolutions is None:
            resolutions = sorted(int(k.split("_")[1]) for k in handle if k.startswith("points_"))
        sets = []
        for res in resolutions:
            pk, vk = f"points_{res}", f"values_{res}"
            for key in (pk, vk):
                if key not in handle:
                    raise DataError(f"{path}: dataset {key!r} missing; found {sorted(handle.keys())}")
            _check_declared_size(path, handle, pk)
            _check_declared_size(path, handle, vk)
            points, values = np.asarray(handle[pk]), np.asarray(handle[vk])
            check_finite(points, path, repr(pk))
            check_finite(values, path, repr(vk))
            if points.ndim != 3 or points.shape[0] != n or points.shape[2] != 3:
                raise DataError(f"{path}: {pk!r} must have shape ({n}, M, 3), got {points.shape}")
            if values.shape != points.shape[:2] + (1,):
                raise DataError(f"{path}: {vk!r} must have shape {points.shape[:2] + (1,)}, got {values.shape}")
            sets.append(PointValueSet(res, points_from_grid256(points), values.astype(np.float32)))
        labels, categories = _read_labels(path, handle, n)
    return ShapeSet((voxels > 0).astype(np.uint8), labels, categories), sets


def _memory_limit_bytes() -> int:
    """Half the machine's physical memory: a dataset larger than that cannot be read into RAM usefully."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: a fixed 8 GiB
        return 8 * 2**30


def _check_declared_size(path: Path, handle: Any, key: str) -> None:
    """Refuse, before reading, a dataset whose declared shape would not fit in memory (a compressed or sparse HDF5
    file can declare terabytes in a few kilobytes: reading it would end in an out-of-memory kill, not a message)."""
    dataset = handle[key]
    size = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
    limit = _memory_limit_bytes()
    if size > limit:
        raise DataError(
            f"{path}: {key!r} declares shape {tuple(dataset.shape)} ({size / 2**30:.1f} GiB), more than half of this "
            f"machine's memory ({limit / 2**30:.1f} GiB); split the file"
        )


MAX_LABELS = 4096  # ShapeNet has 55 categories; a label of 1e12 would build a tuple of 1e12 names


def _read_labels(path: Path, handle: Any, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The optional ``labels`` dataset (N,) of non-negative integers and the ``categories`` attribute naming them.

    Without ``labels`` every shape is label 0; without ``categories`` the labels are named ``class0, class1, ...``.
    """
    if "labels" not in handle:
        labels = np.zeros(n, dtype=np.int64)
    else:
        raw = np.asarray(handle["labels"])
        if raw.shape != (n,):
            raise DataError(f"{path}: 'labels' must have shape ({n},) like 'voxels', got {raw.shape}")
        if raw.dtype.kind not in "iub":
            raise DataError(f"{path}: 'labels' must hold integers, got dtype {raw.dtype}")
        if n and raw.min() < 0:
            raise DataError(f"{path}: 'labels' must be >= 0, got {int(raw.min())}")
        if n and raw.max() >= MAX_LABELS:  # one category name is built per label value
            raise DataError(
                f"{path}: 'labels' go up to {int(raw.max())}; at most {MAX_LABELS} categories are supported"
            )
        labels = raw.astype(np.int64)
    n_labels = int(labels.max()) + 1 if n else 1
    if "categories" in handle.attrs:
        categories = tuple(str(handle.attrs["categories"]).split(","))
        if n_labels > len(categories):
            raise DataError(
                f"{path}: 'labels' go up to {n_labels - 1} but the 'categories' attribute names only "
                f"{len(categories)}: {','.join(categories)}"
            )
    else:
        categories = ("shape",) if n_labels == 1 else tuple(f"class{i}" for i in range(n_labels))
    return labels, categories


def read_binvox(path: str | Path) -> np.ndarray:
    """Read a ``.binvox`` file into a (X, Y, Z) uint8 grid (binvox stores x-z-y order, y fastest)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such .binvox file")
    data = path.read_bytes()
    lines: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise DataError(f"{path}:{len(lines) + 1}: header ended before a 'data' line")
        line = data[pos:end].strip()
        pos = end + 1
        lines.append(line)
        if line == b"data":
            break
        if len(lines) > 16:
            raise DataError(f"{path}: no 'data' line in the first 16 header lines")
    if not lines[0].startswith(b"#binvox"):
        raise DataError(f"{path}:1: expected '#binvox <version>', got {lines[0][:40]!r}")
    dims = None
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith(b"dim"):
            try:
                dims = tuple(int(v) for v in line.split()[1:])
            except ValueError as exc:
                raise DataError(f"{path}:{number}: expected 'dim X Y Z' with integers, got {line!r}") from exc
            if len(dims) != 3 or min(dims) <= 0:
                raise DataError(f"{path}:{number}: expected 'dim X Y Z' with 3 positive integers, got {line!r}")
    if dims is None:
        raise DataError(f"{path}: header has no 'dim' line")
    runs = np.frombuffer(data[pos:], dtype=np.uint8)
    if len(runs) % 2:
        raise DataError(f"{path}: run-length data has an odd number of bytes ({len(runs)})")
    values, counts = runs[0::2], runs[1::2].astype(np.int64)
    total = int(counts.sum())
    expected = dims[0] * dims[1] * dims[2]
    if total != expected:
        raise DataError(f"{path}: run lengths cover {total} voxels, the header's dim {dims} needs {expected}")
    flat = np.repeat(values, counts)
    grid = flat.reshape(dims[0], dims[2], dims[1])  # x, z, y
    return np.ascontiguousarray(grid.transpose(0, 2, 1)).astype(np.uint8)


def write_binvox(path: str | Path, vox: np.ndarray, *, scale: float = 1.0) -> Path:
    """Write a (X, Y, Z) grid as ``.binvox`` (run-length pairs, runs of at most 255)."""
    path = Path(path)
    flat = (np.asarray(vox).transpose(0, 2, 1).reshape(-1) > 0).astype(np.uint8)
    out = bytearray()
    i = 0
    while i < len(flat):
        value = flat[i]
        j = i
        while j < len(flat) and flat[j] == value and j - i < 255:
            j += 1
        out += bytes((int(value), j - i))
        i = j
    x, y, z = vox.shape
    header = f"#binvox 1\ndim {x} {y} {z}\ntranslate 0 0 0\nscale {scale}\ndata\n".encode()
    path.write_bytes(header + bytes(out))
    return path
