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

import heapq
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reprolab.orderfree.model import DecoderState, Encoded, SequenceDecoder

__all__ = [
    "DecodeResult",
    "beam_search",
    "beam_search_per_image",
    "choose_order_free_target",
    "exact_search",
    "frequent_first_sequences",
    "greedy_decode",
    "sequence_log_prob",
    "sequence_loss",
    "set_map_decode",
]


@dataclass
class DecodeResult:
    """Predicted multi-hot labels ``B x K``, the emitted sequences, and (greedy) per-step attention."""

    labels: Tensor
    sequences: list[list[int]]
    attention: list[Tensor] | None = None  # per step: B x L
    scores: Tensor | None = None  # B: log-probability of the returned sequence (end token included)


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
    decoder: SequenceDecoder,
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


def _max_steps(decoder: SequenceDecoder, max_labels: int | None) -> int:
    return decoder.num_classes if max_labels is None else min(max_labels, decoder.num_classes)


@torch.no_grad()
def greedy_decode(
    decoder: SequenceDecoder, features: Tensor, *, max_labels: int | None = None, keep_attention: bool = False
) -> DecodeResult:
    """Emit the most probable label (never one already emitted) until the end token or ``max_labels``."""
    encoded = decoder.encode(features)
    state = decoder.initial_state(encoded)
    batch = features.shape[0]
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    sequences: list[list[int]] = [[] for _ in range(batch)]
    attention: list[Tensor] = []
    total = features.new_zeros(batch)
    for t in range(_max_steps(decoder, max_labels) + 1):
        logits, weights, hc = decoder.step(encoded, state)
        if t == _max_steps(decoder, max_labels):
            logits = _only_end(logits, decoder.end)
        label = logits.argmax(dim=1)
        label = torch.where(finished, torch.full_like(label, decoder.end), label)
        step = torch.log_softmax(logits, dim=1).gather(1, label[:, None]).squeeze(1)
        total = total + torch.where(finished, torch.zeros_like(step), step)
        if keep_attention:
            attention.append(weights.cpu())
        for row in torch.nonzero(label < decoder.end).squeeze(1).tolist():
            sequences[row].append(int(label[row]))
        state = decoder.advance(state, logits, hc, label)
        finished = finished | (label == decoder.end)
        if bool(finished.all()):
            break
    return DecodeResult(state.emitted.float(), sequences, attention if keep_attention else None, total)


def _only_end(logits: Tensor, end: int) -> Tensor:
    forced = torch.full_like(logits, float("-inf"))
    forced[:, end] = logits[:, end]
    return forced


@torch.no_grad()
def beam_search(
    decoder: SequenceDecoder, features: Tensor, *, width: int = 3, max_labels: int | None = None
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
    return DecodeResult(state.emitted[best].float(), sequences, scores=scores[:, 0].clone())


@torch.no_grad()
def beam_search_per_image(
    decoder: SequenceDecoder, features: Tensor, *, width: int = 3, max_labels: int | None = None
) -> DecodeResult:
    """The same beam search, one image at a time (the reference for the batched version)."""
    results = [
        beam_search(decoder, features[i : i + 1], width=width, max_labels=max_labels) for i in range(len(features))
    ]
    labels = torch.cat([r.labels for r in results]) if results else features.new_zeros(0, decoder.num_classes)
    scores = torch.cat([r.scores for r in results if r.scores is not None]) if results else None
    return DecodeResult(labels, [r.sequences[0] for r in results], scores=scores)


@torch.no_grad()
def sequence_log_prob(
    decoder: SequenceDecoder, features: Tensor, sequences: list[list[int]], *, max_labels: int | None = None
) -> Tensor:
    """``log P(y_1, ..., y_n, end | image)`` of given label sequences (one per image) under the decoder.

    The same factorisation that :func:`greedy_decode` and :func:`beam_search` score: the sum of the
    step log-probabilities, the end token included (forced once ``max_labels`` labels are emitted).
    """
    if len(sequences) != features.shape[0]:
        raise ValueError(f"{len(sequences)} sequences for {features.shape[0]} images")
    encoded = decoder.encode(features)
    state = decoder.initial_state(encoded)
    limit = _max_steps(decoder, max_labels)
    length = max((len(s) for s in sequences), default=0)
    if length > limit:
        raise ValueError(f"a sequence has {length} labels, more than the cap {limit}")
    padded = torch.full((len(sequences), length + 1), decoder.end, dtype=torch.long, device=features.device)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
    total = features.new_zeros(len(sequences))
    done = torch.zeros(len(sequences), dtype=torch.bool, device=features.device)
    for t in range(length + 1):
        logits, _, hc = decoder.step(encoded, state)
        if t == limit:
            logits = _only_end(logits, decoder.end)
        label = padded[:, t]
        step = torch.log_softmax(logits, dim=1).gather(1, label[:, None]).squeeze(1)
        total = total + torch.where(done, torch.zeros_like(step), step)
        state = decoder.advance(state, logits, hc, label)
        done = done | (label == decoder.end)
    return total


@torch.no_grad()
def exact_search(
    decoder: SequenceDecoder,
    features: Tensor,
    *,
    max_labels: int | None = None,
    expand: int = 32,
    max_expansions: int = 20000,
    incumbent: DecodeResult | None = None,
) -> DecodeResult:
    """The most probable label sequence (the exact argmax that beam search approximates), by best-first search.

    Step log-probabilities are <= 0, so a prefix's score only falls as it grows: popping prefixes in
    order of score (uniform-cost search) and stopping once the best finished sequence scores at least
    as high as every open prefix gives the exact maximiser of ``sum_t log p(y_t | y_<t, image)`` over
    all sequences without repeated labels (at most ``max_labels`` labels). ``expand`` prefixes are
    expanded per decoder call (exactness is unaffected). Raises ``RuntimeError`` after
    ``max_expansions`` prefix expansions for one image (a model too flat to search exhaustively).
    ``incumbent`` (e.g. beam search's result, with ``scores``) seeds the best finished sequence, so
    only prefixes that could beat it are expanded, and an incumbent with probability above 1/2 is returned
    without search (every other sequence has less than the remaining 1/2); the answer is the same, found faster.
    """
    if incumbent is not None and incumbent.scores is None:
        raise ValueError("the incumbent needs its sequence scores")
    encoded = decoder.encode(features)
    limit = _max_steps(decoder, max_labels)
    labels = features.new_zeros(features.shape[0], decoder.num_classes)
    sequences: list[list[int]] = []
    scores = features.new_zeros(features.shape[0])
    for row in range(features.shape[0]):
        start = None
        if incumbent is not None and incumbent.scores is not None:
            start = (float(incumbent.scores[row]), list(incumbent.sequences[row]))
            if start[0] > math.log(0.5):
                sequences.append(start[1])
                scores[row] = start[0]
                labels[row, start[1]] = 1.0
                continue
        best, score = _best_first(decoder, encoded.select(torch.tensor([row], device=features.device)), limit,
                                  expand, max_expansions, start)
        sequences.append(best)
        scores[row] = score
        if best:
            labels[row, best] = 1.0
    return DecodeResult(labels, sequences, scores=scores)


def _best_first(
    decoder: SequenceDecoder, encoded: Encoded, limit: int, expand: int, max_expansions: int,
    start: tuple[float, list[int]] | None = None,
) -> tuple[list[int], float]:
    """Uniform-cost search over one image's label sequences; returns the best sequence and its log-prob."""
    tie = itertools.count()
    device = encoded.values.device
    root = decoder.initial_state(encoded)
    heap: list[tuple[float, int, list[int], DecoderState]] = [(0.0, next(tie), [], root)]
    best: tuple[float, list[int]] = (float("-inf"), []) if start is None else start
    expansions = 0
    while heap and -heap[0][0] > best[0]:
        batch = [heapq.heappop(heap) for _ in range(min(expand, len(heap)))]
        expansions += len(batch)
        if expansions > max_expansions:
            raise RuntimeError(f"exact search expanded more than {max_expansions} prefixes for one image")
        state = _stack_states([item[3] for item in batch])
        logits, _, hc = decoder.step(encoded.select(torch.zeros(len(batch), dtype=torch.long, device=device)), state)
        depth = torch.tensor([len(item[2]) for item in batch], device=device)
        at_limit = depth >= limit
        if bool(at_limit.any()):
            logits = torch.where(at_limit[:, None], _only_end(logits, decoder.end), logits)
        logp = torch.log_softmax(logits, dim=1)
        for index, (negative, _, prefix, _) in enumerate(batch):
            end_score = -negative + float(logp[index, decoder.end])
            if end_score > best[0]:
                best = (end_score, prefix)
        parents, children = [], []
        for index, (negative, _, prefix, _) in enumerate(batch):
            for label in range(decoder.num_classes):
                score = -negative + float(logp[index, label])
                if score > best[0]:  # only prefixes that could still beat the best finished sequence
                    parents.append(index)
                    children.append((score, prefix + [label]))
        if not children:
            continue
        parent = torch.tensor(parents, device=device)
        label_tensor = torch.tensor([child[1][-1] for child in children], device=device)
        advanced = decoder.advance(state.select(parent), logits[parent], (hc[0][parent], hc[1][parent]),
                                   label_tensor)
        for index, (score, prefix) in enumerate(children):
            heapq.heappush(heap, (-score, next(tie), prefix, advanced.select(torch.tensor([index], device=device))))
    return best[1], best[0]


def _stack_states(states: list[DecoderState]) -> DecoderState:
    return DecoderState(
        torch.cat([s.h for s in states]), torch.cat([s.c for s in states]), torch.cat([s.p for s in states]),
        torch.cat([s.emitted for s in states]), torch.cat([s.last for s in states]),
    )


@torch.no_grad()
def set_map_decode(
    decoder: SequenceDecoder, features: Tensor, *, eps: float = 1e-4, max_labels: int | None = None
) -> tuple[DecodeResult, Tensor]:
    """The most probable label *set*: ``P(S) = sum over orderings of S of P(ordering, end)``.

    An order-free model may split a set's probability over several orderings, so the most probable
    sequence (what beam search looks for) need not carry the most probable set. Every prefix with
    probability above ``eps`` is expanded (all images batched, one decoder call per depth) and finished
    sequences add their probability to their set. Returns the decoding (``scores`` = log P of the chosen
    set, a lower bound) and a bool tensor telling, per image, whether the choice is certified exact:
    its lead over the runner-up exceeds the probability mass left unexplored.
    """
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    batch = features.shape[0]
    encoded = decoder.encode(features)
    image = torch.arange(batch, device=features.device)
    state = decoder.initial_state(encoded)
    prefix_logp = features.new_zeros(batch)
    prefixes: list[list[int]] = [[] for _ in range(batch)]
    mass: list[dict[frozenset[int], float]] = [{} for _ in range(batch)]
    limit = _max_steps(decoder, max_labels)
    for t in range(limit + 1):
        if len(image) == 0:
            break
        logits, _, hc = decoder.step(encoded.select(image), state)
        if t == limit:
            logits = _only_end(logits, decoder.end)
        total = prefix_logp[:, None] + torch.log_softmax(logits, dim=1)
        for index, probability in enumerate(total[:, decoder.end].exp().tolist()):
            key = frozenset(prefixes[index])
            owner = mass[int(image[index])]
            owner[key] = owner.get(key, 0.0) + probability
        keep = torch.nonzero(total[:, : decoder.num_classes].exp() > eps)
        parent, label = keep[:, 0], keep[:, 1]
        state = decoder.advance(state.select(parent), logits[parent], (hc[0][parent], hc[1][parent]), label)
        prefix_logp = total[parent, label]
        prefixes = [prefixes[int(p)] + [int(k)] for p, k in zip(parent.tolist(), label.tolist())]
        image = image[parent]
    labels = features.new_zeros(batch, decoder.num_classes)
    scores = features.new_zeros(batch)
    certified = torch.zeros(batch, dtype=torch.bool)
    sequences: list[list[int]] = []
    for row, sets in enumerate(mass):
        ranked = sorted(sets.items(), key=lambda item: -item[1])
        best, probability = ranked[0] if ranked else (frozenset(), 0.0)
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        certified[row] = probability - runner_up > 1.0 - sum(sets.values())
        sequences.append(sorted(best))
        scores[row] = math.log(probability) if probability > 0 else float("-inf")
        if best:
            labels[row, sorted(best)] = 1.0
    return DecodeResult(labels, sequences, scores=scores), certified
