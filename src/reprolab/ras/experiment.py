"""Registration of the RAS experiment: reverse attention vs the no-reverse-attention ablation on
generated salient-object scenes (or a real image/mask folder), plus model size and speed.

Kept light to import: the model, data and training code load inside :func:`run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprolab.core.claims import Claim
from reprolab.core.config import MAX_SEED, bounded
from reprolab.core.data import DatasetInfo
from reprolab.core.errors import ConfigError
from reprolab.core.registry import Experiment, Paper, register

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["EXPERIMENT", "PAPER_FPS", "PAPER_SIZE_MB", "RASConfig"]

PAPER = Paper(
    title="Reverse Attention for Salient Object Detection",
    authors="Chen, Tan, Wang, Hu",
    venue="ECCV 2018",
    year=2018,
    url="https://arxiv.org/abs/1807.09940",
)

PAPER_SIZE_MB = 81.0  # abstract: "... 45 FPS ... model size of only 81 MB"
PAPER_FPS = 45.0  # abstract; GPU (the paper's hardware), not comparable with a CPU number
SIZE_TOLERANCE = 0.05  # relative; MB vs MiB and rounding of "81 MB"


@dataclass
class RASConfig:
    """Settings of the RAS experiment (defaults = the quick preset)."""

    width: float = bounded(0.125, gt=0)  # channel multiplier; 1.0 = the paper's VGG-16 network
    # training/evaluation resolution. 128 px (issue 9): the global map S_6 has stride 32, so it is 4x4 here
    # (the paper's 352 px gives 11x11); at 64 px it was 2x2 and could not be confident inside objects
    # (best possible mean probability inside them 0.28, vs 0.77 at 128 px; docs/ras.md)
    image_size: int = bounded(128, ge=1)
    n_train: int = bounded(400, ge=1)
    n_test: int = bounded(120, ge=1)
    steps: int = bounded(400, ge=0)
    # 6 images of 128 px = twice the pixels per step of the former 12 of 64 px (CPU budget)
    batch_size: int = bounded(6, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    seeds: int = bounded(1, ge=1)  # training seeds per variant; metrics are averaged over them
    ablation: bool = True  # also train the network without reverse attention
    data: str = "generated"  # generated | folder
    scene_style: str = "blobs"  # generated scenes: blobs (compact objects) | fine (thin legs and holes added)
    train_images: str = ""  # data=folder: image and mask folders, relative to the data home or absolute
    train_masks: str = ""
    test_images: str = ""
    test_masks: str = ""
    pretrained_vgg16: str = ""  # optional torchvision-format VGG-16 state dict (needs width=1); overrides backbone_init
    # backbone initialisation: "proxy" = the VGG convolutions pretrained on a generated multi-label
    # recognition task (stand-in for the paper's ImageNet init, cached; see ras/pretrain.py), "scratch" = random
    backbone_init: str = "proxy"
    pretrain_steps: int = bounded(300, ge=0)
    pretrain_images: int = bounded(600, ge=1)
    pretrain_batch: int = bounded(16, ge=1)
    pretrain_lr: float = bounded(1e-3, gt=0)
    pretrain_size: int = bounded(64, ge=1)
    pretrain_seed: int = bounded(0, ge=0, le=MAX_SEED)
    # diagnostic (uses the ground truth; not a saliency detector): > 0 replaces the learned global map S_6
    # by the blurred mask at +-coarse_oracle logits, in training and test, for both variants
    coarse_oracle: float = bounded(0.0, ge=0)
    fps_size: int = bounded(352, ge=1)
    fps_repeats: int = bounded(5, ge=1)
    full_width_fps: bool = False  # also time the width-1 network at fps_size (slow on a CPU)
    figure_examples: int = bounded(4, ge=0)
    checkpoint_every: int = bounded(200, ge=0)

    def validate(self) -> None:
        if not self.width > 0:  # also refuses nan
            raise ConfigError(f"width: must be > 0, got {self.width}")
        if self.image_size < 32:
            raise ConfigError(f"image_size: must be >= 32 (five poolings), got {self.image_size}")
        for key in ("n_train", "n_test", "batch_size", "seeds", "fps_repeats"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("steps", "checkpoint_every", "figure_examples", "weight_decay"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if self.data not in ("generated", "folder"):
            raise ConfigError(f"data: {self.data!r} is not one of generated, folder")
        if self.scene_style not in ("blobs", "fine"):
            raise ConfigError(f"scene_style: {self.scene_style!r} is not one of blobs, fine")
        if self.data == "folder":
            for key in ("train_images", "train_masks", "test_images", "test_masks"):
                if not getattr(self, key):
                    raise ConfigError(f"{key}: required when data=folder")
        if self.pretrained_vgg16 and self.width != 1.0:
            raise ConfigError(f"pretrained_vgg16: VGG-16 weights need width=1, got width={self.width}")
        if self.backbone_init not in ("proxy", "scratch"):
            raise ConfigError(f"backbone_init: {self.backbone_init!r} is not one of proxy, scratch")
        if self.pretrain_steps < 0:
            raise ConfigError(f"pretrain_steps: must be >= 0, got {self.pretrain_steps}")
        for key in ("pretrain_images", "pretrain_batch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if not self.pretrain_lr > 0:
            raise ConfigError(f"pretrain_lr: must be > 0, got {self.pretrain_lr}")
        if self.pretrain_size < 32:
            raise ConfigError(f"pretrain_size: must be >= 32 (five poolings), got {self.pretrain_size}")
        if self.coarse_oracle < 0:
            raise ConfigError(f"coarse_oracle: must be >= 0 (0 = off), got {self.coarse_oracle}")
        if self.fps_size < 32:
            raise ConfigError(f"fps_size: must be >= 32 (five poolings), got {self.fps_size}")


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # The paper's network (width 1, 352 px as in the PyTorch release) and a longer schedule; on real data
    # pass data=folder with the four folders and pretrained_vgg16=<torchvision vgg16 .pth>.
    "paper": {
        "width": 1.0,
        "image_size": 352,
        "n_train": 2000,
        "n_test": 300,
        "steps": 10000,
        "batch_size": 10,
        "lr": 5e-5,
        "weight_decay": 5e-4,
        "seeds": 1,
        "full_width_fps": True,
        "checkpoint_every": 500,
    },
}


def run(config: RASConfig, ctx: RunContext) -> Mapping[str, float]:
    from reprolab.ras.pipeline import run_ras

    return run_ras(config, ctx)


def _size_within_tolerance(metrics: Mapping[str, float]) -> tuple[bool, float | None, str]:
    size = float(metrics["full_width_size_mb"])
    relative = abs(size - PAPER_SIZE_MB) / PAPER_SIZE_MB
    return (
        relative <= SIZE_TOLERANCE,
        size,
        f"full_width_size_mb={size:.2f} vs paper {PAPER_SIZE_MB:g} MB (relative difference {relative:.3f} "
        f"<= {SIZE_TOLERANCE})",
    )


CLAIMS = (
    Claim.compare(
        "reverse_attention_improves_max_f",
        "Reverse attention gives a higher max F-measure (beta^2=0.3) than the same network without it",
        "ras_max_f",
        ">",
        "no_ra_max_f",
    ),
    Claim.compare(
        "reverse_attention_improves_mae",
        "Reverse attention gives a lower MAE than the same network without it",
        "ras_mae",
        "<",
        "no_ra_mae",
    ),
    Claim.check(
        "full_width_model_size",
        "The full-width (VGG-16) RAS network stores about 81 MB of float32 parameters (within 5%)",
        _size_within_tolerance,
        requires=("full_width_size_mb",),
        paper=PAPER_SIZE_MB,
    ),
    Claim.compare(
        "full_width_fps_at_352",
        "The full-width network runs at >= 45 frames per second at 352x352 (paper: GPU; here: ctx.device)",
        "full_width_fps_352",
        ">=",
        PAPER_FPS,
        paper=PAPER_FPS,
    ),
)

EXPERIMENT = register(
    Experiment(
        name="ras",
        paper=PAPER,
        description="Reverse attention with residual side-output refinement vs the same network without RA",
        config_cls=RASConfig,
        presets=PRESETS,
        run=run,
        claims=CLAIMS,
        datasets=(
            DatasetInfo(
                name="ras-generated-scenes",
                description="generated scenes: salient objects on cluttered backgrounds with distractors, exact masks",
                source="generated by reprolab.ras.data.generate_scenes",
                subdir="",
                embedded=True,
            ),
            DatasetInfo(
                name="saliency-folder",
                description="any SOD set as an image folder + a binary-mask folder with matching names",
                source="DUTS, ECSSD, MSRA-B, HKU-IS or DUT-OMRON as distributed by their authors",
                subdir="",
                layout="<images>/<name>.jpg and <masks>/<name>.png; pass the folders with data=folder",
            ),
        ),
        paper_metrics={"full_width_size_mb": PAPER_SIZE_MB, "full_width_fps_352": PAPER_FPS},
        summary_metrics=(
            "ras_max_f",
            "no_ra_max_f",
            "ras_mae",
            "no_ra_mae",
            "ras_s_measure",
            "no_ra_s_measure",
            "full_width_size_mb",
            "fps_352",
        ),
    )
)
