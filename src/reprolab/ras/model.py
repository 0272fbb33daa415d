"""RAS: a VGG-16 backbone with side outputs, a coarse global prediction and reverse-attention residual
refinement (Chen, Tan, Wang, Hu, "Reverse Attention for Salient Object Detection", ECCV 2018, Sec. 3).

Layout (Sec. 3.1-3.3, Fig. 2, and the official ``deploy.prototxt``):

* backbone: the 13 convolutions of VGG-16; side features are taken after ``conv1_2``, ``conv2_2``,
  ``conv3_3``, ``conv4_3`` and ``conv5_3``. As in the official network, ``pool4`` and ``pool5`` are 3x3
  max-pools with stride 2 and padding 1 (the others 2x2, stride 2).
* global saliency S_6 (Sec. 3.1): on ``pool5``, a 1x1 convolution (256 channels), three 5x5 convolutions
  (256 channels, ReLU) and a 1x1 convolution to one channel.
* side output i = 5..1 (Sec. 3.2-3.3): the deeper prediction S_{i+1} is upsampled to the side's size,
  the reverse-attention weight is ``A_i = 1 - sigmoid(up(S_{i+1}))`` (Eq. 2), the side features are
  multiplied by it channel-wise, ``F'_i = F_i * A_i`` (Eq. 1), and a 1x1 convolution (64 channels), two
  3x3 convolutions (64 channels, ReLU) and a 3x3 convolution to one channel predict a residual R_i that
  is added to the upsampled deeper prediction: ``S_i = R_i + up(S_{i+1})`` (residual learning, Sec. 3.2).
* every S_i (logits) is upsampled to the input size and supervised with binary cross-entropy (Eq. 3);
  S_1 is the final prediction.

``width`` multiplies every channel count (backbone and heads), so the same architecture trains on a CPU;
``width=1`` is the paper's network. The backbone's parameter names match torchvision's VGG-16
(``features.N.weight`` / ``features.N.bias``), so an ImageNet state dict in torchvision's format loads
with :func:`load_vgg16_backbone` without torchvision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reprolab.core.checkpoint import read_state_dict
from reprolab.core.device import CONV_LAYOUT  # every convolution runs channels-last (why: core.device)
from reprolab.core.errors import DataError

__all__ = [
    "RAS",
    "RASOutput",
    "VGG16_CONV_INDICES",
    "VGG16Backbone",
    "deep_supervision_loss",
    "load_vgg16_backbone",
    "oracle_coarse_logits",
    "reverse_attention",
    "scaled",
]

# (torchvision ``features`` index, out channels at width 1) for the 13 convolutions of VGG-16, block by block
VGG16_BLOCKS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 64), (2, 64)),
    ((5, 128), (7, 128)),
    ((10, 256), (12, 256), (14, 256)),
    ((17, 512), (19, 512), (21, 512)),
    ((24, 512), (26, 512), (28, 512)),
)
VGG16_CONV_INDICES: tuple[int, ...] = tuple(index for block in VGG16_BLOCKS for index, _ in block)


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1 (the width multiplier applied to one layer)."""
    return max(1, int(round(channels * width)))


class VGG16Backbone(nn.Module):
    """The 13 convolutions of VGG-16 (Simonyan & Zisserman 2015) with torchvision's parameter names.

    ``features`` is an ``nn.Sequential`` laid out exactly like torchvision's ``vgg16().features`` (conv,
    ReLU, ..., max-pool), so its state-dict keys are ``features.{0,2,5,...,28}.{weight,bias}``. Forward
    returns the five side features (after ``conv1_2``, ``conv2_2``, ``conv3_3``, ``conv4_3``, ``conv5_3``,
    post-ReLU) and ``pool5``. Pools 4 and 5 are 3x3/stride 2/pad 1, as in the official RAS network.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.side_taps: list[int] = []  # index in ``features`` of the ReLU ending each block
        in_channels = 3
        for block_index, block in enumerate(VGG16_BLOCKS):
            for _, out in block:
                out_channels = scaled(out, width)
                layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = out_channels
            self.side_taps.append(len(layers) - 1)
            if block_index < 3:
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.MaxPool2d(3, 2, padding=1))
        self.features = nn.Sequential(*layers)
        self.side_channels = [scaled(block[-1][1], width) for block in VGG16_BLOCKS]
        for index in VGG16_CONV_INDICES:
            conv = self.features[index]
            assert isinstance(conv, nn.Conv2d), index
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.to(memory_format=CONV_LAYOUT)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``x``: B x 3 x H x W -> ([side_1 .. side_5], pool5)."""
        x = x.contiguous(memory_format=CONV_LAYOUT)
        sides: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.side_taps:
                sides.append(x)
        return sides, x


def reverse_attention(deeper_logits: torch.Tensor) -> torch.Tensor:
    """Reverse-attention weight ``A = 1 - sigmoid(S_{i+1})`` (Eq. 2); values lie in [0, 1]."""
    return 1.0 - torch.sigmoid(deeper_logits)


class GlobalSaliency(nn.Module):
    """S_6 from ``pool5``: 1x1 conv, three 5x5 conv + ReLU, 1x1 conv to one channel (Sec. 3.1)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, channels, 1)
        self.body = nn.Sequential(
            *[m for _ in range(3) for m in (nn.Conv2d(channels, channels, 5, padding=2), nn.ReLU(inplace=True))]
        )
        self.predict = nn.Conv2d(channels, 1, 1)

    def forward(self, pool5: torch.Tensor) -> torch.Tensor:
        return self.predict(self.body(self.reduce(pool5)))


class ResidualSide(nn.Module):
    """One side output: (reverse-attention-weighted) features -> residual R_i (Sec. 3.2-3.3).

    1x1 conv to ``channels``, two 3x3 conv + ReLU, a 3x3 conv to one channel.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 1),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


@dataclass
class RASOutput:
    """What :class:`RAS` returns.

    ``side_logits``: [S_1, ..., S_6], each B x 1 x h_i x w_i at its own resolution (S_1 at the input size).
    ``attention``: [A_1, ..., A_5], the reverse-attention weights (all ones in the ablation).
    ``logits``: S_1 (the final prediction); ``upsampled``: every S_i resized to the input size.
    """

    side_logits: list[torch.Tensor]
    attention: list[torch.Tensor]
    upsampled: list[torch.Tensor]

    @property
    def logits(self) -> torch.Tensor:
        return self.side_logits[0]


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class RAS(nn.Module):
    """Reverse attention network (Fig. 2). ``reverse_attention=False`` is the ablation without RA:
    the same residual side-output refinement, fed the unweighted side features (Sec. 4.4).

    Args:
        width: channel multiplier for every layer; 1.0 is the paper's network (~81 MB of float32).
        reverse_attention: weight side features by ``1 - sigmoid(up(S_{i+1}))`` (True) or not (False).
        global_channels: channels of the S_6 head at width 1 (256 in the paper).
        side_channels: channels of each residual side head at width 1 (64 in the paper).
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        reverse_attention: bool = True,
        global_channels: int = 256,
        side_channels: int = 64,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.width = width
        self.use_reverse_attention = reverse_attention
        self.backbone = VGG16Backbone(width)
        self.global_saliency = GlobalSaliency(self.backbone.side_channels[-1], scaled(global_channels, width))
        self.sides = nn.ModuleList(ResidualSide(c, scaled(side_channels, width)) for c in self.backbone.side_channels)
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and not name.startswith("backbone"):
                nn.init.normal_(module.weight, std=0.01)  # the official Gaussian(0.01) filler
                nn.init.zeros_(module.bias)
        self.to(memory_format=CONV_LAYOUT)

    def forward(self, image: torch.Tensor, coarse_logits: torch.Tensor | None = None) -> RASOutput:
        """``image``: B x 3 x H x W (normalised) -> :class:`RASOutput` (logits, not probabilities).

        ``coarse_logits`` (B x 1 x h x w, any resolution; diagnostic only) replaces the global
        prediction S_6, e.g. :func:`oracle_coarse_logits`, to test the refinement given a known coarse map.
        """
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected images of shape B x 3 x H x W, got {tuple(image.shape)}")
        features, pool5 = self.backbone(image)
        if coarse_logits is None:
            deeper = self.global_saliency(pool5)
        else:
            if coarse_logits.dim() != 4 or coarse_logits.shape[:2] != (image.shape[0], 1):
                raise ValueError(f"coarse_logits must be B x 1 x h x w, got {tuple(coarse_logits.shape)}")
            deeper = coarse_logits
        side_logits = [deeper]
        attention: list[torch.Tensor] = []
        for level in range(len(features) - 1, -1, -1):  # side 5 down to side 1
            side = features[level]
            up = _resize(deeper, side.shape[-2:])
            if self.use_reverse_attention:
                weight = reverse_attention(up)
                side = side * weight  # Eq. 1, broadcast over channels
            else:
                weight = torch.ones_like(up)
            deeper = self.sides[level](side) + up  # residual refinement
            side_logits.insert(0, deeper)
            attention.insert(0, weight)
        size = image.shape[-2:]
        return RASOutput(side_logits, attention, [_resize(s, size) for s in side_logits])


def oracle_coarse_logits(mask: torch.Tensor, magnitude: float, blur: int | None = None) -> torch.Tensor:
    """A confident, correct coarse map built from the ground truth (diagnostic, not part of RAS).

    The mask (B x 1 x H x W) is box-blurred over ``blur`` pixels (odd; default a seventh of the width)
    and mapped to logits in [-magnitude, +magnitude]: object interiors get ``+magnitude``, far background
    ``-magnitude``, edges in between. It stands in for the paper's premise (Sec. 3.3) that the global
    prediction from ImageNet features already covers the object interiors confidently.
    """
    if magnitude <= 0:
        raise ValueError(f"magnitude must be > 0, got {magnitude}")
    kernel = (blur if blur is not None else max(3, mask.shape[-1] // 7)) | 1
    soft = F.avg_pool2d(mask, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return magnitude * (2.0 * soft - 1.0)


def deep_supervision_loss(output: RASOutput, mask: torch.Tensor) -> torch.Tensor:
    """Sum over all six side outputs of the mean binary cross-entropy with the mask (Eq. 3).

    ``mask``: B x 1 x H x W with values in {0, 1} at the input size.
    """
    return sum(F.binary_cross_entropy_with_logits(s, mask) for s in output.upsampled)  # type: ignore[return-value]


def load_vgg16_backbone(model: RAS, state: Mapping[str, torch.Tensor] | str | Path) -> list[str]:
    """Load torchvision-format VGG-16 weights (``features.N.weight/bias``) into ``model.backbone``.

    ``state`` is a state dict or a path to one saved with ``torch.save``. Classifier keys are ignored;
    every one of the 26 convolution keys must be present with the right shape (which holds at
    ``width=1``). Returns the list of backbone keys loaded.
    """
    if not isinstance(state, Mapping):
        path = Path(state)
        state = read_state_dict(path, what="VGG-16 state dict")
        where = str(path)
    else:
        where = "state dict"
    own = model.backbone.state_dict()
    wanted = [f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")]
    missing = [key for key in wanted if key not in state]
    if missing:
        raise DataError(f"{where}: not a torchvision VGG-16 state dict; missing {', '.join(missing[:4])}")
    for key in wanted:
        if not isinstance(state[key], torch.Tensor):
            raise DataError(f"{where}: {key} is a {type(state[key]).__name__}, not a tensor")
        if tuple(state[key].shape) != tuple(own[key].shape):
            raise DataError(
                f"{where}: {key} has shape {tuple(state[key].shape)}, the backbone (width={model.width}) "
                f"expects {tuple(own[key].shape)}; pretrained weights need width=1"
            )
    model.backbone.load_state_dict({key: state[key] for key in wanted}, strict=True)
    return wanted
