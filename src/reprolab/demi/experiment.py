"""Registration of the DEMI experiment: the MI sweep on correlated Gaussians and the digits probe.

Kept light to import: the model and training code load inside :func:`run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reprolab.core.claims import Claim
from reprolab.core.config import ConfigError, bounded
from reprolab.core.data import DatasetInfo
from reprolab.core.registry import Experiment, Paper, register

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["DEMIConfig", "EXPERIMENT"]

PAPER = Paper(
    title="Decomposed Mutual Information Estimation for Contrastive Representation Learning",
    authors="Sordoni, Dziri, Schulz, Gordon, Bachman, Tachet des Combes",
    venue="ICML 2021 (PMLR 139)",
    year=2021,
    url="https://arxiv.org/abs/2106.13401",
)


@dataclass
class DEMIConfig:
    """Settings of the DEMI experiment (defaults = the quick preset)."""

    dim: int = bounded(20, ge=1)  # coordinate pairs of the Gaussian benchmark; divisible by every k
    # one true MI below 2 log N (no DEMI term set capped) and two above (InfoNCE capped at log N)
    true_mis: list[float] = bounded(factory=lambda: [4.0, 10.0, 20.0], gt=0)
    ks: list[int] = bounded(factory=lambda: [2, 4], ge=1)  # DEMI sub-view counts (importance-sampled I_IS)
    exact_ks: list[int] = bounded(factory=lambda: [2, 4], ge=1)  # DEMI, exact conditional negatives (I_CNCE)
    extra_baselines: list[str] = field(default_factory=list)  # any of: nwj, dv
    critic: str = "separable"  # separable | bilinear | concat
    hidden: int = bounded(128, ge=1)
    embed: int = bounded(64, ge=1)
    layers: int = bounded(2, ge=1)
    batch_size: int = bounded(32, ge=2)  # N: InfoNCE capped at log N; exact negatives cost N (N-1) calls/step
    steps: int = bounded(600, ge=0)
    lr: float = bounded(5e-4, gt=0)
    eval_batches: int = bounded(25, ge=2)
    error_z: float = bounded(3.0, gt=0)  # "statistical error" = error_z standard errors of the evaluation mean
    checkpoint_every: int = bounded(200, ge=0)
    digits: bool = True
    digits_steps: int = bounded(800, ge=0)
    digits_batch_size: int = bounded(256, ge=2)
    digits_lr: float = bounded(1e-3, gt=0)

    def validate(self) -> None:
        if self.dim <= 0 or self.batch_size < 2 or self.steps < 0 or self.eval_batches < 2:
            raise ConfigError("dim > 0, batch_size >= 2, steps >= 0 and eval_batches >= 2 are required")
        for k in [*self.ks, *self.exact_ks]:
            if k < 1 or self.dim % k:
                raise ConfigError(f"ks: every k must divide dim={self.dim}, got k={k}")
        for name in self.extra_baselines:
            if name not in ("nwj", "dv"):
                raise ConfigError(f"extra_baselines: unknown estimator {name!r}; valid: nwj, dv")
        if self.critic not in ("separable", "bilinear", "concat"):
            raise ConfigError(f"critic: {self.critic!r} is not one of separable, bilinear, concat")
        if any(mi <= 0 for mi in self.true_mis):
            raise ConfigError("true_mis: every true MI must be > 0 nats")


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # The paper's synthetic settings could not be verified here (docs/demi.md#paper-and-presets); this preset is the
    # same protocol at a scale that trains the critics to convergence, with the extra baselines.
    "paper": {
        "true_mis": [2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0],
        "ks": [2, 4, 5, 10],
        "exact_ks": [2, 4],
        "extra_baselines": ["nwj", "dv"],
        "batch_size": 128,
        "hidden": 256,
        "steps": 20000,
        "eval_batches": 200,
        "checkpoint_every": 2000,
        "digits_steps": 10000,
    },
}


def mi_tag(mi: float) -> str:
    return f"{mi:g}".replace(".", "p")


def estimator_names(config: DEMIConfig) -> list[tuple[str, str, int]]:
    """(metric prefix, estimator, k) for every estimator in the sweep."""
    names = [("infonce", "infonce", 1)]
    names += [(f"demi_k{k}", "demi", k) for k in config.ks]
    names += [(f"demi_exact_k{k}", "demi_exact", k) for k in config.exact_ks]
    names += [(name, name, 1) for name in config.extra_baselines]
    return names


def run(config: DEMIConfig, ctx: RunContext) -> Mapping[str, float]:
    from reprolab.demi.pipeline import run_demi

    return run_demi(config, ctx)


def _infonce_capped(metrics: Mapping[str, float]) -> tuple[bool, float, str]:
    excess = float(metrics["infonce_max_minus_log_n"])
    return excess <= 1e-9, excess, "I_NCE = log N + mean log-softmax of the positive <= log N (arithmetic)"


CLAIMS = (
    Claim.check(
        "infonce_below_log_n",
        "InfoNCE never exceeds log N, at any true MI (holds by construction: a check of the implementation)",
        _infonce_capped,
        requires=("infonce_max_minus_log_n",),
    ),
    # The paper's decomposed bound: I_NCE(x''; y) + I_CNCE(x'; y | x'') with negatives from p(y | x''), which the
    # Gaussian benchmark samples exactly (DEMI-exact). I_IS, its importance-sampled approximation, is not a bound: it
    # overshot the true MI by about 2 nats at N = 128 (k = 4, true MI 6); at quick (N = 32) it stays within 3 SE on
    # seeds 0-1 of session 16 (docs/notes/demi.md#when-no-estimate-above-the-true-mi-fails), so no "beats InfoNCE"
    # claim rests on it.
    *(
        Claim.compare(
            f"demi_exact_k{k}_beats_infonce_at_high_mi",
            f"DEMI (k={k}, exact conditional negatives) estimates more MI than InfoNCE at every true MI >= 2 log N",
            f"demi_exact_k{k}_min_gain_high_mi", ">", 0.0,
        )
        for k in (2, 4)
    ),
    Claim.compare(
        "more_subviews_capture_more",
        "DEMI (exact negatives) with k=4 captures more MI than with k=2 at the largest true MI <= 2 log N, where "
        "neither is capped (k log N) and the gap is not settled by the caps",
        "demi_exact_k4_minus_k2_below_cap", ">", 0.0,
    ),
    Claim.compare(
        "bounds_stay_below_true_mi",
        "The lower bounds (InfoNCE, DEMI with exact negatives) never exceed the true MI by more than error_z "
        "standard errors",
        "bounds_max_excess_over_true_mi", "<=", 0.0,
    ),
    Claim.compare(
        "no_estimate_above_true_mi",
        "No estimate run (importance-sampled DEMI included) exceeds the true MI by more than error_z standard errors",
        "max_excess_over_true_mi", "<=", 0.0,
    ),
    Claim.compare(
        "demi_representation_beats_infonce",
        "Digits: a linear probe on DEMI-trained features is more accurate than on InfoNCE-trained ones",
        "digits_probe_acc_demi", ">", "digits_probe_acc_infonce",
    ),
)

EXPERIMENT = register(
    Experiment(
        name="demi",
        paper=PAPER,
        description="Decomposed MI estimation (chain rule + conditional contrastive bound) vs InfoNCE",
        config_cls=DEMIConfig,
        presets=PRESETS,
        run=run,
        claims=CLAIMS,
        # quick: 66.3 and 59.5 CPU-s for seeds 0 and 1 (125.8 in all) in session 16's fresh-clone reproduce (code
        # cb112c7; 67.0 and 62.6 in session 12's), within the ~220 CPU-s budget
        seeds={"quick": 2},
        datasets=(
            DatasetInfo(
                name="correlated-gaussian",
                presets=("quick", "paper"),
                description="correlated Gaussian views with analytic MI, generated in memory",
                source="generated by reprolab.demi.data.CorrelatedGaussian",
                subdir="",
                embedded=True,
            ),
            DatasetInfo(
                name="sklearn-digits",
                presets=("quick", "paper"),
                description="1797 8x8 digit images shipped with scikit-learn (two augmented views)",
                source="sklearn.datasets.load_digits",
                subdir="",
                embedded=True,
            ),
        ),
        summary_metrics=(
            "infonce_max_minus_log_n",
            "demi_exact_k2_min_gain_high_mi",
            "demi_exact_k4_min_gain_high_mi",
            "demi_exact_k4_minus_k2_below_cap",
            "bounds_max_excess_over_true_mi",
            "max_excess_over_true_mi",
            "digits_probe_acc_infonce",
            "digits_probe_acc_demi",
        ),
    )
)
