"""Base-model training (PyKEEN's sLCWA loop), domain fitting on frozen embeddings, filtered ranking.

Evaluation follows the paper's protocol (Bordes et al. 2013, which DRE reuses): for every test triple
the head and then the tail is replaced by every entity, other known triples (train+valid+test) are
filtered out, and MR, MRR and Hits@1/3/10 are reported overall, per direction and per relation
category (1-1, 1-N, N-1, N-N by the 1.5 threshold on heads-per-tail and tails-per-head). Ranks are
PyKEEN's "realistic" ranks (mean of optimistic and pessimistic), so ties cost what they should.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from reprolab.core.errors import ConfigError
from reprolab.domain_kge.data import KGSplits
from reprolab.domain_kge.model import EllipsoidDomains, domain_distance, entity_space

__all__ = [
    "CATEGORIES",
    "build_base_model",
    "domain_distances",
    "evaluate",
    "fit_domains",
    "relation_categories",
    "train_base_model",
    "type_constraints",
]

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
VARIANTS = ("base", "head", "both")  # ablations: base alone; + head domain; + head and tail domains


def unit_ball(x: torch.Tensor) -> torch.Tensor:
    """Rescale rows with L2 norm above 1 back to norm 1; shorter rows are left alone (TransE's constraint)."""
    from pykeen.utils import clamp_norm

    return clamp_norm(x, maxnorm=1.0, p=2, dim=-1)


def build_base_model(name: str, splits: KGSplits, *, dim: int, seed: int, **kwargs: Any) -> Any:
    """Any PyKEEN model by name (``TransE``, ``TransR``, ...) or our ``STransE``; L1 energy for TransE/STransE."""
    from pykeen.models import model_resolver

    if name.lower() == "stranse":
        from reprolab.domain_kge.stranse import STransE

        cls: Any = STransE
    else:
        try:
            cls = model_resolver.lookup(name)
        except (KeyError, ValueError) as error:
            raise ConfigError(f"base_model: unknown PyKEEN model {name!r} (or STransE)") from error
    options: dict[str, Any] = {"embedding_dim": dim, "random_seed": seed, **kwargs}
    if cls.__name__ in ("TransE", "STransE"):
        options.setdefault("scoring_fct_norm", 1)
    if cls.__name__ == "TransE":
        # The paper's (and Bordes et al.'s official) TransE only rescales entity vectors whose norm exceeds 1;
        # PyKEEN's default projects every entity onto the unit sphere, where one sphere is a perfect domain for
        # every relation and DRE can say nothing (see docs/domain_kge.md).
        options.setdefault("entity_constrainer", unit_ball)
    return cls(triples_factory=splits.training, **options)


def train_base_model(
    model: Any, splits: KGSplits, *, epochs: int, batch_size: int, lr: float, num_negs: int = 1
) -> list[float]:
    """Train with PyKEEN's sLCWA loop (margin ranking loss for translation models); returns epoch losses."""
    from pykeen.training import SLCWATrainingLoop

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=splits.training,
        optimizer=optimizer,
        negative_sampler_kwargs={"num_negs_per_pos": num_negs},
    )
    return loop.train(triples_factory=splits.training, num_epochs=epochs, batch_size=batch_size, use_tqdm=False)


def _members(
    model: Any, triples: torch.Tensor, num_relations: int
) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """(relation, side, entity vectors, weights) of every non-empty domain's distinct training members.

    The weight of a member is how many training triples put it in that domain, so the weighted sum of
    member distances equals the per-triple sum of ``d_h + d_t``.
    """
    groups = []
    for r in range(num_relations):
        rows = triples[triples[:, 1] == r]
        if rows.shape[0] == 0:
            continue
        spaces = entity_space(model, r)
        for side, column in ((0, 0), (1, 2)):
            ids, counts = torch.unique(rows[:, column], return_counts=True)
            groups.append((r, side, spaces[side][ids], counts.float()))
    return groups


def fit_domains(
    model: Any,
    triples: torch.Tensor,
    num_relations: int,
    *,
    epochs: int,
    lr: float,
) -> tuple[EllipsoidDomains, list[float]]:
    """Fit head/tail ellipsoids on frozen base embeddings by minimising ``d_h + d_t`` over training triples.

    This is the official objective (``ellipsoid.cpp``: the unclamped distance summed over the positive
    training triples, no negatives). A triple contributes ``d_h(h, r) + d_t(t, r)``, so the loss equals
    a count-weighted sum over the distinct (relation, side, entity) members, which we minimise full-batch
    with Adam (``epochs`` steps, all domains at once) instead of the official per-triple SGD. The base
    embeddings are detached copies, so the base model never changes.
    """
    return _fit(model, triples, num_relations, epochs=epochs, lr=lr)


def _fit(
    model: Any, triples: torch.Tensor, num_relations: int, *, epochs: int, lr: float
) -> tuple[EllipsoidDomains, list[float]]:
    groups = _members(model, triples, num_relations)
    dim = entity_space(model, 0)[0].shape[1]
    domains = EllipsoidDomains(num_relations, dim)
    initial: list[tuple[torch.Tensor, torch.Tensor]] = [(torch.zeros(0, dim), torch.zeros(0, dim))] * num_relations
    for r, side, vectors, _ in groups:
        pair = list(initial[r])
        pair[side] = vectors
        initial[r] = (pair[0], pair[1])
    domains.initialise(initial)
    optimizer = torch.optim.Adam(domains.parameters(), lr=lr)
    n = float(triples.shape[0])
    width = max(vectors.shape[0] for _, _, vectors, _ in groups)
    members = sum(vectors.shape[0] for _, _, vectors, _ in groups)
    padded = width * len(groups) <= max(4 * members, 200_000)  # batched unless padding would dominate
    step_loss = _padded_loss(groups, width, dim) if padded else _looped_loss(groups)
    losses: list[float] = []
    for _ in range(epochs):
        loss = step_loss(domains) / n
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return domains, losses


def _looped_loss(groups: list[tuple[int, int, torch.Tensor, torch.Tensor]]) -> Any:
    """Sum of weighted member distances, one small op chain per domain (few domains, many members)."""

    def loss(domains: EllipsoidDomains) -> torch.Tensor:
        factor = domains.factor  # computed once per step, indexed per domain
        total = torch.zeros(())
        for r, side, vectors, weights in groups:
            d = domain_distance(vectors, domains.center[r, side], factor[r, side], clamp_inside=False)
            total = total + (weights * d).sum()
        return total

    return loss


def _padded_loss(groups: list[tuple[int, int, torch.Tensor, torch.Tensor]], width: int, dim: int) -> Any:
    """The same sum as one batched op over all domains, members zero-padded to ``width`` (weight 0)."""
    points = torch.zeros(len(groups), width, dim)
    weights = torch.zeros(len(groups), width)
    for index, (_, _, vectors, counts) in enumerate(groups):
        points[index, : vectors.shape[0]] = vectors
        weights[index, : counts.shape[0]] = counts
    relations = torch.tensor([r for r, _, _, _ in groups])
    sides = torch.tensor([side for _, side, _, _ in groups])

    def loss(domains: EllipsoidDomains) -> torch.Tensor:
        factor = domains.factor[relations, sides]
        center = domains.center[relations, sides]
        return (weights * domain_distance(points, center, factor, clamp_inside=False)).sum()

    return loss


@torch.no_grad()
def domain_distances(model: Any, domains: EllipsoidDomains, num_relations: int) -> torch.Tensor:
    """Test-time (clamped) distances of every entity to every domain, ``[R, 2, E]``."""
    rows = []
    factor = domains.factor
    for r in range(num_relations):
        heads, tails = entity_space(model, r)
        head_d = domains.distance(heads, r, 0, factor=factor)
        rows.append(torch.stack([head_d, domains.distance(tails, r, 1, factor=factor)]))
    return torch.stack(rows)


def relation_categories(triples: np.ndarray, num_relations: int) -> list[str]:
    """1-1 / 1-N / N-1 / N-N per relation from heads-per-tail and tails-per-head (threshold 1.5)."""
    categories = []
    for r in range(num_relations):
        rows = triples[triples[:, 1] == r]
        if len(rows) == 0:
            categories.append("1-1")
            continue
        tails_per_head = len(rows) / len(np.unique(rows[:, 0]))
        heads_per_tail = len(rows) / len(np.unique(rows[:, 2]))
        many_heads, many_tails = heads_per_tail >= 1.5, tails_per_head >= 1.5
        categories.append(f"{'N' if many_heads else '1'}-{'N' if many_tails else '1'}")
    return categories


def type_constraints(triples: np.ndarray, num_relations: int, num_entities: int) -> torch.Tensor:
    """Boolean ``[R, 2, E]``: entity e may be a head (side 0) / tail (side 1) of relation r.

    The type-constrained protocol of the TransX/OpenKE evaluation (``type_constrain.txt``, which
    the official DRE code reports beside the raw numbers): a relation's candidate heads and tails
    are the entities seen in that role among ``triples`` (OpenKE builds them from train, valid and
    test together); other entities are not ranked at all.
    """
    allowed = torch.zeros(num_relations, 2, num_entities, dtype=torch.bool)
    rows = torch.as_tensor(triples, dtype=torch.long)
    allowed[rows[:, 1], 0, rows[:, 0]] = True
    allowed[rows[:, 1], 1, rows[:, 2]] = True
    return allowed


def _known_index(all_triples: np.ndarray) -> tuple[dict[tuple[int, int], list[int]], dict[tuple[int, int], list[int]]]:
    tails: dict[tuple[int, int], list[int]] = {}
    heads: dict[tuple[int, int], list[int]] = {}
    for h, r, t in all_triples.tolist():
        tails.setdefault((h, r), []).append(t)
        heads.setdefault((r, t), []).append(h)
    return heads, tails


def _realistic_rank(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    true = scores.gather(1, target.unsqueeze(1))
    greater = (scores > true).sum(1).float()
    greater_equal = (scores >= true).sum(1).float()
    return 0.5 * (greater + 1.0) + 0.5 * greater_equal


@torch.no_grad()
def evaluate(
    model: Any,
    splits: KGSplits,
    distances: torch.Tensor | None,
    *,
    weight: float = 1.0,
    batch_size: int = 256,
    allowed: torch.Tensor | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Filtered ranks of every test triple for each variant: ``{variant: {"head": ranks, "tail": ranks}}``.

    ``distances`` is :func:`domain_distances`' ``[R, 2, E]`` tensor (``None``: base model only). The
    combined score of a candidate triple is ``score(h, r, t) - weight (d_h(h, r) + d_t(t, r))``; the
    "head" variant uses only ``d_h``. ``allowed`` (:func:`type_constraints`) restricts the candidates
    to the relation's heads / tails (type-constrained protocol); the true entity is always ranked.
    """
    model.eval()
    test = splits.testing.mapped_triples
    everything = torch.cat([splits.training.mapped_triples, splits.validation.mapped_triples, test]).numpy()
    known_heads, known_tails = _known_index(everything)
    variants = ("base",) if distances is None else VARIANTS
    ranks: dict[str, dict[str, list[torch.Tensor]]] = {v: {"head": [], "tail": []} for v in variants}
    for start in range(0, test.shape[0], batch_size):
        batch = test[start : start + batch_size]
        h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
        tail_scores = model.score_t(batch[:, :2]).float()
        head_scores = model.score_h(batch[:, 1:]).float()
        _filter(tail_scores, [known_tails[(int(a), int(b))] for a, b in zip(h, r)], t)
        _filter(head_scores, [known_heads[(int(a), int(b))] for a, b in zip(r, t)], h)
        if allowed is not None:
            _constrain(head_scores, allowed[r, 0], h)
            _constrain(tail_scores, allowed[r, 1], t)
        for variant in variants:
            hs, ts = head_scores, tail_scores
            if variant != "base":
                d_head = distances[r, 0]  # [B, E]: candidate heads in relation r's head domain
                hs = hs - weight * d_head
                ts = ts - weight * d_head.gather(1, h.unsqueeze(1))  # constant over tail candidates
                if variant == "both":
                    d_tail = distances[r, 1]
                    hs = hs - weight * d_tail.gather(1, t.unsqueeze(1))
                    ts = ts - weight * d_tail
            ranks[variant]["head"].append(_realistic_rank(hs, h))
            ranks[variant]["tail"].append(_realistic_rank(ts, t))
    return {v: {side: torch.cat(parts).numpy() for side, parts in sides.items()} for v, sides in ranks.items()}


def _filter(scores: torch.Tensor, known: list[list[int]], target: torch.Tensor) -> None:
    """Set the scores of other true answers to -inf (the filtered setting); keep the target's own score."""
    keep = scores.gather(1, target.unsqueeze(1)).clone()
    rows = [i for i, entities in enumerate(known) for _ in entities]
    cols = [e for entities in known for e in entities]
    scores[rows, cols] = -math.inf
    scores.scatter_(1, target.unsqueeze(1), keep)


def _constrain(scores: torch.Tensor, allowed: torch.Tensor, target: torch.Tensor) -> None:
    """Drop candidates outside the relation's type constraint (score -inf); the target always stays."""
    keep = scores.gather(1, target.unsqueeze(1)).clone()
    scores.masked_fill_(~allowed, -math.inf)
    scores.scatter_(1, target.unsqueeze(1), keep)


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """MR, MRR and Hits@1/3/10 of an array of (realistic) ranks."""
    if ranks.size == 0:
        return {
            "mr": float("nan"),
            "mrr": float("nan"),
            "hits1": float("nan"),
            "hits3": float("nan"),
            "hits10": float("nan"),
        }
    return {
        "mr": float(ranks.mean()),
        "mrr": float((1.0 / ranks).mean()),
        "hits1": float((ranks <= 1).mean()),
        "hits3": float((ranks <= 3).mean()),
        "hits10": float((ranks <= 10).mean()),
    }
