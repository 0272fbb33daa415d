"""Training targets and inference for the attention-LSTM decoder (Chen et al. 2018, Sec. 3.3-3.4).

* :func:`sequence_loss` — the per-step cross-entropy over labels + end token. With ``order="free"`` the
  target at step t is the ground-truth label, among those not yet emitted (the *candidate pool*), that the
  model currently gives the highest probability; the pool shrinks by one label per step and the end token
  is the target once it is empty. With ``order="fixed"`` the targets are a given sequence (the CNN-RNN
  baseline's frequent-first order), fed back by teacher forcing.
* :func:`greedy_decode` and :func:`beam_search` — inference with no repeated label, stopping at the end
  token. :func:`beam_search` runs every image's beams in one batch; :func:`beam_search_per_image` is the
  one-image-at-a-time reference used by the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reprolab.orderfree.model import AttentionLSTMDecoder, DecoderState

__all__ = [
    "DecodeResult",
    "beam_search",
    "beam_search_per_image",
    "choose_order_free_target",
    "frequent_first_sequences",
    "greedy_decode",
    "sequence_loss",
]


@dataclass
class DecodeResult:
    """Predicted multi-hot labels ``B x K``, the emitted sequences, and (greedy) per-step attention."""

    labels: Tensor
    sequences: list[list[int]]
    attention: list[Tensor] | None = None  # per step: B x L


def choose_order_free_target(probs: Tensor, remaining: Tensor, end: int) -> Tensor:
    """Sec. 3.3: the not-yet-emitted ground-truth label with the highest predicted probability.

    ``probs`` is ``B x (K+1)``, ``remaining`` a bool ``B x K`` candidate pool. Rows with an empty pool get
    the end token ``end``.
    """
    scores = probs[:, : remaining.shape[1]].masked_fill(~remaining, float("-inf"))
    chosen = scores.argmax(dim=1)
    return torch.where(remaining.any(dim=1), chosen, torch.full_like(chosen, end))


def frequent_first_sequences(targets: Tensor, frequency: Tensor, end: int) -> Tensor:
    """Each row's labels sorted by decreasing training frequency, then the end token (pad = ``end``).

    Returns ``B x (max_labels + 1)`` label indices; ties in frequency go to the smaller label index.
    """
    rank = torch.argsort(torch.argsort(-frequency, stable=True))  # label -> position in frequent-first order
    keys = torch.where(targets > 0, rank[None].expand_as(targets), torch.full_like(targets, 10**9, dtype=torch.long))
    order = torch.argsort(keys, dim=1, stable=True)
    length = int(targets.sum(dim=1).max().item()) if targets.numel() else 0
    sequences = torch.full((targets.shape[0], length + 1), end, dtype=torch.long)
    for row in range(targets.shape[0]):
        count = int(targets[row].sum().item())
        sequences[row, :count] = order[row, :count]
    return sequences


def sequence_loss(
    decoder: AttentionLSTMDecoder,
    features: Tensor,
    targets: Tensor,
    *,
    order: str = "free",
    sequences: Tensor | None = None,
    prob_weight: float = 1.0,
    record: list[Tensor] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean per-step cross-entropy (steps up to and including the end token) + BCE on ``v_prob``.

    ``targets`` is the multi-hot ``B x K`` ground truth. ``order="fixed"`` needs ``sequences``
    (``B x T`` label indices padded with the end token, see :func:`frequent_first_sequences`).
    ``record``, when given, receives every step's targets (for inspection and tests).
    """
    if order not in ("free", "fixed"):
        raise ValueError(f"order must be 'free' or 'fixed', got {order!r}")
    if order == "fixed" and sequences is None:
        raise ValueError("order='fixed' needs the target sequences")
    encoded = decoder.encode(features)
    state = decoder.initial_state(encoded)
    remaining = targets > 0
    active = torch.ones(targets.shape[0], dtype=torch.bool, device=targets.device)
    total, steps = features.new_zeros(()), 0
    max_steps = int(remaining.sum(dim=1).max().item()) + 1
    for t in range(max_steps):
        logits, _, hc = decoder.step(encoded, state)
        if order == "free":
            with torch.no_grad():
                target = choose_order_free_target(torch.softmax(logits, dim=1), remaining, decoder.end)
        else:
            assert sequences is not None
            target = sequences[:, t].to(targets.device)
        if record is not None:
            record.append(torch.where(active, target, torch.full_like(target, decoder.end)))
        per_row = F.cross_entropy(logits, target, reduction="none")
        total = total + per_row[active].sum()
        steps += int(active.sum().item())
        is_label = target < decoder.num_classes
        rows = torch.nonzero(is_label).squeeze(1)
        remaining = remaining.clone()
        remaining[rows, target[rows]] = False
        state = decoder.advance(state, logits, hc, target)
        active = active & is_label
    sequence_term = total / max(steps, 1)
    prob_term = F.binary_cross_entropy_with_logits(encoded.prob_logits, targets)
    loss = sequence_term + prob_weight * prob_term
    return loss, {"loss": float(loss.detach()), "seq_loss": float(sequence_term.detach()),
                  "prob_loss": float(prob_term.detach())}


def _max_steps(decoder: AttentionLSTMDecoder, max_labels: int | None) -> int:
    return decoder.num_classes if max_labels is None else min(max_labels, decoder.num_classes)


@torch.no_grad()
def greedy_decode(
    decoder: AttentionLSTMDecoder, features: Tensor, *, max_labels: int | None = None, keep_attention: bool = False
) -> DecodeResult:
    """Emit the most probable label (never one already emitted) until the end token or ``max_labels``."""
    encoded = decoder.encode(features)
    state = decoder.initial_state(encoded)
    batch = features.shape[0]
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    sequences: list[list[int]] = [[] for _ in range(batch)]
    attention: list[Tensor] = []
    for t in range(_max_steps(decoder, max_labels) + 1):
        logits, weights, hc = decoder.step(encoded, state)
        if t == _max_steps(decoder, max_labels):
            logits = _only_end(logits, decoder.end)
        label = logits.argmax(dim=1)
        label = torch.where(finished, torch.full_like(label, decoder.end), label)
        if keep_attention:
            attention.append(weights.cpu())
        for row in torch.nonzero(label < decoder.end).squeeze(1).tolist():
            sequences[row].append(int(label[row]))
        state = decoder.advance(state, logits, hc, label)
        finished = finished | (label == decoder.end)
        if bool(finished.all()):
            break
    return DecodeResult(state.emitted.float(), sequences, attention if keep_attention else None)


def _only_end(logits: Tensor, end: int) -> Tensor:
    forced = torch.full_like(logits, float("-inf"))
    forced[:, end] = logits[:, end]
    return forced


@torch.no_grad()
def beam_search(
    decoder: AttentionLSTMDecoder, features: Tensor, *, width: int = 3, max_labels: int | None = None
) -> DecodeResult:
    """Beam search over label sequences (Sec. 3.4), all images' beams in one batch.

    A hypothesis' score is the sum of its steps' log-probabilities; a hypothesis that emitted the end
    token is kept with its score unchanged. The best-scoring hypothesis gives the predicted label set.
    """
    if not 1 <= width <= decoder.num_classes + 1:
        raise ValueError(f"beam width must be in 1..{decoder.num_classes + 1}, got {width}")
    batch, classes = features.shape[0], decoder.num_classes + 1
    encoded = decoder.encode(features)
    flat = torch.arange(batch, device=features.device).repeat_interleave(width)
    encoded = encoded.select(flat)
    state: DecoderState = decoder.initial_state(encoded)
    scores = torch.full((batch, width), float("-inf"), device=features.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    finished = torch.zeros(batch * width, dtype=torch.bool, device=features.device)
    history = torch.full((batch * width, 0), decoder.end, dtype=torch.long, device=features.device)
    limit = _max_steps(decoder, max_labels)
    for t in range(limit + 1):
        logits, _, hc = decoder.step(encoded, state)
        if t == limit:
            logits = _only_end(logits, decoder.end)
        logp = torch.log_softmax(logits, dim=1)
        stay = torch.full_like(logp, float("-inf"))
        stay[:, decoder.end] = 0.0
        logp = torch.where(finished[:, None], stay, logp)
        candidates = (scores.reshape(-1, 1) + logp).reshape(batch, width * classes)
        top, index = candidates.topk(width, dim=1)
        parent = (index // classes + torch.arange(batch, device=features.device)[:, None] * width).reshape(-1)
        label = (index % classes).reshape(-1)
        state = state.select(parent)
        hc = (hc[0][parent], hc[1][parent])
        state = decoder.advance(state, logits[parent], hc, label)
        finished = finished[parent] | (label == decoder.end)
        history = torch.cat([history[parent], label[:, None]], dim=1)
        scores = top
        if bool(finished.all()):
            break
    best = torch.arange(batch, device=features.device) * width  # topk is sorted: beam 0 is the best
    sequences = [[int(v) for v in history[row].tolist() if v < decoder.end] for row in best.tolist()]
    return DecodeResult(state.emitted[best].float(), sequences)


@torch.no_grad()
def beam_search_per_image(
    decoder: AttentionLSTMDecoder, features: Tensor, *, width: int = 3, max_labels: int | None = None
) -> DecodeResult:
    """The same beam search, one image at a time (the reference for the batched version)."""
    results = [
        beam_search(decoder, features[i : i + 1], width=width, max_labels=max_labels) for i in range(len(features))
    ]
    labels = torch.cat([r.labels for r in results]) if results else features.new_zeros(0, decoder.num_classes)
    return DecodeResult(labels, [r.sequences[0] for r in results])
