from __future__ import annotations

import numpy as np
import pytest

from reprolab.core.errors import DataError
from reprolab.imnet.data import (
    CATEGORIES,
    cell_centres,
    downsample_max,
    make_shape,
    make_shape_set,
    occupancy,
    points_from_grid256,
    read_binvox,
    read_imnet_hdf5,
    sample_point_values,
    write_binvox,
    write_imnet_hdf5,
)
from reprolab.imnet.metrics import largest_component_share


def test_procedural_shapes_are_connected_and_inside_the_cube():
    rng = np.random.default_rng(0)
    for category in CATEGORIES:
        for _ in range(3):
            prims = make_shape(category, rng)
            grid = occupancy(prims, cell_centres(32)).reshape(32, 32, 32)
            assert grid.sum() > 50, category
            assert largest_component_share(grid) == 1.0, category
            # nothing touches the border cells
            assert not grid[[0, -1]].any() and not grid[:, [0, -1]].any() and not grid[:, :, [0, -1]].any()


def test_shape_set_is_deterministic():
    a = make_shape_set(["chair", "lamp"], 3, 16, seed=5)
    b = make_shape_set(["chair", "lamp"], 3, 16, seed=5)
    assert np.array_equal(a.voxels, b.voxels) and list(a.labels) == [0, 0, 0, 1, 1, 1]


def test_downsample_max_by_hand():
    vox = np.zeros((4, 4, 4), dtype=np.uint8)
    vox[3, 0, 1] = 1
    small = downsample_max(vox, 2)
    assert small.shape == (2, 2, 2) and small.sum() == 1 and small[1, 0, 0] == 1


def test_point_values_prefer_near_surface_and_match_voxels():
    vox = make_shape_set(["table"], 1, 32, seed=1).voxels[0]
    points, values = sample_point_values(vox, 32, 500, np.random.default_rng(0))
    coords = points_from_grid256(points)
    ijk = np.floor((coords + 0.5) * 32).astype(int)
    assert np.array_equal(values[:, 0], vox[ijk[:, 0], ijk[:, 1], ijk[:, 2]])
    # 500 < number of near-surface cells, so every point has both values in its 3x3x3 neighbourhood
    for i, j, k in ijk[:50]:
        block = np.pad(vox, 1, mode="edge")[i : i + 3, j : j + 3, k : k + 3]
        assert block.min() == 0 and block.max() == 1
    # at 16^3 with 4096 points every cell is sampled exactly once
    p16, v16 = sample_point_values(vox, 16, 4096, np.random.default_rng(0))
    assert len(np.unique(p16, axis=0)) == 4096 and v16.sum() == downsample_max(vox, 16).sum()


def test_hdf5_round_trip_in_official_layout(tmp_path):
    import h5py

    shapes = make_shape_set(["chair"], 2, 16, seed=0)
    path = write_imnet_hdf5(tmp_path / "d.hdf5", shapes, [8, 16], seed=0)
    with h5py.File(path) as handle:
        assert handle["voxels"].shape == (2, 16, 16, 16, 1)
        assert handle["points_16"].shape == (2, 4096, 3) and handle["values_16"].shape == (2, 4096, 1)
    back, sets = read_imnet_hdf5(path)
    assert np.array_equal(back.voxels, shapes.voxels) and [s.res for s in sets] == [8, 16]
    assert sets[1].points.min() > -0.5 and sets[1].points.max() < 0.5


def test_hdf5_errors_name_the_file_and_dataset(tmp_path):
    import h5py

    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("voxels", data=np.zeros((2, 8, 8, 8, 1), np.uint8))
        handle.create_dataset("points_8", data=np.zeros((2, 10, 3), np.uint8))
    with pytest.raises(DataError, match=r"bad\.hdf5.*values_8"):
        read_imnet_hdf5(path)
    with h5py.File(tmp_path / "empty.hdf5", "w") as handle:
        handle.create_dataset("voxels", data=np.zeros((0, 8, 8, 8, 1), np.uint8))
    with pytest.raises(DataError, match=r"empty\.hdf5: 'voxels' holds no shapes"):
        read_imnet_hdf5(tmp_path / "empty.hdf5")
    (tmp_path / "junk.hdf5").write_text("not hdf5")
    with pytest.raises(DataError, match="junk.hdf5"):
        read_imnet_hdf5(tmp_path / "junk.hdf5")


@pytest.mark.parametrize(
    ("labels", "categories", "message"),
    [
        (np.zeros(3, np.int64), None, r"'labels' must have shape \(6,\)"),
        (np.array([0, 0, 0, 1, 1, 1.5]), None, "must hold integers"),
        (np.array([0, 0, 0, 1, 1, -1]), None, "must be >= 0"),
        (np.array([0, 0, 0, 1, 1, 1]), "chair", "names only 1"),
    ],
)
def test_hdf5_label_errors_name_the_file(tmp_path, labels, categories, message):
    import h5py

    path = tmp_path / "labels.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("voxels", data=np.zeros((6, 8, 8, 8, 1), np.uint8))
        handle.create_dataset("labels", data=labels)
        if categories is not None:
            handle.attrs["categories"] = categories
    with pytest.raises(DataError, match=r"labels\.hdf5.*" + message):
        read_imnet_hdf5(path)


def test_hdf5_without_category_names(tmp_path):
    import h5py

    path = tmp_path / "plain.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("voxels", data=np.zeros((4, 8, 8, 8, 1), np.uint8))
        handle.create_dataset("labels", data=np.array([0, 0, 1, 2]))
    shapes, _ = read_imnet_hdf5(path)
    assert shapes.categories == ("class0", "class1", "class2") and list(shapes.labels) == [0, 0, 1, 2]


def test_binvox_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vox = (rng.random((8, 8, 8)) < 0.3).astype(np.uint8)
    vox[0, 0, :] = 1  # a run longer than one byte can hold is split correctly too
    big = np.ones((8, 8, 8), dtype=np.uint8)
    for grid, name in ((vox, "a"), (big, "b")):
        path = write_binvox(tmp_path / f"{name}.binvox", grid)
        assert np.array_equal(read_binvox(path), grid)


def test_binvox_order_is_x_z_y(tmp_path):
    # a single voxel at x=1, y=2, z=3 sits at flat index x*W*H + z*W + y in the file
    raw = np.zeros(4 * 4 * 4, dtype=np.uint8)
    raw[1 * 16 + 3 * 4 + 2] = 1
    runs = bytearray()
    for value in raw:
        runs += bytes((int(value), 1))
    path = tmp_path / "one.binvox"
    path.write_bytes(b"#binvox 1\ndim 4 4 4\ntranslate 0 0 0\nscale 1\ndata\n" + bytes(runs))
    grid = read_binvox(path)
    assert grid.sum() == 1 and grid[1, 2, 3] == 1


def test_binvox_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.binvox"
    path.write_bytes(b"#notbinvox\ndim 2 2 2\ndata\n\x00\x08")
    with pytest.raises(DataError, match=r"bad\.binvox:1:"):
        read_binvox(path)
    path.write_bytes(b"#binvox 1\ndim 2 x 2\ndata\n\x00\x08")
    with pytest.raises(DataError, match=r"bad\.binvox:2:"):
        read_binvox(path)
    path.write_bytes(b"#binvox 1\ndim 2 2 2\ndata\n\x00\x07")
    with pytest.raises(DataError, match="run lengths cover 7"):
        read_binvox(path)
    path.write_bytes(b"#binvox 1\ndim 2 2 2\n")
    with pytest.raises(DataError, match=r"bad\.binvox:3: header ended"):
        read_binvox(path)
    with pytest.raises(DataError, match=r"missing\.binvox: no such"):
        read_binvox(tmp_path / "missing.binvox")


@pytest.mark.realdata
def test_shared_binvox_samples(real_data, tmp_path):
    folder = real_data("binvox_samples")
    chair = read_binvox(folder / "chair.binvox")
    other = read_binvox(folder / "8a85.binvox")
    assert chair.shape == (32, 32, 32) and chair.sum() == 1002 and other.sum() == 14382
    points, values = sample_point_values(chair, 16, 4096, np.random.default_rng(0))
    assert values.sum() == downsample_max(chair, 16).sum()
    for name, grid in (("chair", chair), ("8a85", other)):  # round trip: same grid, same run-length bytes
        copy = write_binvox(tmp_path / f"{name}.binvox", grid)
        assert np.array_equal(read_binvox(copy), grid)
        original = (folder / f"{name}.binvox").read_bytes()
        assert copy.read_bytes().split(b"data\n", 1)[1] == original.split(b"data\n", 1)[1]


def test_hdf5_declaring_a_huge_shape_is_refused_before_reading(tmp_path):
    import h5py

    path = tmp_path / "huge.hdf5"
    with h5py.File(path, "w") as handle:  # a few KB on disk: chunks never written read as the fill value
        handle.create_dataset("voxels", shape=(10**6, 64, 64, 64), dtype="uint8", chunks=(1, 64, 64, 64))
    assert path.stat().st_size < 10**6
    with pytest.raises(DataError, match=r"huge.hdf5: 'voxels' declares shape \(1000000, 64, 64, 64\)"):
        read_imnet_hdf5(path)
