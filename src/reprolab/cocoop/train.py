"""Training loops: contrastive pretraining of the mini CLIP, prompt learning (CoOp/CoCoOp), evaluation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from reprolab.cocoop.data import BACKGROUNDS, ShapesWorld, WordTokenizer
from reprolab.cocoop.model import PromptClassifier, encode_token_ids, image_features

__all__ = [
    "accuracy",
    "contrastive_loss",
    "contrastive_targets",
    "epoch_lr",
    "pretrain_clip",
    "train_prompts",
    "zero_shot_accuracy",
]


def pretrain_clip(
    clip: Any,
    world: ShapesWorld,
    tokenizer: WordTokenizer,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    clip_norm: float = 1.0,
) -> list[float]:
    """CLIP's symmetric InfoNCE on freshly generated image-caption pairs, all backgrounds, all classes.

    A pair counts as positive when the captions are identical or the two images show the same content (class
    and size; a batch has one background). Plain InfoNCE treats two captions of the same red circle from
    different templates as negatives; with 24 classes in a batch of 128 these false negatives dominate and
    left the image features weak and the result seed-dependent (zero-shot 61% vs 87% on two runs). Gradient
    norms are clipped at ``clip_norm`` for the same reason.

    Two ways of computing the same loss make a step cheaper (together with the ``foreach`` optimiser, about a
    tenth of a step's CPU time on one thread, measured in a whole first run): each distinct caption of the batch
    is encoded once (a batch of 128 holds ~90; the duplicates' gradients add up in the gather's backward), and
    attention runs in PyTorch's fused SDPA kernel (the same function as the eager softmax attention that prompt
    learning uses afterwards; float rounding differs, as on another CPU).
    """
    opt = torch.optim.AdamW(clip.parameters(), lr=lr, weight_decay=0.1, foreach=True)
    if steps >= 10:
        sched: Any = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    attention = clip.config._attn_implementation
    clip.set_attn_implementation("sdpa")
    clip.train()
    losses = []
    n_cls = len(world.classnames)
    try:
        for _ in range(steps):
            labels = torch.randint(0, n_cls, (batch_size,), generator=generator)
            bg = BACKGROUNDS[int(torch.randint(0, len(BACKGROUNDS), (1,), generator=generator))]
            pixels, big = world.render(labels, generator, bg)
            ids = tokenizer.batch(world.captions(labels, big, bg, generator))
            loss = contrastive_loss(clip, pixels, ids, labels, big, tokenizer.eos_id)
            opt.zero_grad()
            loss.backward()
            if clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(clip.parameters(), clip_norm, foreach=True)
            opt.step()
            sched.step()
            with torch.no_grad():
                clip.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
    finally:  # prompt learning re-walks the eager attention (model.encode_text_shared_prefix)
        clip.set_attn_implementation(attention)
    clip.eval()
    return losses


def contrastive_loss(
    clip: Any, pixels: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, big: torch.Tensor, eos_id: int
) -> torch.Tensor:
    """Symmetric InfoNCE of a batch with soft targets (:func:`contrastive_targets`); each distinct caption is
    encoded once and gathered back to its rows."""
    img = image_features(clip, pixels)
    distinct, row_of = torch.unique(ids, dim=0, return_inverse=True)
    txt = F.normalize(encode_token_ids(clip, distinct, eos_id), dim=-1)[row_of]
    logits = clip.logit_scale.exp() * img @ txt.t()
    target = contrastive_targets(ids, labels, big)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def contrastive_targets(ids: torch.Tensor, labels: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
    """Soft InfoNCE targets (B, B): uniform over the positives of each row, a positive being the same content
    (class label and size) in a one-background batch, or an identical caption (token ids) of the same class.

    In a correctly captioned world an identical caption implies the same class; with mis-captioned classes
    (``ShapesWorld.miscaption``) the class condition keeps a red square captioned "red triangle" from becoming
    a positive of the red-triangle images, so the caption errors reach the text side only."""
    same_caption = (ids[:, None, :] == ids[None, :, :]).all(-1)
    same_label = labels[:, None] == labels[None, :]
    same_content = same_label & (big[:, None] == big[None, :])
    same = (same_content | (same_caption & same_label)).float()
    return same / same.sum(1, keepdim=True)


def epoch_lr(epoch: int, epochs: int, lr: float, warmup_epochs: int = 0, warmup_lr: float = 0.0) -> float:
    """The learning rate of ``epoch`` (0-based) in the official recipe: Dassl's ConstantWarmupScheduler
    (``warmup_epochs`` at ``warmup_lr``) followed by CosineAnnealingLR(T_max=epochs) stepped once per epoch, so
    the first epoch after the warm-up runs at ``lr`` and the cosine restarts its count there (WARMUP_RECOUNT)."""
    if epoch < warmup_epochs:
        return warmup_lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / max(epochs, 1)))


def train_prompts(
    model: PromptClassifier,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    warmup_epochs: int = 0,
    warmup_lr: float = 0.0,
    weight_decay: float = 0.0,
) -> list[float]:
    """SGD (momentum 0.9) on cross-entropy with the per-epoch schedule of :func:`epoch_lr` (CoOp/CoCoOp recipe);
    only the learner's parameters move. ``epochs`` counts the warm-up epochs, as Dassl's MAX_EPOCH does. The
    image features are computed once (frozen encoder, no augmentation), which leaves every step unchanged."""
    params = [p for p in model.learner.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    with torch.no_grad():
        feats = torch.cat([image_features(model.clip, pixels[i : i + 256]) for i in range(0, len(pixels), 256)])
    n = pixels.shape[0]
    losses = []
    model.learner.train()
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = epoch_lr(epoch, epochs, lr, warmup_epochs, warmup_lr)
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model.logits(feats[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.learner.eval()
    return losses


@torch.no_grad()
def accuracy(model: PromptClassifier, pixels: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    correct = 0
    for start in range(0, pixels.shape[0], batch_size):
        logits = model(pixels[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return 100.0 * correct / max(pixels.shape[0], 1)


@torch.no_grad()
def zero_shot_accuracy(
    clip: Any, tokenizer: Any, classnames: list[str], template: str, pixels: torch.Tensor, labels: torch.Tensor
) -> float:
    """Zero-shot CLIP with a hand-written template such as "a photo of a {}"."""
    rows = [[tokenizer.bos_id, *tokenizer.encode(template.format(c)), tokenizer.eos_id] for c in classnames]
    length = max(len(r) for r in rows)
    ids = torch.tensor([r + [tokenizer.pad_id] * (length - len(r)) for r in rows], device=pixels.device)
    text = F.normalize(encode_token_ids(clip, ids, tokenizer.eos_id), dim=-1)
    img = image_features(clip, pixels)
    return 100.0 * float(((img @ text.t()).argmax(1) == labels).float().mean())
