"""IM-SVR: single-view reconstruction by regressing the frozen IM-AE codes from an image (paper Sec. 3.4).

The paper trains IM-AE first, then an image encoder (a ResNet on 3D-R2N2 renderings in the official code) to
predict each training shape's IM-AE code from one rendered view, with the MSE between the predicted and the
true code; at test time the predicted code is decoded by the frozen implicit decoder. Here the images are
depth-shaded orthographic renderings of the voxel grids (grey = nearer, black background) from a few views
around the shape, and the encoder is a small 2D CNN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from reprolab.core.sweep import Sweep

__all__ = ["ImageEncoder", "predict_codes", "render_depth", "render_views", "svr_directions", "train_svr"]

LEAK = 0.02


def svr_directions(count: int, elevation_deg: float = 30.0) -> np.ndarray:
    """``count`` view directions (from the camera towards the shape's centre, negated: pointing at the camera)
    at a fixed elevation and evenly spaced azimuths starting at 45 degrees (count, 3)."""
    az = np.deg2rad(45.0 + 360.0 * np.arange(count) / max(count, 1))
    el = np.deg2rad(elevation_deg)
    return np.stack([np.cos(el) * np.sin(az), np.full(count, np.sin(el)), np.cos(el) * np.cos(az)], axis=1)


def _surface_cells(grid: np.ndarray) -> np.ndarray:
    occ = np.asarray(grid) > 0
    padded = np.pad(occ, 1)
    interior = occ.copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(occ & ~interior)


def render_depth(grid: np.ndarray, direction: np.ndarray, size: int = 64) -> np.ndarray:
    """Depth-shaded orthographic image (size, size) in [0, 1] of a cell-centred voxel grid in the unit cube, seen
    from ``direction`` (pointing from the shape to the camera). Each surface cell is splatted as 2^3
    sub-points; the image spans [-0.87, 0.87]^2 (the unit cube's circumsphere); 1 = nearest possible depth."""
    res = np.asarray(grid).shape[0]
    cells = _surface_cells(grid)
    image = np.zeros((size, size), dtype=np.float32)
    if len(cells) == 0:
        return image
    offsets = np.array([-0.25, 0.25])
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = (((cells + 0.5)[:, None, :] + sub[None]) / res - 0.5).reshape(-1, 3)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    w = np.cross(d, u)  # image "up"
    half = math.sqrt(3) / 2
    col = np.clip(((pts @ u) / half + 1) / 2 * size, 0, size - 1).astype(np.int64)
    row = np.clip((1 - (pts @ w) / half) / 2 * size, 0, size - 1).astype(np.int64)
    nearness = ((pts @ d) / half + 1) / 2  # 1 = towards the camera
    flat = np.zeros(size * size)
    np.maximum.at(flat, row * size + col, 0.2 + 0.8 * nearness)
    return flat.reshape(size, size).astype(np.float32)


def render_views(voxels: np.ndarray, directions: np.ndarray, size: int = 64) -> np.ndarray:
    """Images (N, V, 1, size, size) of N grids from V directions."""
    return np.stack([[render_depth(g, d, size)[None] for d in directions] for g in voxels])


class ImageEncoder(nn.Module):
    """A small 2D CNN image encoder (stand-in for the official ResNet): stride-2 4x4 convolutions with
    instance norm and leaky ReLU down to 4x4, then a linear layer to ``z_dim`` and a sigmoid (IM-AE codes lie
    in (0, 1))."""

    def __init__(self, size: int = 64, z_dim: int = 128, width: int = 16) -> None:
        super().__init__()
        stages = int(round(math.log2(size / 4)))
        if size < 8 or 4 * 2**stages != size:
            raise ValueError(f"image size must be a power of two >= 8, got {size}")
        layers: list[nn.Module] = []
        channels = 1
        for stage in range(stages):
            out = width * 2 ** min(stage, 3)
            layers += [
                nn.Conv2d(channels, out, 4, stride=2, padding=1, bias=False),
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(LEAK),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels * 16, z_dim)

    def forward(self, images: Tensor) -> Tensor:
        return torch.sigmoid(self.head(self.features(images).flatten(1)))


def train_svr(
    sweep: Sweep,
    unit: str,
    model: ImageEncoder,
    images: Tensor,
    codes: Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    checkpoint_every: int = 0,
    log_every: int = 50,
) -> None:
    """IM-SVR training (Sec. 3.4): ``images`` (N, V, 1, S, S), ``codes`` (N, z_dim) of the frozen IM-AE; each step
    takes ``batch_size`` random (shape, view) pairs and minimises ``||E(image) - z||^2`` (mean), Adam."""
    if images.shape[0] != codes.shape[0]:
        raise ValueError(f"{images.shape[0]} shapes of images but {codes.shape[0]} codes")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    n, views = images.shape[:2]
    device = images.device

    def loss_fn(step: int) -> Tensor:
        shapes = torch.randint(0, n, (batch_size,), generator=generator).to(device)
        view = torch.randint(0, views, (batch_size,), generator=generator).to(device)
        return torch.mean((model(images[shapes, view]) - codes[shapes]) ** 2)

    sweep.minimise(
        unit,
        steps=steps,
        loss_fn=loss_fn,
        model=model,
        optimizer=optimizer,
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )


def predict_codes(model: ImageEncoder, images: Tensor, batch: int = 64) -> Tensor:
    """Codes predicted from (N, 1, S, S) images, in batches, without gradients."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(images[i : i + batch]) for i in range(0, len(images), batch)])
