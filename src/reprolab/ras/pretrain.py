"""A stand-in for ImageNet pretraining of the RAS backbone: the VGG-16 convolutions (same width as the
saliency network) are first trained on a *proxy recognition task* over generated scenes, then both RAS
and the no-RA ablation start from that backbone.

The paper (Sec. 4.1) initialises the backbone from ImageNet-pretrained VGG-16 weights, which are not
available offline. ImageNet pretraining is image-level classification: no masks, no notion of which
object is salient. The proxy keeps those properties. Each proxy scene is a cluttered background (the
same generator as the saliency scenes) with one to four coloured objects anywhere in the frame; the
target is multi-label: which hue bins are present (6 labels), which shapes (ellipse, rectangle, blob:
3 labels) and whether a striped object is present (1 label). The heads (global max pooling of each
block's feature and one linear layer, deep supervision) are discarded after pretraining. Objects are never marked as
salient or not, and the saliency scenes' distractors and specks are absent, so the backbone learns
object colour/shape/texture features but not the saliency labels.

The trained backbone is cached (``core.checkpoint`` format) under ``cache_home()/ras``, fingerprinted
by every setting that changes it; a corrupt or foreign cache file is a cache miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reprolab.core.checkpoint import config_fingerprint, load_cached, save_cached
from reprolab.ras.data import _background, _grid, _hsv_to_rgb, _shape_mask, normalize
from reprolab.ras.model import VGG16_CONV_INDICES, VGG16Backbone

__all__ = [
    "N_PROXY_LABELS",
    "ProxyBackbone",
    "ProxyClassifier",
    "ProxySpec",
    "generate_proxy_scenes",
    "pretrain_backbone",
    "pretrained_backbone",
    "proxy_scores",
]

N_HUES = 6
N_SHAPES = 3  # ellipse, rectangle, star-ish blob (``data._shape_mask`` kinds)
N_PROXY_LABELS = N_HUES + N_SHAPES + 1  # hue bins, shapes, "a striped object is present"
CACHE_VERSION = 1


@dataclass(frozen=True)
class ProxySpec:
    """Everything that determines the pretrained backbone (its cache fingerprint)."""

    width: float
    size: int = 64
    n_images: int = 800
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0

    def fingerprint(self) -> str:
        return config_fingerprint({**asdict(self), "task": "hues+shapes+stripes", "v": CACHE_VERSION})


@dataclass
class ProxyBackbone:
    """The pretrained backbone state (torchvision ``features.N`` keys), its held-out proxy scores and
    where it came from (``"trained"`` or the cache file)."""

    state: dict[str, torch.Tensor]
    scores: dict[str, float] = field(default_factory=dict)
    source: str = "trained"


# --------------------------------------------------------------------------------------------- data
def _proxy_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    image = _background(rng, size)
    labels = np.zeros(N_PROXY_LABELS, dtype=np.float32)
    yy, xx = _grid(size, "index")
    for _ in range(int(rng.integers(1, 5))):
        hue_bin, kind = int(rng.integers(N_HUES)), int(rng.integers(N_SHAPES))
        radius = rng.uniform(0.1, 0.22) * size
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        shape = _shape_mask(rng, size, radius, cy, cx, kind=kind)
        if not shape.any():
            continue
        hue = (hue_bin + rng.uniform(0.15, 0.85)) / N_HUES  # away from the bin edges
        colour = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
        fill = np.broadcast_to(colour, (size, size, 3)).copy()
        if rng.uniform() < 0.35:
            period = rng.uniform(3, 7)
            phase = rng.uniform(0, math.pi)
            stripes = (np.sin((xx * math.cos(phase) + yy * math.sin(phase)) * 2 * math.pi / period) > 0)[..., None]
            fill = np.where(stripes, fill, fill * 0.55)
            labels[-1] = 1.0
        image[shape] = fill[shape] + rng.normal(0, 0.03, (int(shape.sum()), 3))
        labels[hue_bin] = 1.0
        labels[N_HUES + kind] = 1.0
    return np.clip(image, 0.0, 1.0), labels


def generate_proxy_scenes(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` proxy scenes (N x 3 x size x size in [0, 1]) and their multi-hot labels (N x 10).

    Labels 0-5: an object of that hue bin is present; 6-8: an ellipse / rectangle / blob is present (an
    object drawn later may hide part of an earlier one); 9: a striped object was drawn."""
    if count < 1 or size < 32:
        raise ValueError(f"need count >= 1 and size >= 32, got count={count}, size={size}")
    rng = np.random.default_rng(seed)
    images, labels = zip(*(_proxy_scene(rng, size) for _ in range(count)), strict=True)
    return torch.from_numpy(np.stack([i.transpose(2, 0, 1) for i in images])).float(), torch.from_numpy(
        np.stack(labels)
    )


# --------------------------------------------------------------------------------------------- model
class ProxyClassifier(nn.Module):
    """VGG-16 backbone with a multi-label head on every block: global max pooling of the side feature
    (presence of an attribute anywhere in the frame) and one linear layer.

    The heads on blocks 1-4 are deep supervision (Lee et al., "Deeply-supervised nets", 2015), which
    lets a 13-layer VGG without batch norm train from scratch in a few hundred steps (VGG's own authors
    needed staged initialisation); the block-5 head is the classifier used for the scores. All heads are
    discarded after pretraining.
    """

    def __init__(self, width: float) -> None:
        super().__init__()
        self.backbone = VGG16Backbone(width)
        self.heads = nn.ModuleList(nn.Linear(c, N_PROXY_LABELS) for c in self.backbone.side_channels)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image`` (normalised) -> per-block label logits [block 1 .. block 5], each B x N_PROXY_LABELS."""
        sides, _ = self.backbone(image)
        return [head(side.amax(dim=(2, 3))) for head, side in zip(self.heads, sides, strict=True)]


def pretrain_backbone(
    model: ProxyClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> list[float]:
    """Adam on the multi-label binary cross-entropy summed over the block heads, random horizontal
    flips; returns the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[max(1, int(0.8 * steps))], gamma=0.1)
    model.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x = images[index].clone()
        x[flip] = x[flip].flip(-1)
        target = labels[index]
        loss = torch.stack([F.binary_cross_entropy_with_logits(z, target) for z in model(normalize(x))]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def proxy_scores(model: ProxyClassifier, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Held-out scores of the block-5 head: label accuracy (threshold 0.5), the accuracy of always
    answering the majority label, exact-match rate and mean average precision over labels."""
    from sklearn.metrics import average_precision_score

    model.eval()
    probs = torch.cat([torch.sigmoid(model(normalize(images[i : i + 64]))[-1]) for i in range(0, len(images), 64)])
    hits = (probs > 0.5).float() == labels
    present = labels.sum(0) > 0
    mean_ap = average_precision_score(labels[:, present].numpy(), probs[:, present].numpy(), average="macro")
    prevalence = labels.mean(0)
    prior = float(torch.maximum(prevalence, 1 - prevalence).mean())  # always-majority accuracy
    return {
        "label_accuracy": float(hits.float().mean()),
        "majority_accuracy": prior,
        "exact_match": float(hits.all(1).float().mean()),
        "mean_ap": float(mean_ap),
    }


# --------------------------------------------------------------------------------------------- cache
def _backbone_state(model: ProxyClassifier) -> dict[str, torch.Tensor]:
    own = model.backbone.state_dict()
    keys = [f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")]
    return {key: own[key].detach().cpu().clone() for key in keys}


def _valid(payload: object, width: float) -> ProxyBackbone | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("backbone"), dict):
        return None
    expected = VGG16Backbone(width).state_dict()
    state = payload["backbone"]
    for key in [f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")]:
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            return None
    scores = payload.get("scores", {})
    return ProxyBackbone(dict(state), {k: float(v) for k, v in scores.items()} if isinstance(scores, dict) else {})


def pretrained_backbone(
    spec: ProxySpec,
    cache_dirs: Sequence[Path],
    *,
    n_eval: int = 200,
    note: Callable[[str], None] = lambda _message: None,
) -> ProxyBackbone:
    """The proxy-pretrained backbone for ``spec``: from the first cache folder holding a valid file,
    else trained now (deterministic in ``spec.seed``) and written to the first writable cache folder.

    A cache file that cannot be read, belongs to another spec or lacks the backbone tensors is ignored."""
    digest = spec.fingerprint()
    name = f"vgg16-proxy-w{spec.width:g}-{digest}.pt"
    fits = lambda state: _valid(state, spec.width) is not None  # noqa: E731
    cached = load_cached(name, cache_dirs, digest, note=note, accept=fits)
    if cached is not None:
        found = _valid(cached[0], spec.width)
        assert found is not None  # accepted above
        found.source = str(cached[1])
        return found
    torch.manual_seed(spec.seed)
    model = ProxyClassifier(spec.width)
    images, labels = generate_proxy_scenes(spec.n_images + n_eval, spec.size, spec.seed)
    losses = pretrain_backbone(
        model,
        images[: spec.n_images],
        labels[: spec.n_images],
        steps=spec.steps,
        batch_size=spec.batch_size,
        lr=spec.lr,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    scores = proxy_scores(model, images[spec.n_images :], labels[spec.n_images :]) if n_eval > 0 else {}
    scores["final_loss"] = float(np.mean(losses[-25:])) if losses else float("nan")
    result = ProxyBackbone(_backbone_state(model), scores, "trained")
    path = save_cached(name, cache_dirs, {"backbone": result.state, "scores": scores}, digest)
    if path is not None:
        result.source = f"trained, cached at {path}"
    return result
