"""IM-NET networks: the 3D CNN encoder, the implicit decoder, the CNN-AE baseline and the latent WGAN-GP.

Paper (Chen & Zhang, CVPR 2019), Sec. 3 / Fig. 2: the implicit decoder maps the concatenation of a shape code
``z`` and a point ``p`` to the probability that ``p`` is inside the shape. Two variants:

* ``paper``: hidden widths ``gf * (16, 8, 4, 2, 1)`` (2048-1024-512-256-128 for gf=128), the input ``(z, p)``
  concatenated to the input of every hidden layer after the first (skip connections), leaky ReLU (slope 0.02) and
  a sigmoid output. The output layer reads the last hidden layer (128) only: the paper's supplementary
  ``network-structure.pdf`` (IM-AE decoder table: "fully-connected, -, (128), Sigmoid, (1)") and the paper-era
  code (czq142857/implicit-decoder, ``IMGAN/model.py`` and ``IMSVR/model.py``: ``h6 = sigmoid(linear(h5, 1))``).
  ``output_skip=True`` also concatenates ``(z, p)`` to the output layer's input (a variant, not the paper).
* ``official`` (the improved IM-NET / IM-NET-pytorch code): widths ``gf * (8, 8, 8, 4, 2, 1)``
  (1024-1024-1024-512-256-128), no skips, leaky ReLU (0.02), and the output clipped to [0, 1] with a
  leaky clip ``max(min(h, 0.01 h + 0.99), 0.01 h)`` instead of a sigmoid.

The encoder (Sec. 3.2, IM-AE) is a 3D CNN with 4^3 kernels and stride 2 halving the resolution down to 4^3,
then a 4^3 valid convolution to ``z``; batch norm (the paper's supplementary network table, ``norm="batch"``) or
instance norm (IM-NET-pytorch, the default) + leaky ReLU between layers, and a sigmoid on ``z``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "CNNAE",
    "IMAE",
    "CNNDecoder",
    "ImplicitDecoder",
    "LatentCritic",
    "LatentGenerator",
    "VoxelEncoder",
    "gradient_penalty",
]

LEAK = 0.02


def _stages(res: int) -> int:
    stages = int(round(math.log2(res / 4)))
    if res < 8 or 4 * 2**stages != res:
        raise ValueError(f"voxel resolution must be a power of two >= 8, got {res}")
    return stages


class VoxelEncoder(nn.Module):
    """3D CNN: (B, 1, R, R, R) voxels -> (B, z_dim) codes in (0, 1). Five conv layers at R=64 (ef, 2ef, 4ef, 8ef)."""

    def __init__(self, res: int = 64, ef_dim: int = 32, z_dim: int = 128, norm: str = "instance") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for stage in range(_stages(res)):
            out = ef_dim * 2 ** min(stage, 3)
            layers += [
                nn.Conv3d(channels, out, 4, stride=2, padding=1, bias=False),
                _norm3d(norm, out),
                nn.LeakyReLU(LEAK),
            ]
            channels = out
        layers.append(nn.Conv3d(channels, z_dim, 4, stride=1, padding=0, bias=True))
        self.net = nn.Sequential(*layers)

    def forward(self, voxels: Tensor) -> Tensor:
        return torch.sigmoid(self.net(voxels).flatten(1))


def _norm3d(norm: str, channels: int) -> nn.Module:
    """Batch norm (the paper's supplementary network table) or instance norm (IM-NET-pytorch)."""
    if norm == "batch":
        return nn.BatchNorm3d(channels)
    if norm == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")


def leaky_clip(h: Tensor) -> Tensor:
    """The official decoder's output: ``max(min(h, 0.01 h + 0.99), 0.01 h)`` (gradient never fully vanishes)."""
    return torch.maximum(torch.minimum(h, h * 0.01 + 0.99), h * 0.01)


class ImplicitDecoder(nn.Module):
    """The implicit field decoder F(z, p) -> inside probability (paper Fig. 2; see module docstring)."""

    def __init__(
        self,
        z_dim: int = 128,
        gf_dim: int = 128,
        variant: str = "paper",
        point_dim: int = 3,
        output_skip: bool = False,
    ) -> None:
        super().__init__()
        if variant not in ("paper", "official"):
            raise ValueError(f"decoder variant must be 'paper' or 'official', got {variant!r}")
        self.variant = variant
        self.output_skip = output_skip
        mults = (16, 8, 4, 2, 1) if variant == "paper" else (8, 8, 8, 4, 2, 1)
        widths = [gf_dim * m for m in mults]
        in_dim = z_dim + point_dim
        self.layers = nn.ModuleList()
        previous = in_dim
        for width in widths:
            self.layers.append(nn.Linear(previous + (in_dim if variant == "paper" and self.layers else 0), width))
            previous = width
        self.out = nn.Linear(previous + (in_dim if output_skip else 0), 1)
        self.widths = widths

    def forward(self, z: Tensor, points: Tensor) -> Tensor:
        """``z`` (B, z_dim), ``points`` (B, M, 3) -> values (B, M, 1).

        Every layer that reads the input ``(z, p)`` is computed as ``W_h h + W_z z + W_p p + b`` with ``W_z z``
        once per shape: the same function as concatenating ``(z, p)`` to the layer input, without
        materialising the (B, M, z_dim) concatenation for every point.
        """
        z_dim = z.shape[-1]
        h: Tensor | None = None
        for index, layer in enumerate(self.layers):
            h = nn.functional.leaky_relu(
                self._affine(layer, h, z, points, z_dim, reads_input=index == 0 or self.variant == "paper"), LEAK
            )
        out = self._affine(self.out, h, z, points, z_dim, reads_input=self.output_skip)
        return torch.sigmoid(out) if self.variant == "paper" else leaky_clip(out)

    @staticmethod
    def _affine(layer: nn.Linear, h: Tensor | None, z: Tensor, points: Tensor, z_dim: int, reads_input: bool) -> Tensor:
        weight = layer.weight
        if not reads_input:
            return nn.functional.linear(h, weight, layer.bias)
        k = 0 if h is None else h.shape[-1]
        out = nn.functional.linear(points, weight[:, k + z_dim :])
        out = out + nn.functional.linear(z, weight[:, k : k + z_dim], layer.bias)[:, None, :]
        if h is not None:
            out = out + nn.functional.linear(h, weight[:, :k])
        return out


class IMAE(nn.Module):
    """IM-AE: voxel encoder + implicit decoder, trained with MSE on point values (Sec. 3.2, Eq. 1)."""

    def __init__(
        self,
        res: int = 64,
        ef_dim: int = 32,
        z_dim: int = 128,
        gf_dim: int = 128,
        variant: str = "paper",
        output_skip: bool = False,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        self.encoder = VoxelEncoder(res, ef_dim, z_dim, norm)
        self.decoder = ImplicitDecoder(z_dim, gf_dim, variant, output_skip=output_skip)

    def forward(self, voxels: Tensor, points: Tensor) -> Tensor:
        return self.decoder(self.encoder(voxels), points)


class CNNDecoder(nn.Module):
    """The CNN-AE baseline decoder (Table 1): z -> 4^3 by a 4^3 deconvolution, then stride-2 3D deconvolutions
    mirroring the encoder up to R^3, batch-free instance norm + leaky ReLU, sigmoid output."""

    def __init__(self, res: int = 64, gf_dim: int = 32, z_dim: int = 128, norm: str = "instance") -> None:
        super().__init__()
        stages = _stages(res)
        widths = [gf_dim * 2 ** min(s, 3) for s in reversed(range(stages))]
        layers: list[nn.Module] = [
            nn.ConvTranspose3d(z_dim, widths[0], 4, stride=1, padding=0, bias=False),
            _norm3d(norm, widths[0]),
            nn.LeakyReLU(LEAK),
        ]
        for index in range(stages):
            out = widths[index + 1] if index + 1 < stages else 1
            layers.append(nn.ConvTranspose3d(widths[index], out, 4, stride=2, padding=1, bias=index + 1 == stages))
            if index + 1 < stages:
                layers += [_norm3d(norm, out), nn.LeakyReLU(LEAK)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.net(z[:, :, None, None, None]))


class CNNAE(nn.Module):
    """CNN-AE: the same voxel encoder with a 3D deconvolution decoder at the same latent size."""

    def __init__(
        self, res: int = 64, ef_dim: int = 32, z_dim: int = 128, gf_dim: int = 32, norm: str = "instance"
    ) -> None:
        super().__init__()
        self.encoder = VoxelEncoder(res, ef_dim, z_dim, norm)
        self.decoder = CNNDecoder(res, gf_dim, z_dim, norm)

    def forward(self, voxels: Tensor) -> Tensor:
        return self.decoder(self.encoder(voxels))


class LatentGenerator(nn.Module):
    """IM-GAN generator (Sec. 3.3; latent-GAN of Achlioptas et al.): noise -> code, two hidden FC layers."""

    def __init__(self, noise_dim: int = 128, z_dim: int = 128, hidden: int = 2048) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(noise_dim, hidden),
            nn.LeakyReLU(LEAK),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(LEAK),
            nn.Linear(hidden, z_dim),
            nn.Sigmoid(),  # codes of the encoder lie in (0, 1)
        )

    def forward(self, noise: Tensor) -> Tensor:
        return self.net(noise)


class LatentCritic(nn.Module):
    """IM-GAN critic (WGAN-GP): code -> score, two hidden FC layers."""

    def __init__(self, z_dim: int = 128, hidden: int = 2048) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.LeakyReLU(LEAK),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(LEAK),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``E[(||grad D(x_hat)||_2 - 1)^2]`` on random interpolates."""
    alpha = torch.rand(real.shape[0], 1, generator=generator).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.norm(dim=1) - 1.0) ** 2).mean()
