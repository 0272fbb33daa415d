"""Training loops: progressive IM-AE (Sec. 3.2), the CNN-AE baseline, and IM-GAN's latent WGAN-GP (Sec. 3.3).

All loops run through :meth:`reprolab.core.sweep.Sweep.train`, so they resume from checkpoints, and draw
every random index from their own generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from reprolab.core.sweep import Sweep
from reprolab.imnet.model import CNNAE, IMAE, LatentCritic, LatentGenerator, gradient_penalty

__all__ = [
    "decode_field",
    "encode",
    "resolution_at",
    "train_cnnae",
    "train_imae",
    "train_latent_gan",
]


def resolution_at(step: int, schedule: Sequence[tuple[int, int]]) -> int:
    """The point-sampling resolution used at ``step`` of a progressive ``[(res, steps), ...]`` schedule.

    Progressive training (Sec. 3.2): train on 16^3 samples, then continue on 32^3, then on 64^3.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    seen = 0
    for res, steps in schedule:
        seen += steps
        if step < seen:
            return res
    raise ValueError(f"step {step} is past the schedule's {seen} steps")


def train_imae(
    sweep: Sweep,
    unit: str,
    model: IMAE,
    voxels: Tensor,
    point_sets: dict[int, tuple[Tensor, Tensor]],
    *,
    schedule: Sequence[tuple[int, int]],
    batch_shapes: int,
    batch_points: int,
    lr: float,
    beta1: float,
    generator: torch.Generator,
    checkpoint_every: int = 0,
    log_every: int = 50,
) -> None:
    """Progressive IM-AE training: MSE between decoded and true point values (Eq. 1), Adam.

    ``voxels`` (N, 1, R, R, R) encoder inputs; ``point_sets[res] = (points (N, M, 3), values (N, M, 1))``.
    Each step takes ``batch_shapes`` shapes and ``batch_points`` of their points at the current resolution
    (the official code feeds all M points of a shape; a random subset keeps CPU steps short).
    """
    for res, _ in schedule:
        if res not in point_sets:
            raise ValueError(f"schedule needs point samples at {res}^3; have {sorted(point_sets)}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, 0.999), foreach=True)
    device = voxels.device
    n_shapes = voxels.shape[0]
    total = sum(steps for _, steps in schedule)

    def loss_fn(step: int) -> tuple[Tensor, dict[str, float]]:
        res = resolution_at(step, schedule)
        points, values = point_sets[res]
        shapes = torch.randint(0, n_shapes, (batch_shapes,), generator=generator).to(device)
        m = points.shape[1]
        chosen = torch.randint(0, m, (batch_shapes, min(batch_points, m)), generator=generator).to(device)
        p = torch.gather(points[shapes], 1, chosen[..., None].expand(-1, -1, 3))
        v = torch.gather(values[shapes], 1, chosen[..., None])
        return torch.mean((model(voxels[shapes], p) - v) ** 2), {"res": float(res)}

    sweep.minimise(
        unit,
        steps=total,
        loss_fn=loss_fn,
        model=model,
        optimizer=optimizer,
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )


def train_cnnae(
    sweep: Sweep,
    unit: str,
    model: CNNAE,
    voxels: Tensor,
    *,
    steps: int,
    batch_shapes: int,
    lr: float,
    beta1: float,
    generator: torch.Generator,
    checkpoint_every: int = 0,
    log_every: int = 50,
) -> None:
    """CNN-AE baseline: MSE between the decoded voxel grid and the input grid, Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, 0.999), foreach=True)
    n_shapes = voxels.shape[0]

    def loss_fn(step: int) -> Tensor:
        shapes = torch.randint(0, n_shapes, (batch_shapes,), generator=generator).to(voxels.device)
        target = voxels[shapes]
        return torch.mean((model(target) - target) ** 2)

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


class _GAN(nn.Module):
    def __init__(self, generator: LatentGenerator, critic: LatentCritic) -> None:
        super().__init__()
        self.generator = generator
        self.critic = critic


def train_latent_gan(
    sweep: Sweep,
    unit: str,
    gen: LatentGenerator,
    critic: LatentCritic,
    codes: Tensor,
    *,
    steps: int,
    batch_size: int,
    noise_dim: int,
    n_critic: int,
    noise_std: float = 1.0,
    beta2: float = 0.9,
    gp_weight: float,
    lr: float,
    generator: torch.Generator,
    checkpoint_every: int = 0,
    log_every: int = 50,
) -> None:
    """IM-GAN: WGAN-GP on the autoencoder's codes (``n_critic`` critic steps per generator step).

    Critic loss ``D(fake) - D(real) + gp_weight * GP``; generator loss ``-D(fake)``; Adam(lr, betas=(0.5, beta2));
    noise ``N(0, noise_std^2)`` (the paper-era code: std 0.2, beta2 0.999, one critic step; Gulrajani et al.:
    beta2 0.9, five critic steps).
    """
    gan = _GAN(gen, critic)
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, beta2), foreach=True)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, beta2), foreach=True)
    both = _JointOptimizer(opt_d, opt_g)
    device = codes.device

    def noise(n: int) -> Tensor:
        return (noise_std * torch.randn(n, noise_dim, generator=generator)).to(device)

    def step_fn(step: int) -> dict[str, float]:
        for _ in range(n_critic):
            real = codes[torch.randint(0, len(codes), (batch_size,), generator=generator).to(device)]
            with torch.no_grad():  # the critic step needs no generator graph
                fake = gen(noise(batch_size))
            gp = gradient_penalty(critic, real, fake, generator=generator)
            scores = critic(torch.cat([real, fake]))  # one forward pass for both halves
            wasserstein = scores[:batch_size].mean() - scores[batch_size:].mean()
            loss_d = -wasserstein + gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = -critic(gen(noise(batch_size))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"wasserstein": wasserstein.item(), "gp": gp.item(), "loss_g": loss_g.item()}

    sweep.train(
        unit,
        steps=steps,
        step_fn=step_fn,
        model=gan,
        optimizer=both,  # type: ignore[arg-type]
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )


class _JointOptimizer:
    """Two optimisers checkpointed as one (what :meth:`Sweep.train` expects)."""

    def __init__(self, first: torch.optim.Optimizer, second: torch.optim.Optimizer) -> None:
        self.first, self.second = first, second

    def state_dict(self) -> dict:
        return {"first": self.first.state_dict(), "second": self.second.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.first.load_state_dict(state["first"])
        self.second.load_state_dict(state["second"])


@torch.no_grad()
def encode(encoder: nn.Module, voxels: Tensor, batch: int = 32) -> Tensor:
    """Codes of (N, 1, R, R, R) voxels, in batches."""
    return torch.cat([encoder(voxels[i : i + batch]) for i in range(0, len(voxels), batch)])


def decode_field(decoder: nn.Module, z: Tensor, chunk: int = 32768) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy field ``points (M, 3) -> values (M,)`` for one code ``z`` (z_dim,), evaluated in chunks."""
    device = z.device

    @torch.no_grad()
    def field(points: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(points), chunk):
            p = torch.from_numpy(np.ascontiguousarray(points[start : start + chunk])).to(device)
            out.append(decoder(z[None], p[None])[0, :, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    return field
