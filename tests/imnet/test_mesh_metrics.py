from __future__ import annotations

import numpy as np
import pytest

from reprolab.imnet.mesh import (
    coarse_to_fine_grid,
    dense_grid,
    marching_cubes,
    read_obj,
    sample_mesh,
    signed_volume,
    write_obj,
    write_ply,
)
from reprolab.imnet.metrics import (
    chamfer_and_normals,
    chamfer_distance,
    coverage_mmd,
    largest_component_share,
    voxel_iou,
)

RADIUS = 0.3


def sphere_field(points: np.ndarray) -> np.ndarray:
    """An inside-probability-like field crossing 0.5 exactly on the sphere of radius RADIUS."""
    return np.clip(0.5 + 4.0 * (RADIUS - np.linalg.norm(points, axis=1)), 0.0, 1.0).astype(np.float32)


def test_sphere_extracts_with_the_right_radius():
    result = dense_grid(sphere_field, 32)
    assert result.evaluations == 33**3
    mesh = marching_cubes(result.values)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(radii.mean() - RADIUS) < 2e-3 and radii.std() < 5e-3
    points, normals = sample_mesh(mesh, 2000, np.random.default_rng(0))
    # sampled surface normals of a sphere point along the radius
    cos = np.abs(np.sum(normals * points / np.linalg.norm(points, axis=1, keepdims=True), axis=1))
    assert cos.mean() > 0.99


def test_coarse_to_fine_matches_dense_with_fewer_evaluations():
    dense = dense_grid(sphere_field, 64)
    c2f = coarse_to_fine_grid(sphere_field, 64, 8)
    assert voxel_iou(c2f.values >= 0.5, dense.values >= 0.5) == 1.0
    assert c2f.evaluations < 0.35 * dense.evaluations
    mesh = marching_cubes(c2f.values)
    assert abs(np.linalg.norm(mesh.vertices, axis=1).mean() - RADIUS) < 2e-3
    with pytest.raises(ValueError, match="power of two"):
        coarse_to_fine_grid(sphere_field, 64, 24)


def test_cell_centred_marching_cubes_and_empty_field():
    grid = np.zeros((8, 8, 8), dtype=np.float32)
    grid[2:6, 2:6, 2:6] = 1.0
    mesh = marching_cubes(grid, cell_centred=True)
    # the 0.5 level between cells 1 and 2 lies at the cell boundary 2/8 - 0.5 = -0.25
    assert np.isclose(mesh.vertices.min(), -0.25) and np.isclose(mesh.vertices.max(), 0.25)
    assert marching_cubes(np.zeros((4, 4, 4))).empty


def test_obj_and_ply_export(tmp_path):
    mesh = marching_cubes(dense_grid(sphere_field, 8).values)
    obj = write_obj(tmp_path / "s.obj", mesh).read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == len(mesh.vertices)
    assert sum(line.startswith("f ") for line in obj) == len(mesh.faces)
    faces = [line for line in obj if line.startswith("f ")]
    assert min(int(v) for line in faces for v in line.split()[1:]) == 1  # OBJ is 1-based
    ply = write_ply(tmp_path / "s.ply", mesh).read_text().splitlines()
    assert ply[0] == "ply" and f"element vertex {len(mesh.vertices)}" in ply
    assert len(ply) == ply.index("end_header") + 1 + len(mesh.vertices) + len(mesh.faces)


def test_iou_by_hand():
    a = np.zeros((2, 2, 2), bool)
    b = np.zeros((2, 2, 2), bool)
    a[0, 0, :] = True  # 2 voxels
    b[0, :, 0] = True  # 2 voxels, 1 shared
    assert voxel_iou(a, b) == pytest.approx(1 / 3)
    assert voxel_iou(a, a) == 1.0 and voxel_iou(np.zeros(3), np.zeros(3)) == 1.0
    with pytest.raises(ValueError):
        voxel_iou(a, np.zeros((3, 3, 3)))


def test_chamfer_and_normal_consistency_by_hand():
    origin = np.zeros((1, 3))
    unit_x = np.array([[1.0, 0, 0]])
    assert chamfer_distance(origin, unit_x) == pytest.approx(2.0)  # 1^2 both ways
    two = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    assert chamfer_distance(two, origin) == pytest.approx(0.5)  # (0 + 1) / 2 + 0
    n_up = np.array([[0.0, 1, 0]])
    n_side = np.array([[1.0, 0, 0]])
    cd, nc = chamfer_and_normals(origin, n_up, origin, -n_up)
    assert cd == 0.0 and nc == pytest.approx(1.0)  # orientation is ignored
    assert chamfer_and_normals(origin, n_up, origin, n_side)[1] == pytest.approx(0.0)
    assert chamfer_distance(np.zeros((0, 3)), origin) == float("inf")


def test_coverage_and_mmd_by_hand():
    distances = np.array([[1.0, 2.0, 4.0], [3.0, 0.5, 5.0]])  # 2 generated x 3 reference
    coverage, mmd = coverage_mmd(distances)
    assert coverage == pytest.approx(2 / 3)
    assert mmd == pytest.approx((1.0 + 0.5 + 4.0) / 3)


def test_largest_component_share():
    grid = np.zeros((6, 6, 6), bool)
    grid[0, 0, 0:3] = True
    grid[4, 4, 4] = True
    assert largest_component_share(grid) == pytest.approx(0.75)
    grid[1, 1, 3] = True  # touches the first part diagonally: 26-connected
    grid[4, 4, 4] = False
    assert largest_component_share(grid) == 1.0
    assert largest_component_share(np.zeros((2, 2, 2))) == 0.0


def _outward_share(mesh) -> float:
    """Share of faces whose normal points away from the shape's centre (star-shaped shapes only)."""
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return float(np.mean(np.sum(normal * tri.mean(axis=1), axis=1) > 0))


def test_meshes_face_outward(tmp_path):
    """Every extraction path (vertex grid, coarse-to-fine, cell-centred voxels) gives outward faces: positive
    signed volume close to the true one and 100% outward normals, also after an OBJ round trip."""
    sphere = marching_cubes(dense_grid(sphere_field, 32).values)
    volume = 4.0 / 3.0 * np.pi * RADIUS**3
    assert signed_volume(sphere) == pytest.approx(volume, rel=0.02)
    assert _outward_share(sphere) == 1.0
    c2f = marching_cubes(coarse_to_fine_grid(sphere_field, 64, 8).values)
    assert signed_volume(c2f) > 0 and _outward_share(c2f) == 1.0
    box = np.zeros((8, 8, 8), dtype=np.float32)
    box[2:6, 2:6, 2:7] = 1.0
    box_mesh = marching_cubes(box, cell_centred=True)
    assert signed_volume(box_mesh) > 0 and _outward_share(box_mesh) == 1.0
    back = read_obj(write_obj(tmp_path / "sphere.obj", sphere))
    assert signed_volume(back) == pytest.approx(signed_volume(sphere), rel=1e-4)
