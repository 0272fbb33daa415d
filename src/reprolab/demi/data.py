"""Data for DEMI: correlated Gaussians with known MI, and two augmented views of sklearn's digits.

Correlated Gaussian benchmark (Belghazi et al. 2018; Poole et al. 2019; DEMI Sec. 5.1): ``x, y`` in R^d
with independent coordinate pairs ``(x_i, y_i)``, each standard normal with correlation ``rho``::

    I(x; y) = -d/2 * log(1 - rho^2)   =>   rho = sqrt(1 - exp(-2 I / d)).

Splitting x into ``k`` equal chunks of coordinates gives sub-views that each carry I/k nats, and the
conditional ``y | x_S`` is Gaussian, so conditional negatives can also be drawn exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["CorrelatedGaussian", "DigitsViews", "gaussian_mi", "rho_for_mi"]


def gaussian_mi(rho: float, dim: int) -> float:
    """Analytic MI in nats of ``dim`` independent coordinate pairs with correlation ``rho``."""
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def rho_for_mi(mi: float, dim: int) -> float:
    """The correlation that gives ``mi`` nats over ``dim`` coordinate pairs (inverse of gaussian_mi)."""
    if mi < 0 or dim <= 0:
        raise ValueError(f"need mi >= 0 and dim > 0, got mi={mi}, dim={dim}")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


@dataclass(frozen=True)
class CorrelatedGaussian:
    """The benchmark distribution with ``dim`` coordinate pairs and total MI ``true_mi`` nats."""

    dim: int
    true_mi: float

    @property
    def rho(self) -> float:
        return rho_for_mi(self.true_mi, self.dim)

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``n`` joint samples ``(x, y)``, each ``n x dim``."""
        x = torch.randn(n, self.dim, generator=generator, device=device)
        noise = torch.randn(n, self.dim, generator=generator, device=device)
        y = self.rho * x + math.sqrt(1.0 - self.rho**2) * noise
        return x, y

    def sample_y_given_prefix(self, x: Tensor, prefix_dim: int, count: int, generator: torch.Generator) -> Tensor:
        """``count`` draws of y ~ p(y | x[:, :prefix_dim]) for each row of x: N x count x dim."""
        n = x.shape[0]
        y = torch.randn(n, count, self.dim, generator=generator, device=x.device)
        scale = torch.ones(self.dim, device=x.device)
        scale[:prefix_dim] = math.sqrt(1.0 - self.rho**2)
        mean = torch.zeros(n, 1, self.dim, device=x.device)
        mean[:, 0, :prefix_dim] = self.rho * x[:, :prefix_dim]
        return mean + scale * y

    def subview_dims(self, k: int) -> list[int]:
        """Sizes of ``k`` equal chunks of coordinates (``dim`` must be divisible by ``k``)."""
        if k <= 0 or self.dim % k:
            raise ValueError(f"dim={self.dim} cannot be split into k={k} equal sub-views")
        return [self.dim // k] * k


class DigitsViews:
    """Two random augmentations of sklearn's 8x8 digits (shipped with scikit-learn, 1797 images).

    Augmentation, applied independently to each view: a random translation by up to ``max_shift`` pixels
    (zero padding), a random rectangular occlusion (cutout) of up to half the image side, and Gaussian
    pixel noise. Pixels are scaled to [0, 1].
    """

    def __init__(self, *, max_shift: int = 1, noise: float = 0.1, test_fraction: float = 0.3, seed: int = 0) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.tensor(digits.images / 16.0, dtype=torch.float32)
        labels = torch.tensor(digits.target, dtype=torch.long)
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=digits.target
        )
        self.train_images, self.train_labels = images[train_idx], labels[train_idx]
        self.test_images, self.test_labels = images[test_idx], labels[test_idx]
        self.max_shift = max_shift
        self.noise = noise

    def augment(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """One random view of each image in ``images`` (B x 8 x 8) -> B x 64."""
        b, h, w = images.shape
        shift = self.max_shift
        padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None].expand(b, h, w)
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :].expand(b, h, w)
        views = padded[torch.arange(b)[:, None, None], rows, cols]
        size = torch.randint(0, h // 2 + 1, (b,), generator=generator)
        top = torch.randint(0, h, (b,), generator=generator)
        left = torch.randint(0, w, (b,), generator=generator)
        r = torch.arange(h)[None, :, None]
        c = torch.arange(w)[None, None, :]
        occluded = (
            (r >= top[:, None, None])
            & (r < (top + size)[:, None, None])
            & (c >= left[:, None, None])
            & (c < (left + size)[:, None, None])
        )
        views = views.masked_fill(occluded, 0.0)
        views = views + self.noise * torch.randn(views.shape, generator=generator)
        return views.reshape(b, h * w)

    def batch(self, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two views of ``size`` random training images."""
        index = torch.randint(0, len(self.train_images), (size,), generator=generator)
        images = self.train_images[index]
        return self.augment(images, generator), self.augment(images, generator)
