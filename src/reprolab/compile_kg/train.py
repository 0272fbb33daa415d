"""Training both subgraph models: margin ranking loss with head/tail-corrupted negatives.

GraIL Sec. 3.4 and CoMPILE Sec. 3.5: every training triple ``(h, r, t)`` of the training graph is a
positive; a negative replaces its head or its tail (each with probability 1/2) by a uniformly drawn
entity, redrawn when the corrupted triple is itself in the graph. The loss is
``sum_i max(0, margin - s(pos_i) + s(neg_i))`` (``nn.MarginRankingLoss(reduction="sum")`` in both
official codes), optimised with Adam and L2 weight decay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reprolab.compile_kg.data import KnowledgeGraph
from reprolab.compile_kg.subgraph import SubgraphBatch, SubgraphExtractor
from reprolab.core.progress import progress
from reprolab.core.sweep import Sweep

__all__ = ["ExtractionCache", "corrupt", "margin_ranking_loss", "score_triples", "train_model"]


def corrupt(
    triples: np.ndarray, num_entities: int, known: set[tuple[int, int, int]], generator: torch.Generator,
    *, tries: int = 10, reversal_rate: float = 0.0,
) -> np.ndarray:
    """One negative per triple: head or tail (probability 1/2 each) replaced by a random entity.

    Corrupted triples found in ``known`` (or equal to the positive) are redrawn up to ``tries`` times.
    With ``reversal_rate > 0`` (not in the papers; used by the targeted asymmetry test), that share of the
    negatives is the reversed triple ``(t, r, h)`` instead, wherever the reversal is not a known triple.
    """
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    negatives = triples.copy()
    side = torch.randint(0, 2, (len(triples),), generator=generator).numpy() * 2  # column 0 or 2
    pending = np.arange(len(triples))
    for _ in range(tries):
        if len(pending) == 0:
            break
        draws = torch.randint(0, num_entities, (len(pending),), generator=generator).numpy()
        negatives[pending, side[pending]] = draws
        rows = negatives[pending]
        bad = np.array([tuple(row) in known for row in rows.tolist()], dtype=bool)
        bad |= (rows == triples[pending]).all(1)
        pending = pending[bad]
    if reversal_rate > 0:
        flip = torch.rand(len(triples), generator=generator).numpy() < reversal_rate
        reversed_ = triples[:, [2, 1, 0]]
        flip &= np.array([tuple(row) not in known for row in reversed_.tolist()], dtype=bool)
        flip &= triples[:, 0] != triples[:, 2]
        negatives[flip] = reversed_[flip]
    return negatives


def margin_ranking_loss(positive: Tensor, negative: Tensor, margin: float) -> Tensor:
    """``sum max(0, margin - positive + negative)`` (GraIL Eq. 6)."""
    return torch.relu(margin - positive + negative).sum()


def train_model(
    sweep: Sweep,
    unit: str,
    model: nn.Module,
    graph: KnowledgeGraph,
    targets: np.ndarray,
    extractor: SubgraphExtractor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    margin: float,
    generator: torch.Generator,
    device: torch.device,
    checkpoint_every: int = 0,
    log_every: int = 10,
    reversal_rate: float = 0.0,
    noise_seed: int | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    valid_every: int = 0,
) -> dict[str, Any] | None:
    """Optimise ``model`` for ``steps`` mini-batches of positives and their corruptions (resumable).

    Dropout draws from torch's global generator; with ``noise_seed`` it is reseeded at every step from
    ``(noise_seed, step)``, so a run resumed from a checkpoint draws the same masks as an uninterrupted one.

    Best-validation selection (GraIL's and CoMPILE's ``trainer.py``): every ``valid_every`` steps
    ``validate(model)`` (their validation ROC-AUC) is computed and the state is kept when it is at least the
    best so far (``>=``). Returns ``{"state", "step", "valid_auc"}`` of the kept state, or None when no
    validation ran (then the final state is the model, as the official code has no best file either). The
    best so far is held in the sweep's record under ``unit + "/best"`` and saved with the next checkpoint, so
    a resumed run sees the best of the steps it resumes after.
    """
    # foreach: the same per-tensor update in one call per step (on CPU the default loops tensor by tensor in Python)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    known = graph.known()
    recent: list[float] = []  # losses since the last log line, so the logged curve is a window mean

    def step(index: int) -> dict[str, float]:
        if noise_seed is not None:
            _seed_global_generator((noise_seed + index) % (2**63), device)
        model.train()
        pick = torch.randint(0, len(targets), (batch_size,), generator=generator).numpy()
        positives = targets[pick]
        negatives = corrupt(positives, graph.num_entities, known, generator, reversal_rate=reversal_rate)
        batch = extractor(np.concatenate([positives, negatives])).to(device)
        scores = model(batch)
        pos, neg = scores[:batch_size], scores[batch_size:]
        loss = margin_ranking_loss(pos, neg, margin)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        recent.append(loss.item() / batch_size)
        window = float(np.mean(recent[-log_every:])) if log_every else recent[-1]
        del recent[: max(0, len(recent) - log_every)]
        values = {"loss": window, "pos_minus_neg": (pos - neg).mean().item()}
        if validate is not None and valid_every and (index + 1) % valid_every == 0:
            auc = _keep_best(sweep, best_unit, model, validate(model), index + 1)
            sweep.ctx.log(unit=unit, step=index + 1, valid_auc=auc)  # every validation, not only on log steps
        return values

    best_unit = f"{unit}/best"
    sweep.train(
        unit, steps=steps, step_fn=step, model=model, optimizer=optimizer, generator=generator,
        checkpoint_every=checkpoint_every, log_every=log_every,
    )
    best = sweep.done.pop(best_unit, None)
    return best


def _seed_global_generator(seed: int, device: torch.device | str) -> None:
    """``torch.manual_seed(seed)``, for the generator that draws the dropout masks. On the CPU that is the CPU
    generator alone: ``torch.manual_seed`` also queues the seed for every accelerator back-end, formatting a
    stack trace for each (~4 ms a call, about an eighth of a quick run when done every step)."""
    if torch.device(device).type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _keep_best(sweep: Sweep, best_unit: str, model: nn.Module, auc: float, step: int) -> float:
    """Record ``model``'s state as the best when ``auc >= `` the best so far (GraIL: ``result['auc'] >= best``).

    Written into the sweep's record without a save of its own: the next checkpoint stores it together with
    the training state it belongs to.
    """
    best = sweep.done.get(best_unit)
    if best is None or auc >= best["valid_auc"]:
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        sweep.done[best_unit] = {"state": state, "step": step, "valid_auc": auc}
    return auc


class ExtractionCache:
    """Extracted evaluation batches kept per split and extractor, so repeats re-use them.

    Keyed by the extractor's identity and the bytes of the triple chunk; holds at most ``max_edges`` edges
    in total (later chunks are extracted again when it is full).
    """

    def __init__(self, max_edges: int = 5_000_000) -> None:
        self.max_edges = max_edges
        self.edges = 0
        self._batches: dict[tuple[str, bytes], SubgraphBatch] = {}

    def get(self, key: str, extractor: SubgraphExtractor, chunk: np.ndarray) -> SubgraphBatch:
        full_key = (key, np.ascontiguousarray(chunk).tobytes())
        batch = self._batches.get(full_key)
        if batch is None:
            batch = extractor(chunk)
            if self.edges + batch.num_edges <= self.max_edges:
                self._batches[full_key] = batch
                self.edges += batch.num_edges
        return batch


@torch.no_grad()
def score_triples(
    model: nn.Module, extractor: SubgraphExtractor, triples: np.ndarray, *, batch_size: int, device: torch.device,
    cache: ExtractionCache | None = None, cache_key: str = "", desc: str = "",
) -> np.ndarray:
    """Scores of ``triples`` (``T x 3``) in evaluation mode, extracted (or taken from ``cache``) in chunks.

    With ``desc``, a progress bar with an ETA over the chunks (full rankings of the larger splits take
    minutes)."""
    model.eval()
    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    out = np.empty(len(triples), dtype=np.float64)
    starts = range(0, len(triples), batch_size)
    for start in progress(starts, desc=desc, total=len(starts)) if desc else starts:
        chunk = triples[start : start + batch_size]
        batch = cache.get(cache_key, extractor, chunk) if cache is not None else extractor(chunk)
        out[start : start + len(chunk)] = model(batch.to(device)).double().cpu().numpy()
    return out
