"""Training and evaluation of MI estimators (Gaussian benchmark) and of DEMI representations (digits)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reprolab.core.sweep import Sweep
from reprolab.demi.data import CorrelatedGaussian, DigitsViews
from reprolab.demi.model import (
    DEMIEstimator,
    InfoNCEEstimator,
    dv_lower_bound,
    infonce_lower_bound,
    make_critic,
    mlp,
    nwj_lower_bound,
)

__all__ = [
    "ESTIMATORS",
    "DigitsEncoderObjective",
    "MIEstimate",
    "build_estimator",
    "evaluate_estimator",
    "fit_linear_probe",
    "train_estimator",
]

ESTIMATORS = ("infonce", "demi", "demi_exact", "nwj", "dv")


class _MatrixBound(nn.Module):
    """A single-critic estimator from a score-matrix bound (NWJ, DV)."""

    def __init__(self, bound: Callable[[Tensor], Tensor], dim_x: int, dim_y: int, critic: str, **kwargs: int) -> None:
        super().__init__()
        self.bound = bound
        self.critic = make_critic(critic, dim_x, dim_y, **kwargs)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.bound(self.critic(x, y)).mean()


def build_estimator(
    name: str, dim: int, *, k: int = 1, critic: str = "separable", hidden: int = 256, embed: int = 64, layers: int = 2
) -> nn.Module:
    """An estimator by name: ``infonce``, ``demi``/``demi_exact`` (``k`` equal sub-views), ``nwj`` or ``dv``.

    ``demi_exact`` is the same module as ``demi``; :func:`estimate_on_batch` trains and evaluates it with
    exact conditional negatives instead of importance sampling.
    """
    kwargs = {} if critic == "bilinear" else {"hidden": hidden, "layers": layers}
    if critic == "separable":
        kwargs["embed"] = embed
    if name == "infonce":
        return InfoNCEEstimator(dim, dim, critic=critic, **kwargs)
    if name in ("demi", "demi_exact"):
        if dim % k:
            raise ValueError(f"dim={dim} is not divisible by k={k}")
        return DEMIEstimator([dim // k] * k, dim, critic=critic, **kwargs)
    if name == "nwj":
        return _MatrixBound(nwj_lower_bound, dim, dim, critic, **kwargs)
    if name == "dv":
        return _MatrixBound(dv_lower_bound, dim, dim, critic, **kwargs)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {name!r}")


def train_estimator(
    sweep: Sweep,
    unit: str,
    estimator: nn.Module,
    benchmark: CorrelatedGaussian,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device: torch.device,
    checkpoint_every: int = 0,
    log_every: int = 100,
    exact_negatives: int = 0,
) -> None:
    """Maximise the estimator's bound on fresh samples every step (Adam), resumable through ``sweep``.

    ``exact_negatives > 0`` trains a :class:`DEMIEstimator` with that many exact conditional negatives.
    """

    def bound_on_fresh_batch() -> Tensor:
        x, y = benchmark.sample(batch_size, generator, device)
        return estimate_on_batch(estimator, x, y, benchmark, generator, exact_negatives)

    maximise_bound(
        sweep,
        unit,
        estimator,
        bound_on_fresh_batch,
        steps=steps,
        lr=lr,
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )


def maximise_bound(
    sweep: Sweep,
    unit: str,
    model: nn.Module,
    bound_on_fresh_batch: Callable[[], Tensor],
    *,
    steps: int,
    lr: float,
    generator: torch.Generator,
    checkpoint_every: int = 0,
    log_every: int = 100,
) -> None:
    """Gradient ascent (Adam) on a bound evaluated on a fresh batch each step, resumable through ``sweep``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)

    def step(_: int) -> dict[str, float]:
        estimate = bound_on_fresh_batch()
        optimizer.zero_grad(set_to_none=True)
        (-estimate).backward()
        optimizer.step()
        return {"train_estimate": estimate.item()}

    model.train()
    sweep.train(
        unit,
        steps=steps,
        step_fn=step,
        model=model,
        optimizer=optimizer,
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )


def estimate_on_batch(
    estimator: nn.Module,
    x: Tensor,
    y: Tensor,
    benchmark: CorrelatedGaussian,
    generator: torch.Generator,
    exact_negatives: int = 0,
) -> Tensor:
    """The estimator's bound on one batch; with ``exact_negatives`` DEMI uses I_CNCE, not I_IS."""
    if exact_negatives <= 0:
        return estimator(x, y)
    if not isinstance(estimator, DEMIEstimator):
        raise TypeError("exact conditional negatives apply to DEMIEstimator only")
    return estimator.forward_exact(
        x, y, lambda xs, prefix: benchmark.sample_y_given_prefix(xs, prefix, exact_negatives, generator)
    )


@dataclass(frozen=True)
class MIEstimate:
    """Mean of a bound over independent evaluation batches, with its standard error."""

    mean: float
    stderr: float
    batches: int


@torch.no_grad()
def evaluate_estimator(
    estimator: nn.Module,
    benchmark: CorrelatedGaussian,
    *,
    batch_size: int,
    batches: int,
    generator: torch.Generator,
    device: torch.device,
    exact_negatives: int = 0,
) -> MIEstimate:
    """Evaluate the trained bound on ``batches`` fresh batches of ``batch_size`` samples."""
    estimator.eval()
    values = []
    for _ in range(batches):
        x, y = benchmark.sample(batch_size, generator, device)
        values.append(float(estimate_on_batch(estimator, x, y, benchmark, generator, exact_negatives)))
    tensor = torch.tensor(values, dtype=torch.float64)
    stderr = float(tensor.std(unbiased=True) / math.sqrt(batches)) if batches > 1 else float("nan")
    return MIEstimate(float(tensor.mean()), stderr, batches)


# -- representation learning on digits -----------------------------------------------------------


def coarse_view(views: Tensor, side: int = 8) -> Tensor:
    """x'': the 2x2 average-pooled (4x4) view, upsampled back to 8x8 so a shared encoder reads it.

    x'' is a deterministic function of x carrying less information, as the decomposition requires.
    """
    images = views.reshape(-1, 1, side, side)
    pooled = torch.nn.functional.avg_pool2d(images, 2)
    return torch.nn.functional.interpolate(pooled, scale_factor=2, mode="nearest").reshape(-1, side * side)


class DigitsEncoderObjective(nn.Module):
    """A shared encoder E and projection heads; objective InfoNCE or DEMI (k=2) between two views.

    InfoNCE: I_NCE(x; y) with critic g(E(x))^T h(E(y)).
    DEMI:    I_NCE(x''; y) + I_IS(x; y | x''), x'' = :func:`coarse_view` (x), critics
             psi = g''(E(x''))^T h(E(y)) and phi = g(E(x))^T h(E(y)).
    """

    def __init__(self, objective: str, *, in_dim: int = 64, hidden: int = 256, rep_dim: int = 64) -> None:
        super().__init__()
        if objective not in ("infonce", "demi"):
            raise ValueError(f"objective must be 'infonce' or 'demi', got {objective!r}")
        self.objective = objective
        self.encoder = mlp(in_dim, hidden, rep_dim, 2)
        self.head_x = mlp(rep_dim, hidden, rep_dim, 1)
        self.head_y = mlp(rep_dim, hidden, rep_dim, 1)
        self.head_coarse = mlp(rep_dim, hidden, rep_dim, 1) if objective == "demi" else None

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        from reprolab.demi.model import conditional_infonce_is

        key = self.head_y(self.encoder(y))
        phi = self.head_x(self.encoder(x)) @ key.T
        if self.head_coarse is None:
            return infonce_lower_bound(phi).mean()
        psi = self.head_coarse(self.encoder(coarse_view(x))) @ key.T
        return infonce_lower_bound(psi).mean() + conditional_infonce_is(phi, psi).mean()

    @torch.no_grad()
    def represent(self, images: Tensor) -> Tensor:
        self.eval()
        return self.encoder(images.reshape(images.shape[0], -1))


def fit_linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, seed: int) -> float:
    """Test accuracy of a logistic-regression probe on frozen (standardised) representations."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_x.cpu().numpy(), train_y.cpu().numpy())
    return float(probe.score(test_x.cpu().numpy(), test_y.cpu().numpy()))


def train_digits_encoder(
    sweep: Sweep,
    unit: str,
    model: DigitsEncoderObjective,
    data: DigitsViews,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device: torch.device,
    checkpoint_every: int = 0,
) -> None:
    def bound_on_fresh_batch() -> Tensor:
        x, y = data.batch(batch_size, generator)
        return model(x.to(device), y.to(device))

    maximise_bound(
        sweep,
        unit,
        model,
        bound_on_fresh_batch,
        steps=steps,
        lr=lr,
        generator=generator,
        checkpoint_every=checkpoint_every,
    )
