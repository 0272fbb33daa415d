from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.core.sweep import Sweep
from reprolab.imnet import lfd
from reprolab.imnet.data import make_shape_set
from reprolab.imnet.metrics import chamfer_distance, chamfer_matrix
from reprolab.imnet.svr import ImageEncoder, predict_codes, render_depth, render_views, svr_directions, train_svr


@pytest.fixture(scope="module")
def shapes():
    return make_shape_set(["chair", "table"], 3, 32, 0)


def _descriptors_of_points(points: np.ndarray) -> np.ndarray:
    images = lfd.silhouettes(points)
    return np.concatenate([lfd._zernike(images), np.stack([lfd._fourier(im) for im in images])], axis=1)


def test_dodecahedron_rotation_group():
    verts = lfd.dodecahedron_vertices()
    assert verts.shape == (20, 3) and np.allclose(np.linalg.norm(verts, axis=1), 1.0)
    rots = lfd.dodecahedron_rotations()
    assert rots.shape == (60, 3, 3)
    assert np.allclose(np.linalg.det(rots), 1.0)
    assert len({tuple(np.round(r, 6).ravel()) for r in rots}) == 60
    for rot in rots:  # every rotation maps the vertex set onto itself
        moved = verts @ rot.T
        assert np.abs(moved[:, None] - verts[None]).sum(axis=2).min(axis=1).max() < 1e-9
    perms = lfd.view_permutations()
    assert perms.shape == (60, 10) and all(sorted(p) == list(range(10)) for p in perms)
    views = lfd.view_directions()
    assert np.all(np.abs(views @ views.T - np.eye(10)) < 0.99)  # no two views antipodal or equal


def test_zernike_of_a_centred_disk():
    size = 64
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(c, c)
    disk = (np.hypot(x, y) <= 0.5)[None]
    moments = lfd._zernike(disk)[0]
    _, orders = lfd._zernike_basis(size)
    assert len(orders) == 36
    # A_00 = (1/pi) * area = r^2 for a disk of radius r; moments with m != 0 vanish by symmetry
    assert moments[0] == pytest.approx(0.25, rel=0.02)
    assert np.all(moments[orders[:, 1] != 0] < 1e-2)
    fourier = lfd._fourier(disk[0])
    assert np.all(fourier < 0.02)  # a circle's centroid distance is constant


def test_descriptors_invariant_to_in_plane_rotation_and_mirroring(shapes):
    images = lfd.silhouettes(lfd.voxel_points(shapes.voxels[0]))
    base = lfd._zernike(images[:1])[0]
    for transformed in (np.rot90(images[0]), np.fliplr(images[0])):
        assert np.allclose(lfd._zernike(transformed[None].copy())[0], base, atol=1e-9)
        # the contour is resampled from another starting point: equal up to resampling error
        assert np.allclose(lfd._fourier(transformed.copy()), lfd._fourier(images[0]), atol=2e-3)


def test_lfd_identical_symmetric_and_rotation_behaviour(shapes):
    desc = [lfd.lfd_descriptors(v) for v in shapes.voxels]
    matrix = lfd.lfd_matrix(desc, desc)
    assert np.allclose(np.diag(matrix), 0.0)  # identical shapes
    assert np.allclose(matrix, matrix.T)  # the rotation set is a group, so the minimum is symmetric
    assert lfd.light_field_distance(shapes.voxels[0], shapes.voxels[0]) == 0.0
    assert lfd.light_field_distance(shapes.voxels[0], desc[1]) == pytest.approx(matrix[0, 1])
    off = matrix[~np.eye(len(desc), dtype=bool)]
    # rotating a shape by a symmetry of the dodecahedron only permutes the views: LFD ~ 0 (pixel noise only)
    points = lfd.voxel_points(shapes.voxels[0])
    d0 = _descriptors_of_points(points)
    for rot in lfd.dodecahedron_rotations()[[1, 7, 33]]:
        assert lfd._descriptor_distance(d0, _descriptors_of_points(points @ rot.T)) < 0.3 * off.min()
    # chairs are closer to chairs than to tables (labels 0, 0, 0, 1, 1, 1)
    same = [matrix[i, j] for i in range(6) for j in range(6) if i != j and (i < 3) == (j < 3)]
    cross = [matrix[i, j] for i in range(6) for j in range(6) if (i < 3) != (j < 3)]
    assert np.mean(same) < np.mean(cross)


def test_lfd_of_empty_shape_is_finite(shapes):
    empty = np.zeros((32, 32, 32), dtype=np.uint8)
    assert np.all(lfd.lfd_descriptors(empty) == 0)
    assert 0 < lfd.light_field_distance(empty, shapes.voxels[0]) < np.inf
    with pytest.raises(ValueError, match="cubic"):
        lfd.light_field_distance(np.zeros((4, 4)), shapes.voxels[0])


def test_chamfer_matrix_matches_pairwise():
    rng = np.random.default_rng(0)
    a = [rng.random((50, 3)), rng.random((30, 3))]
    b = [rng.random((40, 3)), np.zeros((0, 3))]
    m = chamfer_matrix(a, b)
    assert m[0, 0] == pytest.approx(chamfer_distance(a[0], b[0]))
    assert m[1, 0] == pytest.approx(chamfer_distance(a[1], b[0]))
    assert np.isinf(m[0, 1])


def test_render_depth_and_views(shapes):
    assert not render_depth(np.zeros((16, 16, 16)), np.array([0, 0, 1.0]), 32).any()
    cube = np.zeros((16, 16, 16), dtype=np.uint8)
    cube[4:12, 4:12, 4:12] = 1
    image = render_depth(cube, np.array([0, 0, 1.0]), 32)  # looking down -z: a centred square
    assert image.shape == (32, 32) and 0.2 < image.max() <= 1.0
    rows, cols = np.nonzero(image)
    assert abs(rows.mean() - 15.5) < 1 and abs(cols.mean() - 15.5) < 1
    assert np.allclose(image[image > 0], image[image > 0][0])  # a face seen head-on has one depth
    dirs = svr_directions(3)
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1.0)
    views = render_views(shapes.voxels[:2], dirs, 32)
    assert views.shape == (2, 3, 1, 32, 32) and views.max() <= 1.0


def test_image_encoder_and_svr_training_reduce_loss(run_context, shapes):
    with pytest.raises(ValueError):
        ImageEncoder(size=24)
    torch.manual_seed(0)
    model = ImageEncoder(size=32, z_dim=8, width=4)
    images = torch.from_numpy(render_views(shapes.voxels, svr_directions(2), 32))
    codes = torch.rand(len(shapes), 8)
    before = torch.mean((predict_codes(model, images[:, 0]) - codes) ** 2).item()
    model.train()
    ctx = run_context("imnet")
    train_svr(Sweep(ctx), "svr", model, images, codes, steps=60, batch_size=8, lr=1e-2, generator=torch.Generator())
    after = torch.mean((predict_codes(model, images[:, 0]) - codes) ** 2).item()
    assert after < 0.5 * before
    with pytest.raises(ValueError):
        train_svr(Sweep(ctx), "bad", model, images, codes[:2], steps=1, batch_size=2, lr=1e-3, generator=None)
