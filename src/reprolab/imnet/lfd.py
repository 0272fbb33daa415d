"""A simplified light-field distance (LFD) between shapes (Chen, Tian, Shen, Ouhyoung, Eurographics 2003).

IM-NET (Sec. 4, Table 1 and the generation metrics) scores shapes with the LFD: each shape is rendered as
silhouettes from the 20 vertices of a dodecahedron around it, every silhouette is described by Zernike
moments and Fourier descriptors of its contour, and the distance between two shapes is the smallest summed
descriptor distance over the rotations that map the dodecahedron onto itself. What is implemented here:

* **Views**: orthographic silhouettes from the 20 dodecahedron vertex directions. A silhouette seen from
  ``-d`` is the mirror image of the one seen from ``d``, and every descriptor below is mirror invariant, so
  (as in the original) the 10 antipodal pairs give 10 distinct views.
* **Normalisation**: the shape (occupied voxel centres, each split into 27 sub-points) is translated to its
  centroid and scaled to fit the unit sphere (rotation-equivariant choices), as the original normalises
  translation and scale.
* **Descriptors** per silhouette (``size`` x ``size`` pixels, default 64): the magnitudes ``|A_nm|`` of the
  Zernike moments up to order 10 on the unit disk (36 values: n <= 10, 0 <= m <= n, n - m even), and the
  magnitudes of the first 10 Fourier coefficients of the outer contour's centroid-distance function (128
  samples by arc length), divided by the zeroth coefficient. Both are invariant to in-plane rotation and mirroring.
* **Distance**: ``LFD(a, b) = min_r sum_i ||D_a[i] - D_b[perm_r(i)]||_1`` over the 60 rotations ``r`` of the
  dodecahedron's rotation group, ``perm_r`` the view correspondence they induce.

Simplifications, stated: one light field (camera set) per shape instead of the original's ten rotated
light fields; silhouettes are splatted from voxel sub-points, not rasterised from a mesh; coefficients are
not quantised to 8 bits and Zernike and Fourier parts are added unweighted. The values are therefore NOT on
the scale of the LFD numbers in the paper (thousands); they compare shapes within one run.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "ZERNIKE_ORDER",
    "dodecahedron_rotations",
    "dodecahedron_vertices",
    "lfd_descriptors",
    "lfd_matrix",
    "light_field_distance",
    "silhouettes",
    "view_directions",
    "view_permutations",
    "voxel_points",
]

ZERNIKE_ORDER = 10
FOURIER_COEFFS = 10
CONTOUR_SAMPLES = 128
PHI = (1.0 + math.sqrt(5.0)) / 2.0


def dodecahedron_vertices() -> np.ndarray:
    """The 20 vertices of a regular dodecahedron on the unit sphere: (±1, ±1, ±1), (0, ±1/φ, ±φ) and
    its cyclic permutations, normalised."""
    verts = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    for a in (-1 / PHI, 1 / PHI):
        for b in (-PHI, PHI):
            verts += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.asarray(verts, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def view_directions() -> np.ndarray:
    """10 view directions, one vertex of each antipodal pair of the dodecahedron (10, 3)."""
    return _views()[0]


@lru_cache(maxsize=1)
def _views() -> tuple[np.ndarray, np.ndarray]:
    verts = dodecahedron_vertices()
    chosen: list[int] = []
    pair = np.full(len(verts), -1)
    for i, v in enumerate(verts):
        if pair[i] >= 0:
            continue
        j = int(np.argmin(np.linalg.norm(verts + v, axis=1)))  # the antipode
        pair[i] = pair[j] = len(chosen)
        chosen.append(i)
    return verts[chosen], pair


@lru_cache(maxsize=1)
def dodecahedron_rotations() -> np.ndarray:
    """The 60 proper rotations mapping the dodecahedron onto itself (60, 3, 3).

    A rotation symmetry is fixed by where it sends one vertex and one of its three neighbours; every ordered
    pair of adjacent vertices (20 x 3) gives one rotation, built from the two orthonormal frames.
    """
    verts = dodecahedron_vertices()
    dists = np.linalg.norm(verts[:, None] - verts[None], axis=2)
    edge = np.min(dists[dists > 1e-9])
    adjacent = np.abs(dists - edge) < 1e-6

    def frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        e1 = a
        e2 = b - (b @ a) * a
        e2 /= np.linalg.norm(e2)
        return np.stack([e1, e2, np.cross(e1, e2)], axis=1)

    base = frame(verts[0], verts[int(np.flatnonzero(adjacent[0])[0])])
    rotations = [frame(verts[i], verts[j]) @ base.T for i in range(len(verts)) for j in np.flatnonzero(adjacent[i])]
    return np.stack(rotations)


@lru_cache(maxsize=1)
def view_permutations() -> np.ndarray:
    """For each of the 60 rotations ``R``, the view ``perm[r, i]`` that ``R`` sends view ``i`` to (up to the
    antipode) (60, 10)."""
    views, pair = _views()
    verts = dodecahedron_vertices()
    perms = []
    for rot in dodecahedron_rotations():
        moved = views @ rot.T
        nearest = np.argmin(np.linalg.norm(moved[:, None] - verts[None], axis=2), axis=1)
        perms.append(pair[nearest])
    return np.asarray(perms, dtype=np.int64)


def voxel_points(grid: np.ndarray, subdivisions: int = 3) -> np.ndarray:
    """Points filling the occupied cells of a cell-centred R^3 grid in the unit cube ``[-0.5, 0.5]^3``:
    ``subdivisions``^3 sub-points per cell (so projected silhouettes have no holes)."""
    occupied = np.argwhere(np.asarray(grid) > 0)
    res = np.asarray(grid).shape[0]
    if len(occupied) == 0:
        return np.zeros((0, 3))
    offsets = (np.arange(subdivisions) + 0.5) / subdivisions - 0.5
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    centres = (occupied + 0.5) / res - 0.5
    return (centres[:, None, :] + sub[None] / res).reshape(-1, 3)


def _normalise(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    return centred / radius if radius > 0 else centred


def silhouettes(points: np.ndarray, size: int = 64) -> np.ndarray:
    """Orthographic silhouettes (10, size, size) of a point-filled solid from the 10 view directions, after
    normalising translation and scale into the unit sphere (the image spans [-1, 1]^2)."""
    images = np.zeros((10, size, size), dtype=bool)
    if len(points) == 0:
        return images
    pts = _normalise(np.asarray(points, dtype=np.float64))
    for k, d in enumerate(view_directions()):
        helper = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(d, helper)
        u /= np.linalg.norm(u)
        w = np.cross(d, u)
        pix = np.clip(((pts @ np.stack([u, w], axis=1)) + 1.0) / 2.0 * size, 0, size - 1).astype(np.int64)
        images[k, pix[:, 1], pix[:, 0]] = True
    return images


@lru_cache(maxsize=4)
def _zernike_basis(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate Zernike polynomials ``V*_nm`` at the pixel centres inside the unit disk, times the
    normalisation ``(n + 1) / pi`` and the pixel area: (n_moments, size*size) complex."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(c, c, indexing="xy")
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    inside = rho <= 1.0
    area = (2.0 / size) ** 2
    rows, orders = [], []
    for n in range(ZERNIKE_ORDER + 1):
        for m in range(n % 2, n + 1, 2):
            radial = np.zeros_like(rho)
            for s in range((n - m) // 2 + 1):
                coef = (-1) ** s * math.factorial(n - s)
                coef /= math.factorial(s) * math.factorial((n + m) // 2 - s) * math.factorial((n - m) // 2 - s)
                radial += coef * rho ** (n - 2 * s)
            basis = radial * np.exp(-1j * m * theta) * inside * (n + 1) / math.pi * area
            rows.append(basis.reshape(-1))
            orders.append((n, m))
    return np.stack(rows), np.asarray(orders)


def _zernike(images: np.ndarray) -> np.ndarray:
    real, imag = _split_basis(images.shape[-1])
    flat = images.reshape(len(images), -1) > 0
    # sums of basis rows over the occupied pixels (indexing, not BLAS: no thread spin-up for small products)
    return np.stack([np.hypot(real[mask].sum(axis=0), imag[mask].sum(axis=0)) for mask in flat])


@lru_cache(maxsize=4)
def _split_basis(size: int) -> tuple[np.ndarray, np.ndarray]:
    basis, _ = _zernike_basis(size)
    return np.ascontiguousarray(basis.real.T), np.ascontiguousarray(basis.imag.T)


def _fourier(image: np.ndarray) -> np.ndarray:
    """Magnitudes of the first FOURIER_COEFFS Fourier coefficients of the outer contour's centroid distance."""
    from skimage import measure

    if not image.any():
        return np.zeros(FOURIER_COEFFS)
    contours = measure.find_contours(np.pad(image.astype(np.float64), 1), 0.5)
    contour = max(contours, key=len)
    seg = np.linalg.norm(np.diff(contour, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return np.zeros(FOURIER_COEFFS)
    t = np.linspace(0.0, arc[-1], CONTOUR_SAMPLES, endpoint=False)
    resampled = np.stack([np.interp(t, arc, contour[:, 0]), np.interp(t, arc, contour[:, 1])], axis=1)
    dist = np.linalg.norm(resampled - resampled.mean(axis=0), axis=1)
    spectrum = np.abs(np.fft.rfft(dist))
    return spectrum[1 : FOURIER_COEFFS + 1] / max(spectrum[0], 1e-12)


def lfd_descriptors(grid: np.ndarray, size: int = 64) -> np.ndarray:
    """Descriptors (10 views, 36 Zernike + 10 Fourier) of a voxel grid (thresholded at > 0)."""
    grid = np.asarray(grid)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"need a cubic (R, R, R) occupancy grid or a (10, {_n_desc()}) descriptor, got {grid.shape}")
    images = silhouettes(voxel_points(grid), size)
    return np.concatenate([_zernike(images), np.stack([_fourier(im) for im in images])], axis=1)


def _descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    perms = view_permutations()
    costs = np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2)  # (10, 10) view-to-view L1
    return float(costs[np.arange(10)[None, :], perms].sum(axis=1).min())


def light_field_distance(a: np.ndarray, b: np.ndarray, size: int = 64) -> float:
    """Simplified LFD between two voxel grids or two precomputed (10, 46) descriptor arrays (module docstring)."""
    da = a if a.shape == (10, _n_desc()) else lfd_descriptors(a, size)
    db = b if b.shape == (10, _n_desc()) else lfd_descriptors(b, size)
    return _descriptor_distance(da, db)


def lfd_matrix(first: list[np.ndarray], second: list[np.ndarray]) -> np.ndarray:
    """Pairwise LFD between two lists of descriptor arrays (len(first), len(second))."""
    return np.array([[_descriptor_distance(a, b) for b in second] for a in first])


def _n_desc() -> int:
    return len(_zernike_basis(8)[1]) + FOURIER_COEFFS
