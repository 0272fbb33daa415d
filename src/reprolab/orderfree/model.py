"""Networks of the order-free RNN (Chen et al., AAAI 2018, Sec. 3 and Fig. 2) and of the baselines.

* :class:`ResNetBackbone` — a ResNet with BasicBlocks whose parameter names follow torchvision
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so a torchvision-format state
  dict saved to a local file loads with :func:`load_torchvision_resnet` (no torchvision needed). The paper
  uses an ImageNet ResNet-152; the embedded default is a small ResNet trained from scratch.
* :class:`BinaryRelevanceHead` — global pooling + one sigmoid per label (the BR baseline).
* :class:`AttentionLSTMDecoder` — the feature-mapping layer ``M_map`` (``v_feat`` and the preliminary
  multi-label prediction ``v_prob`` that initialises the LSTM), the attention layer ``M_att`` driven by the
  LSTM state, and the prediction layer ``M_pred`` over the labels plus an end token (Fig. 2).
* :class:`CNNRNNDecoder` — the CNN-RNN of Wang et al. (CVPR 2016), the paper's main baseline: label
  embeddings, an LSTM over the previous labels' embeddings, and a joint image-label embedding space in
  which the next label is scored by a dot product with the (shared) label embeddings; no attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.core.checkpoint import read_state_dict
from reprolab.core.device import CONV_LAYOUT  # the CNN runs channels-last (why: core.device)
from reprolab.core.errors import CheckpointError

__all__ = [
    "AttentionLSTMDecoder",
    "BinaryRelevanceHead",
    "CNNRNNDecoder",
    "DecoderState",
    "ImageLabeller",
    "ResNetBackbone",
    "build_image_labeller",
    "load_torchvision_resnet",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016), torchvision parameter names."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ResNet feature extractor returning the last spatial feature map ``B x C x H x W``.

    ``stem="imagenet"`` is torchvision's 7x7/2 convolution + 3x3/2 max-pool; ``stem="small"`` a 3x3/1
    convolution for small images. ``widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)`` with the imagenet
    stem and ``in_channels=3`` is torchvision's ResNet-18 layout.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        blocks: Sequence[int] = (1, 1, 1),
        *,
        in_channels: int = 1,
        stem: str = "small",
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths {list(widths)} and blocks {list(blocks)} must be non-empty and equally long")
        if stem not in ("small", "imagenet"):
            raise ValueError(f"stem must be 'small' or 'imagenet', got {stem!r}")
        self.stem = stem
        kernel, stride, pad = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if index == 1 else 2
            layer = [BasicBlock(in_planes, width, stride)] + [BasicBlock(width, width) for _ in range(count - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layer))
            in_planes = width
        self.num_layers = len(widths)
        self.out_channels = in_planes
        self.to(memory_format=CONV_LAYOUT)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: B x C_in x H x W -> the last feature map B x C x H' x W' (in the default, contiguous layout)."""
        x = F.relu(self.bn1(self.conv1(x.contiguous(memory_format=CONV_LAYOUT))))
        if self.stem == "imagenet":
            x = F.max_pool2d(x, 3, 2, 1)
        for index in range(1, self.num_layers + 1):
            x = getattr(self, f"layer{index}")(x)
        return x.contiguous()


def load_torchvision_resnet(backbone: ResNetBackbone, path: str | Path) -> list[str]:
    """Load a torchvision-format ResNet state dict from a local file into ``backbone``.

    Keys are matched by name (the classifier ``fc.*`` is ignored); every backbone parameter must be
    present with the same shape. Returns the ignored keys. Raises :class:`CheckpointError` naming the
    first missing or mis-shaped key.
    """
    path = Path(path)
    state = read_state_dict(path, what="ResNet state dict", error=CheckpointError)
    if "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    own = backbone.state_dict()
    for key, value in own.items():
        if key not in state:
            raise CheckpointError(f"{path}: key {key!r} missing (is this a torchvision ResNet with BasicBlocks?)")
        if tuple(state[key].shape) != tuple(value.shape):
            shape = tuple(state[key].shape)
            raise CheckpointError(f"{path}: key {key!r} has shape {shape}, expected {tuple(value.shape)}")
    backbone.load_state_dict({key: state[key] for key in own})
    return sorted(key for key in state if key not in own)


class BinaryRelevanceHead(nn.Module):
    """Global average pooling + a linear layer: one independent sigmoid per label (the BR baseline)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.fc(features.mean(dim=(2, 3)))


@dataclass
class DecoderState:
    """Per-sequence decoder state: LSTM ``h, c``, label-probability vector ``p``, emitted mask, last label."""

    h: Tensor
    c: Tensor
    p: Tensor
    emitted: Tensor  # bool B x K
    last: Tensor  # long B (START index before the first step)

    def select(self, index: Tensor) -> DecoderState:
        return DecoderState(self.h[index], self.c[index], self.p[index], self.emitted[index], self.last[index])


@dataclass
class Encoded:
    """What the decoder needs from one image, computed once: attention keys/values and ``v_prob``."""

    values: Tensor  # B x L x H (v_feat at every location)
    keys: Tensor  # B x L x A
    prob_logits: Tensor  # B x K (preliminary prediction, before the sigmoid)

    def select(self, index: Tensor) -> Encoded:
        return Encoded(self.values[index], self.keys[index], self.prob_logits[index])


class AttentionLSTMDecoder(nn.Module):
    """``M_map`` + ``M_att`` + LSTM + ``M_pred`` of Fig. 2, over a CNN feature map ``B x C x H x W``.

    * ``M_map`` (Sec. 3.1): ``v_feat = W_f f_l`` at every location ``l`` and ``v_prob = sigmoid(W_p
      mean_l f_l)``, the preliminary multi-label prediction, trained with binary cross-entropy and used
      to initialise the LSTM (``h_0 = tanh(W_h v_prob)``, ``c_0 = tanh(W_c v_prob)``) and as ``p_0``.
    * ``M_att`` (Sec. 3.2): ``e_{t,l} = w^T tanh(W_k v_feat_l + W_q h_{t-1})``, ``alpha_t = softmax_l(e_t)``,
      context ``z_t = sum_l alpha_{t,l} v_feat_l``.
    * LSTM input at step t: the label-probability vector ``p_{t-1}`` with already emitted labels zeroed
      (the candidate pool) and ``z_t`` (Fig. 2: ``p`` is "updated at every time stamp" and fed back; the
      paper feeds no label embedding). ``label_embedding=True`` also feeds an embedding of the label emitted
      at ``t-1`` (an option of ours, off by default and in the ``paper`` preset).
    * ``M_pred`` (Sec. 3.3): logits over the K labels and the end token from ``[h_t, z_t]``; ``p_t`` is the
      softmax over the labels still in the candidate pool.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        *,
        hidden: int = 128,
        embed: int = 32,
        attention_dim: int = 64,
        attention: bool = True,
        label_embedding: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.end = num_classes  # end token index
        self.start = num_classes + 1  # start token (input only)
        self.attention = attention
        self.label_embedding = label_embedding
        self.map_feat = nn.Linear(channels, hidden)
        self.map_prob = nn.Linear(channels, num_classes)
        self.init_h = nn.Linear(num_classes, hidden)
        self.init_c = nn.Linear(num_classes, hidden)
        self.att_key = nn.Linear(hidden, attention_dim)
        self.att_query = nn.Linear(hidden, attention_dim, bias=False)
        self.att_score = nn.Linear(attention_dim, 1, bias=False)
        self.embed = nn.Embedding(num_classes + 2, embed) if label_embedding else None
        self.cell = nn.LSTMCell(num_classes + (embed if label_embedding else 0) + hidden, hidden)
        self.pred = nn.Linear(2 * hidden, num_classes + 1)

    # -- M_map ------------------------------------------------------------------------------------
    def encode(self, features: Tensor) -> Encoded:
        flat = features.flatten(2).transpose(1, 2)  # B x L x C
        values = torch.relu(self.map_feat(flat))
        return Encoded(values, self.att_key(values), self.map_prob(flat.mean(dim=1)))

    def initial_state(self, encoded: Encoded) -> DecoderState:
        v_prob = torch.sigmoid(encoded.prob_logits)
        batch = v_prob.shape[0]
        return DecoderState(
            h=torch.tanh(self.init_h(v_prob)),
            c=torch.tanh(self.init_c(v_prob)),
            p=v_prob,
            emitted=torch.zeros(batch, self.num_classes, dtype=torch.bool, device=v_prob.device),
            last=torch.full((batch,), self.start, dtype=torch.long, device=v_prob.device),
        )

    # -- M_att -----------------------------------------------------------------------------------
    def attend(self, encoded: Encoded, h: Tensor) -> tuple[Tensor, Tensor]:
        """Context ``z_t`` (B x H) and attention weights ``alpha_t`` (B x L)."""
        if not self.attention:
            weights = torch.full(encoded.values.shape[:2], 1.0 / encoded.values.shape[1], device=h.device)
        else:
            scores = self.att_score(torch.tanh(encoded.keys + self.att_query(h)[:, None])).squeeze(-1)
            weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights[:, None], encoded.values).squeeze(1), weights

    # -- one time step ------------------------------------------------------------------------------
    def step(self, encoded: Encoded, state: DecoderState) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Masked logits ``B x (K+1)`` (emitted labels at -inf), attention weights, and the new ``(h, c)``."""
        context, weights = self.attend(encoded, state.h)
        pool_p = state.p.masked_fill(state.emitted, 0.0)
        parts = [pool_p] + ([self.embed(state.last)] if self.embed is not None else []) + [context]
        x = torch.cat(parts, dim=1)
        h, c = self.cell(x, (state.h, state.c))
        logits = self.pred(torch.cat([h, context], dim=1))
        blocked = F.pad(state.emitted, (0, 1), value=False)
        return logits.masked_fill(blocked, float("-inf")), weights, (h, c)

    def advance(self, state: DecoderState, logits: Tensor, hc: tuple[Tensor, Tensor], label: Tensor) -> DecoderState:
        """State after emitting ``label`` (the end token leaves the emitted set unchanged)."""
        emitted = state.emitted.clone()
        is_label = label < self.num_classes
        rows = torch.nonzero(is_label).squeeze(1)
        emitted[rows, label[rows]] = True
        p = torch.softmax(logits[:, : self.num_classes].masked_fill(emitted, -1e9), dim=1)
        p = p.masked_fill(emitted, 0.0)  # all zero once every label is emitted (empty pool)
        return DecoderState(hc[0], hc[1], p, emitted, label)


class CNNRNNDecoder(nn.Module):
    """The CNN-RNN of Wang et al. (CVPR 2016, Sec. 3), with the decoding interface of :class:`AttentionLSTMDecoder`.

    * label embedding ``w_k = U_l e_k`` (Sec. 3.1; rows for the K labels, the end token and a start token);
    * recurrent layer: an LSTM over the embedding of the previously emitted label, ``o(t) = h_t`` (Sec. 3.2);
    * projection into the joint embedding space: ``x_t = ReLU(U_o o(t) + U_I I)`` with ``I`` the globally
      pooled CNN feature (Sec. 3.3, Eq. 3);
    * label scores ``s(t) = U_l^T x_t``: the dot product with the *same* label embeddings (Eq. 4), softmax
      over the K labels + end token.

    The LSTM starts from a zero state and is conditioned on the image only through the projection, as in
    the original. As for our other decoders, labels already emitted are masked (no duplicates).
    """

    def __init__(self, channels: int, num_classes: int, *, hidden: int = 128, embed: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.end = num_classes
        self.start = num_classes + 1
        self.label_embed = nn.Embedding(num_classes + 2, embed)  # U_l (labels, end, start)
        self.cell = nn.LSTMCell(embed, hidden)
        self.project_rnn = nn.Linear(hidden, embed)  # U_o
        self.project_image = nn.Linear(channels, embed)  # U_I

    def encode(self, features: Tensor) -> Encoded:
        """``U_I I`` with ``I`` the mean-pooled feature map, stored as a one-location ``values`` map."""
        image = self.project_image(features.flatten(2).mean(dim=2))[:, None]  # B x 1 x E
        return Encoded(image, image, features.new_zeros(features.shape[0], self.num_classes))

    def initial_state(self, encoded: Encoded) -> DecoderState:
        batch, device = encoded.values.shape[0], encoded.values.device
        zeros = torch.zeros(batch, self.cell.hidden_size, device=device)
        return DecoderState(
            h=zeros, c=zeros.clone(), p=torch.zeros(batch, self.num_classes, device=device),
            emitted=torch.zeros(batch, self.num_classes, dtype=torch.bool, device=device),
            last=torch.full((batch,), self.start, dtype=torch.long, device=device),
        )

    def step(self, encoded: Encoded, state: DecoderState) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Masked scores ``s(t)`` over labels + end token, (no) attention weights, and the new ``(h, c)``."""
        h, c = self.cell(self.label_embed(state.last), (state.h, state.c))
        joint = torch.relu(self.project_rnn(h) + encoded.values[:, 0])
        logits = joint @ self.label_embed.weight[: self.num_classes + 1].T
        blocked = F.pad(state.emitted, (0, 1), value=False)
        weights = torch.ones(h.shape[0], 1, device=h.device)
        return logits.masked_fill(blocked, float("-inf")), weights, (h, c)

    def advance(self, state: DecoderState, logits: Tensor, hc: tuple[Tensor, Tensor], label: Tensor) -> DecoderState:
        """State after emitting ``label`` (the end token leaves the emitted set unchanged)."""
        emitted = state.emitted.clone()
        rows = torch.nonzero(label < self.num_classes).squeeze(1)
        emitted[rows, label[rows]] = True
        return DecoderState(hc[0], hc[1], state.p, emitted, label)


SequenceDecoder = AttentionLSTMDecoder | CNNRNNDecoder


class ImageLabeller(nn.Module):
    """A run's trained model as one module (what ``reprolab.load_run(dir).model("orderfree")`` returns): the CNN
    ``backbone`` and either a sequence ``decoder`` (attention LSTM or CNN-RNN, decoded by beam search, Sec. 3.4)
    or the binary-relevance ``head`` (``br``)."""

    def __init__(self, backbone: ResNetBackbone, decoder: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder

    def features(self, images: Tensor) -> Tensor:
        """The CNN feature map of images ``B x C x H x W`` (grey images are repeated to the stem's channels)."""
        channels = self.backbone.conv1.in_channels
        return self.backbone(images.expand(-1, channels, -1, -1) if images.shape[1] != channels else images)

    @torch.no_grad()
    def predict(
        self, images: Tensor, *, width: int = 3, max_labels: int | None = None, threshold: float = 0.5
    ) -> Tensor:
        """Multi-hot predictions ``B x num_classes``: beam search of width ``width`` for a sequence decoder (the
        run's ``beam_width`` and ``max_labels`` reproduce its beam metrics), sigmoid > ``threshold`` for BR."""
        features = self.features(images)
        if isinstance(self.decoder, BinaryRelevanceHead):
            return (torch.sigmoid(self.decoder(features)) > threshold).float()
        from reprolab.orderfree.decode import beam_search

        return beam_search(self.decoder, features, width=width, max_labels=max_labels).labels


def build_image_labeller(
    backbone: dict, decoder: str, num_classes: int, decoder_kwargs: dict | None = None
) -> ImageLabeller:
    """Rebuild a saved :class:`ImageLabeller`: ``backbone`` = ResNetBackbone's keyword arguments, ``decoder`` one of
    ``attention`` (the attention LSTM, Fig. 2), ``cnnrnn`` (Wang et al.'s CNN-RNN) or ``br`` (binary relevance)."""
    cnn = ResNetBackbone(**backbone)
    channels = cnn.out_channels
    kwargs = dict(decoder_kwargs or {})
    head: nn.Module
    if decoder == "br":
        head = BinaryRelevanceHead(channels, num_classes)
    elif decoder == "cnnrnn":
        head = CNNRNNDecoder(channels, num_classes, **kwargs)
    else:
        head = AttentionLSTMDecoder(channels, num_classes, **kwargs)
    return ImageLabeller(cnn, head)

