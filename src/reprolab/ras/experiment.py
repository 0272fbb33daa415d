"""Registration of the RAS experiment: reverse attention vs the no-reverse-attention ablation on
generated salient-object scenes (or a real image/mask folder), plus model size and speed.

Kept light to import: the model, data and training code load inside :func:`run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprolab.core.claims import Claim, with_units_needed
from reprolab.core.config import MAX_SEED, bounded
from reprolab.core.data import DatasetInfo
from reprolab.core.errors import ConfigError
from reprolab.core.registry import Experiment, Paper, register

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["ECCV_RECIPE", "EXPERIMENT", "PAPER_FPS", "PAPER_SIZE_MB", "RASConfig"]

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
    # (best possible mean probability inside them 0.28, vs 0.77 at 128 px; measured in
    # docs/notes/ras.md#issue-9-follow-up-how-confident-is-the-coarse-map-and-can-the-miniature-make-it-confident)
    image_size: int = bounded(128, ge=1)
    n_train: int = bounded(400, ge=1)
    n_test: int = bounded(120, ge=1)
    steps: int = bounded(300, ge=0)  # 400 until issue 21: two quick seeds must fit ~220 CPU-s
    # 6 images of 128 px = twice the pixels per step of the former 12 of 64 px (CPU budget)
    batch_size: int = bounded(6, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    # optimisation recipe (train.Recipe); the ECCV values are in the `paper` preset, read from solver.prototxt
    # and train.prototxt of ShuhanChen/RAS_ECCV18
    optimizer: str = "adam"  # adam | sgd (ECCV: SGD, momentum 0.9)
    momentum: float = 0.9
    loss_reduction: str = "mean"  # mean over pixels | sum over pixels, mean over images (ECCV: Caffe's loss)
    accumulate: int = 1  # micro-batches of batch_size per step (ECCV: batch 1, iter_size 10)
    lr_step_at: float = 0.8  # lr x0.1 after this fraction of the steps (ECCV: 7500 of 10000)
    s6_lr_mult: float = 1.0  # lr multiplier of the S_6 predictor's last conv (ECCV: 0.1, its bias 0.2)
    bias_lr_mult: float = 1.0  # ECCV: 2 on every bias ...
    bias_decay: bool = True  # ... with no weight decay (decay_mult 0)
    input_norm: str = "imagenet"  # imagenet (mean/std; torchvision weights) | bgr_mean (ECCV Caffe data layer)
    seeds: int = 1  # training seeds per variant; metrics are averaged over them
    ablation: bool = True  # also train the network without reverse attention
    data: str = "generated"  # generated | folder
    scene_style: str = "blobs"  # generated scenes: blobs (compact objects) | fine (thin legs and holes added)
    train_images: str = ""  # data=folder: image and mask folders, relative to the data home or absolute
    train_masks: str = ""
    test_images: str = ""
    test_masks: str = ""
    # data=folder without test folders: hold out a fraction of the training pairs ("0.2") or the names listed
    # in a text file (one stem per line); the ratio split is a fixed shuffle (seed 0), the same for every run seed
    split: str = ""
    evaluate_run: str = ""  # a finished run folder: evaluate its saved models on this run's test data, no training
    pretrained_vgg16: str = ""  # optional torchvision-format VGG-16 state dict (needs width=1); overrides backbone_init
    # backbone initialisation: "proxy" = the VGG convolutions pretrained on a generated multi-label
    # recognition task (stand-in for the paper's ImageNet init, cached; see ras/pretrain.py), "scratch" = random,
    # "imagenet" = the paper's, from pretrained_vgg16; without that file the run falls back to the proxy backbone
    # (with imagenet normalisation) and says so: a FALLBACK note first in report.md and metric imagenet_backbone=0
    backbone_init: str = "proxy"
    pretrain_steps: int = bounded(300, ge=0)
    pretrain_images: int = bounded(600, ge=1)
    pretrain_batch: int = bounded(16, ge=1)
    pretrain_lr: float = bounded(1e-3, gt=0)
    pretrain_size: int = bounded(64, ge=1)
    pretrain_seed: int = bounded(0, ge=0, le=MAX_SEED)
    # True: run seed r pretrains (and caches) its own proxy backbone with seed pretrain_seed + r, so the claims'
    # units (run seeds) sample the backbone's variance (issue 18: units sharing one cached backbone give a verdict
    # about that backbone); False: every run seed shares the pretrain_seed backbone
    backbone_per_seed: bool = True
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
            needed = ("train_images", "train_masks") + (() if self.split else ("test_images", "test_masks"))
            for key in needed:
                if not getattr(self, key):
                    raise ConfigError(f"{key}: required when data=folder (or give split= to hold out test pairs)")
        if self.split:
            self._check_split()
        self._check_recipe()
        if self.pretrained_vgg16 and self.width != 1.0:
            raise ConfigError(f"pretrained_vgg16: VGG-16 weights need width=1, got width={self.width}")
        if self.backbone_init not in ("proxy", "scratch", "imagenet"):
            raise ConfigError(f"backbone_init: {self.backbone_init!r} is not one of proxy, scratch, imagenet")
        if self.backbone_init == "proxy" and not self.pretrained_vgg16 and self.input_norm != "imagenet":
            raise ConfigError(
                f"input_norm: the proxy backbone is pretrained with imagenet normalisation, got {self.input_norm!r}"
            )
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
        if self.evaluate_run:
            from pathlib import Path

            if not (Path(self.evaluate_run) / "models").is_dir():
                raise ConfigError(f"evaluate_run: {self.evaluate_run} has no models/ folder (not a finished ras run)")

    def _check_recipe(self) -> None:
        choices = {
            "optimizer": ("adam", "sgd"),
            "loss_reduction": ("mean", "sum"),
            "input_norm": ("imagenet", "bgr_mean"),
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {', '.join(valid)}")
        if self.accumulate < 1:
            raise ConfigError(f"accumulate: must be >= 1, got {self.accumulate}")
        if not 0.0 < self.lr_step_at <= 1.0:
            raise ConfigError(f"lr_step_at: must be in (0, 1], got {self.lr_step_at}")
        for key in ("momentum", "s6_lr_mult", "bias_lr_mult"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")

    def _check_split(self) -> None:
        from pathlib import Path

        try:
            ratio = float(self.split)
        except ValueError:
            if not Path(self.split).is_file():
                raise ConfigError(f"split: {self.split!r} is neither a ratio in (0, 1) nor a list file") from None
            return
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"split: a ratio must be in (0, 1), got {ratio}")
        if self.data != "folder":
            raise ConfigError("split: only with data=folder (generated scenes have their own test set)")

    def recipe(self) -> Any:
        from reprolab.ras.train import Recipe

        return Recipe(
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            loss_reduction=self.loss_reduction,
            accumulate=self.accumulate,
            lr_step_at=self.lr_step_at,
            s6_lr_mult=self.s6_lr_mult,
            bias_lr_mult=self.bias_lr_mult,
            bias_decay=self.bias_decay,
            input_norm=self.input_norm,
        )


# The ECCV 2018 training recipe, read from ShuhanChen/RAS_ECCV18 (solver.prototxt: base_lr 1e-8, momentum 0.9,
# weight_decay 5e-4, iter_size 10, lr_policy step, stepsize 7500, gamma 0.1, max_iter 10000; train.prototxt: batch 1,
# mirror, BGR mean_value 104.00699/116.66877/122.67892, SigmoidCrossEntropyLoss with loss_weight 1 on six sides,
# lr_mult 0.1/0.2 on conv5-dsn6 (S_6's last conv), lr_mult 2 / decay_mult 0 on every bias; solve.py: VGG-16 init).
ECCV_RECIPE: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 1e-8,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "loss_reduction": "sum",
    "batch_size": 1,
    "accumulate": 10,
    "steps": 10000,
    "lr_step_at": 0.75,
    "s6_lr_mult": 0.1,
    "bias_lr_mult": 2.0,
    "bias_decay": False,
    "input_norm": "bgr_mean",
}

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # The paper: the ECCV network (width 1) and recipe from an ImageNet VGG-16 (Caffe's BGR-mean convention:
    # pass Caffe-converted weights in torchvision layout, or input_norm=imagenet for torchvision's own file).
    # 352 px: the Caffe layer trains at each image's own size, which batching here cannot
    # (docs/ras.md#paper-official-code-and-presets).
    "paper": {
        **ECCV_RECIPE,
        "width": 1.0,
        "image_size": 352,
        "n_train": 2000,
        "n_test": 300,
        "seeds": 1,
        "backbone_init": "imagenet",
        "full_width_fps": True,
        "checkpoint_every": 500,
    },
    # The later recipe of the authors' PyTorch release (ShuhanChen/RAS-pytorch, v1/train.py): Adam lr 5e-5,
    # batch 10, 352 px, 30 epochs with x0.1 at epoch 26 (26/30 of the steps); BCE (its IoU term is not ported).
    "ras_pytorch": {
        "width": 1.0,
        "image_size": 352,
        "n_train": 2000,
        "n_test": 300,
        "steps": 6000,  # 30 epochs of 2000 images at batch 10
        "batch_size": 10,
        "lr": 5e-5,
        "lr_step_at": 26 / 30,
        "seeds": 1,
        "backbone_init": "imagenet",
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
    # the paper's ablation (Sec. 4.4): reverse attention vs the same network without it; decided over run seeds
    # (each run trains both variants from the same initialisation, so the difference is paired per seed)
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
        "The full-width (VGG-16) RAS network stores about 81 MB of float32 parameters (within 5%; abstract)",
        _size_within_tolerance,
        requires=("full_width_size_mb",),
        paper=PAPER_SIZE_MB,
        paper_source="read",
    ),
    Claim.compare(
        "full_width_fps_at_352",
        "The full-width network runs at >= 45 frames per second at 352x352 (abstract; paper: GPU; here: the run's"
        " device, so only comparable on a GPU)",
        "full_width_fps_352",
        ">=",
        PAPER_FPS,
        paper=PAPER_FPS,
        paper_source="read",
    ),
)
# Units the quick miniature needs for a verdict that a rerun repeats (issue 18), from the pooled per-unit
# noise of two quick runs (benchmarks/verdict_stability.py --power; docs/ras.md#units-needed-at-quick):
# with fewer units these claims are inconclusive at quick, whatever their bounds say.
QUICK_UNITS_NEEDED = {
    "reverse_attention_improves_max_f": 27,
}
CLAIMS = with_units_needed(CLAIMS, "quick", QUICK_UNITS_NEEDED)

EXPERIMENT = register(
    Experiment(
        name="ras",
        paper=PAPER,
        description="Reverse attention with residual side-output refinement vs the same network without RA",
        config_cls=RASConfig,
        presets=PRESETS,
        run=run,
        claims=CLAIMS,
        # ~95-105 CPU-s per quick seed, cold cache (session 12); with 2 seeds (t crit 6.31) the MAE verdict moved under
        # --perturb 1e-6
        seeds={"quick": 4},
        datasets=(
            DatasetInfo(
                name="ras-generated-scenes",
                presets=("quick", "paper", "ras_pytorch"),
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
