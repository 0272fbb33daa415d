from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reprolab.core.errors import DataError
from reprolab.ras.data import generate_scenes, normalize, read_saliency_folder, split_names


def _write_pair(root, name, size=(12, 10), mask_size=None, value=200):
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    image = np.full((size[1], size[0], 3), 90, dtype=np.uint8)
    image[2:5, 3:7] = (250, 20, 20)
    Image.fromarray(image).save(root / "images" / f"{name}.jpg")
    mw, mh = mask_size or size
    mask = np.zeros((mh, mw), dtype=np.uint8)
    mask[2:5, 3:7] = value
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_reader_pairs_files_by_name_and_binarises_masks(tmp_path):
    for name in ("b", "a", "c"):
        _write_pair(tmp_path, name)
    data = read_saliency_folder(tmp_path / "images", tmp_path / "masks")
    assert data.names == ["a", "b", "c"]
    assert data.images.shape == (3, 3, 10, 12) and data.masks.shape == (3, 1, 10, 12)
    assert set(torch.unique(data.masks).tolist()) == {0.0, 1.0}
    assert data.masks[0, 0, 2:5, 3:7].all() and data.masks[0].sum() == 12
    assert data.images.min() >= 0 and data.images.max() <= 1
    resized = read_saliency_folder(tmp_path / "images", tmp_path / "masks", size=32, limit=2)
    assert resized.images.shape == (2, 3, 32, 32) and set(torch.unique(resized.masks).tolist()) == {0.0, 1.0}


def test_reader_names_mismatched_files(tmp_path):
    _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    (tmp_path / "masks" / "b.png").rename(tmp_path / "masks" / "b_gt.png")
    with pytest.raises(DataError, match=r"image\(s\) without a mask.*b\.jpg.*mask\(s\) without an image.*b_gt\.png"):
        read_saliency_folder(tmp_path / "images", tmp_path / "masks")


def test_reader_names_unreadable_files(tmp_path):
    _write_pair(tmp_path, "a")
    (tmp_path / "masks" / "a.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"masks/a\.png: not a readable image"):
        read_saliency_folder(tmp_path / "images", tmp_path / "masks")


def test_reader_resizes_each_mask_to_its_image(tmp_path):
    _write_pair(tmp_path, "a", size=(12, 10), mask_size=(24, 20))  # mask saved at twice the scale
    _write_pair(tmp_path, "b")
    data = read_saliency_folder(tmp_path / "images", tmp_path / "masks")
    assert data.resized_masks == ["a"] and data.masks.shape == (2, 1, 10, 12)
    assert 0 < data.masks[0].sum() < 12 and set(torch.unique(data.masks).tolist()) == {0.0, 1.0}


def test_reader_lists_every_unmatched_pair_at_once(tmp_path):
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        _write_pair(tmp_path, name)
        (tmp_path / "masks" / f"{name}.png").rename(tmp_path / "masks" / f"{name}_gt.png")
    with pytest.raises(DataError, match=r"7 image\(s\) without a mask.*g\.jpg.*7 mask\(s\) without an image.*g_gt"):
        read_saliency_folder(tmp_path / "images", tmp_path / "masks")


def test_split_by_ratio_or_list_file(tmp_path):
    names = [f"n{i}" for i in range(10)]
    train, test = split_names(names, "0.3")
    assert len(test) == 3 and sorted(train + test) == names and split_names(names, "0.3") == (train, test)
    (tmp_path / "test.lst").write_text("n1.jpg\nn4\n")
    assert split_names(names, str(tmp_path / "test.lst"))[1] == ["n1", "n4"]
    (tmp_path / "bad.lst").write_text("zz\n")
    with pytest.raises(DataError, match="zz"):
        split_names(names, str(tmp_path / "bad.lst"))


def test_bgr_mean_normalisation_is_the_caffe_data_layer():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    out = normalize(x, "bgr_mean")
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-104.00699, -116.66877, 255.0 - 122.67892]))


def test_reader_reports_missing_or_empty_folders(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        read_saliency_folder(tmp_path / "nope", tmp_path / "masks")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_saliency_folder(tmp_path / "images", tmp_path / "masks")


def test_generated_scenes_are_deterministic_with_exact_binary_masks():
    a = generate_scenes(6, 48, seed=3)
    b = generate_scenes(6, 48, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, generate_scenes(6, 48, seed=4).images)
    assert a.images.shape == (6, 3, 48, 48) and a.masks.shape == (6, 1, 48, 48)
    assert set(torch.unique(a.masks).tolist()) == {0.0, 1.0}
    coverage = a.masks.mean(dim=(1, 2, 3))
    assert torch.all(coverage > 0.01) and torch.all(coverage < 0.7)


def test_fine_style_adds_thin_parts_and_holes_to_the_masks():
    blobs = generate_scenes(12, 96, seed=5)
    fine = generate_scenes(12, 96, seed=5, style="fine")
    again = generate_scenes(12, 96, seed=5, style="fine")
    assert torch.equal(fine.masks, again.masks) and torch.equal(fine.images, again.images)
    assert set(torch.unique(fine.masks).tolist()) == {0.0, 1.0}

    # thin parts: a larger share of the mask lies within 1 px of its edge than for compact blobs
    def edge_share(masks: torch.Tensor) -> float:
        eroded = 1 - torch.nn.functional.max_pool2d(1 - masks, 3, stride=1, padding=1)
        return float((masks - eroded).sum() / masks.sum())

    assert edge_share(fine.masks) > 1.3 * edge_share(blobs.masks)
    with pytest.raises(ValueError, match="style"):
        generate_scenes(2, 32, seed=0, style="holes")


def test_salient_objects_contrast_more_with_the_background_than_the_rest_of_the_scene():
    data = generate_scenes(20, 64, seed=0)
    gaps = []
    for image, mask in zip(data.images, data.masks[:, 0].bool()):
        background_mean = image[:, ~mask].mean(dim=1, keepdim=True)
        inside = (image[:, mask] - background_mean).norm(dim=0).mean()
        outside = (image[:, ~mask] - background_mean).norm(dim=0).mean()
        gaps.append(float(inside - outside))
    assert min(gaps) > 0.2


def test_normalize_uses_imagenet_statistics():
    x = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(normalize(x), torch.zeros(1, 3, 2, 2), atol=1e-6)


def test_reader_accepts_masks_coded_zero_one(tmp_path):
    _write_pair(tmp_path, "a", value=1)  # a class-index mask (0/1), not 0/255
    _write_pair(tmp_path, "b", value=255)
    data = read_saliency_folder(tmp_path / "images", tmp_path / "masks")
    assert data.masks[0].sum() == 12 and data.masks[1].sum() == 12
    assert torch.equal(data.masks[0], data.masks[1])
    _write_pair(tmp_path, "c", value=100)  # grey levels below the threshold stay background
    assert read_saliency_folder(tmp_path / "images", tmp_path / "masks").masks[2].sum() == 0
