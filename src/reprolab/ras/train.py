"""Training and inference for RAS: the deep-supervision loss (Eq. 3) with random horizontal flips, under the
quick recipe (Adam) or the ECCV recipe (SGD, summed loss, iter_size 10, lr multipliers; :class:`Recipe`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reprolab.core.sweep import Sweep
from reprolab.ras.data import SaliencySet, normalize
from reprolab.ras.metrics import SaliencyScores, evaluate_maps
from reprolab.ras.model import RAS, RASOutput, deep_supervision_loss, oracle_coarse_logits

__all__ = ["Recipe", "evaluate", "make_optimizer", "measure_fps", "param_groups", "predict", "train_ras"]


@dataclass(frozen=True)
class Recipe:
    """The optimisation recipe of :func:`train_ras`.

    ``quick`` defaults: Adam, BCE averaged over pixels, no accumulation, lr x0.1 after 80% of the steps.
    The ECCV recipe (``solver.prototxt`` / ``train.prototxt`` of ShuhanChen/RAS_ECCV18): SGD with momentum 0.9 and
    weight decay 5e-4, lr 1e-8 on the per-image *summed* pixel loss (Caffe's SigmoidCrossEntropyLoss divides by
    the batch only), batch 1 with ``iter_size: 10`` (gradients of 10 images averaged), 10k iterations with a x0.1
    step at 7.5k, ``lr_mult: 0.1`` (bias 0.2) on the last convolution of the S_6 predictor and, on every bias,
    ``lr_mult: 2`` with ``decay_mult: 0``.
    """

    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss_reduction: str = "mean"  # mean (over pixels) | sum (over pixels, mean over images)
    accumulate: int = 1  # micro-batches whose gradients are averaged per step (Caffe iter_size)
    lr_step_at: float = 0.8  # lr x0.1 after this fraction of the steps
    s6_lr_mult: float = 1.0  # on global_saliency.predict (its bias gets 2x this, as in the prototxt)
    bias_lr_mult: float = 1.0
    bias_decay: bool = True
    input_norm: str = "imagenet"  # imagenet | bgr_mean


def param_groups(model: RAS, recipe: Recipe) -> list[dict]:
    """Per-parameter lr multipliers and weight decay, as the prototxt's ``lr_mult`` / ``decay_mult``."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        is_bias = name.endswith(".bias")
        mult = recipe.bias_lr_mult if is_bias else 1.0
        if name.startswith("global_saliency.predict."):
            mult = recipe.s6_lr_mult * (2.0 if is_bias else 1.0)
        decay = 0.0 if (is_bias and not recipe.bias_decay) else recipe.weight_decay
        groups.setdefault((mult, decay), []).append(param)
    return [
        {"params": params, "lr": recipe.lr * mult, "weight_decay": decay} for (mult, decay), params in groups.items()
    ]


def make_optimizer(model: RAS, recipe: Recipe) -> torch.optim.Optimizer:
    groups = param_groups(model, recipe)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, foreach=True)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, foreach=True)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def supervision_loss(output: RASOutput, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Eq. 3 over the six side outputs; ``sum`` sums each image's pixel losses and averages over images."""
    if reduction == "mean":
        return deep_supervision_loss(output, mask)
    per_pixel = [F.binary_cross_entropy_with_logits(s, mask, reduction="sum") for s in output.upsampled]
    return torch.stack(per_pixel).sum() / mask.shape[0]


def train_ras(
    sweep: Sweep,
    unit: str,
    model: RAS,
    data: SaliencySet,
    *,
    steps: int,
    batch_size: int,
    recipe: Recipe,
    generator: torch.Generator,
    device: torch.device,
    checkpoint_every: int = 0,
    log_every: int = 25,
    coarse_oracle: float = 0.0,
) -> None:
    """Train ``model`` for ``steps`` optimiser steps on random mini-batches of ``data`` (resumable via ``sweep``).

    Each step averages the gradients of ``recipe.accumulate`` micro-batches of ``batch_size`` images with
    random horizontal flips; the learning rate decays by 10x after ``recipe.lr_step_at`` of the steps.
    ``coarse_oracle > 0`` (diagnostic) replaces S_6 by :func:`oracle_coarse_logits` of the batch's masks.
    """
    optimizer = make_optimizer(model, recipe)
    milestone = max(1, int(recipe.lr_step_at * steps))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[milestone], gamma=0.1)
    images, masks = data.images, data.masks
    model.train()

    def micro_batch() -> tuple[torch.Tensor, float]:
        index = torch.randint(len(data), (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x, y = images[index].clone(), masks[index].clone()
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        x, y = normalize(x.to(device), recipe.input_norm), y.to(device)
        output = model(x, oracle_coarse_logits(y, coarse_oracle) if coarse_oracle > 0 else None)
        final_bce = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, y).item()
        return supervision_loss(output, y, recipe.loss_reduction), final_bce

    def step_fn(step: int) -> Mapping[str, float]:
        optimizer.zero_grad(set_to_none=True)
        total, bce = 0.0, 0.0
        for _ in range(recipe.accumulate):
            loss, final_bce = micro_batch()
            (loss / recipe.accumulate).backward()
            total += float(loss.detach()) / recipe.accumulate
            bce += final_bce / recipe.accumulate
        optimizer.step()
        scheduler.step()
        return {"loss": total, "final_bce": bce}

    sweep.train(
        unit,
        steps=steps,
        step_fn=step_fn,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )
    model.eval()


@torch.no_grad()
def predict(
    model: RAS,
    images: torch.Tensor,
    *,
    device: torch.device,
    batch_size: int = 32,
    masks: torch.Tensor | None = None,
    coarse_oracle: float = 0.0,
    input_norm: str = "imagenet",
) -> list[RASOutput]:
    """Run ``model`` on ``images`` (N x 3 x H x W in [0, 1]) in batches; outputs stay on the CPU.

    ``coarse_oracle > 0`` (diagnostic) feeds :func:`oracle_coarse_logits` of ``masks`` as S_6."""
    if coarse_oracle > 0 and masks is None:
        raise ValueError("coarse_oracle needs the masks")
    model.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        coarse = None
        if coarse_oracle > 0 and masks is not None:
            coarse = oracle_coarse_logits(masks[start : start + batch_size].to(device), coarse_oracle)
        out = model(normalize(images[start : start + batch_size].to(device), input_norm), coarse)
        outputs.append(
            RASOutput(
                [s.cpu() for s in out.side_logits], [a.cpu() for a in out.attention], [u.cpu() for u in out.upsampled]
            )
        )
    return outputs


def evaluate(model: RAS, data: SaliencySet, *, device: torch.device) -> SaliencyScores:
    """Dataset scores of the final prediction S_1 (sigmoid of the logits)."""
    maps = torch.cat([torch.sigmoid(o.logits) for o in predict(model, data.images, device=device)])
    return evaluate_maps(list(maps.numpy()), list(data.masks.numpy()))


@torch.no_grad()
def measure_fps(model: RAS, *, size: int = 352, repeats: int = 5, device: torch.device | None = None) -> float:
    """Frames per second of one forward pass (batch 1, ``size`` x ``size``), after one warm-up pass."""
    device = device or torch.device("cpu")
    model.eval()
    image = torch.zeros(1, 3, size, size, device=device)
    model(image)
    times = []
    for _ in range(max(1, repeats)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(image)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return float(1.0 / np.median(times))
