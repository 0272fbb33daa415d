"""Training and inference for RAS: Adam on the deep-supervision loss (Eq. 3), random horizontal flips."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import torch

from reprolab.core.sweep import Sweep
from reprolab.ras.data import SaliencySet, normalize
from reprolab.ras.metrics import SaliencyScores, evaluate_maps
from reprolab.ras.model import RAS, RASOutput, deep_supervision_loss, oracle_coarse_logits

__all__ = ["evaluate", "measure_fps", "predict", "train_ras"]


def train_ras(
    sweep: Sweep,
    unit: str,
    model: RAS,
    data: SaliencySet,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    generator: torch.Generator,
    device: torch.device,
    checkpoint_every: int = 0,
    log_every: int = 25,
    coarse_oracle: float = 0.0,
) -> None:
    """Train ``model`` for ``steps`` Adam steps on random mini-batches of ``data`` (resumable via ``sweep``).

    The learning rate decays by 10x for the last 20% of the steps (the paper's step schedule in miniature).
    ``coarse_oracle > 0`` (diagnostic) replaces S_6 by :func:`oracle_coarse_logits` of the batch's masks.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[max(1, int(0.8 * steps))], gamma=0.1)
    images, masks = data.images, data.masks
    model.train()

    def loss_fn(step: int) -> tuple[torch.Tensor, Mapping[str, float]]:
        index = torch.randint(len(data), (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x, y = images[index].clone(), masks[index].clone()
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        x, y = normalize(x.to(device)), y.to(device)
        output = model(x, oracle_coarse_logits(y, coarse_oracle) if coarse_oracle > 0 else None)
        final_bce = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, y).item()
        return deep_supervision_loss(output, y), {"final_bce": final_bce}

    sweep.minimise(
        unit,
        steps=steps,
        loss_fn=loss_fn,
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
        out = model(normalize(images[start : start + batch_size].to(device)), coarse)
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
