"""The two evaluation protocols users argue about, stated explicitly.

1. **GraIL's sampled protocol** (GraIL Sec. 4.1; CoMPILE uses the same code):
   * AUC-PR: each test triple against *one* negative made by corrupting its head or its tail;
     ``sklearn.metrics.average_precision_score`` over the positives and negatives;
   * Hits@10 (and MRR): each test triple ranked against 49 heads and, separately, 49 tails drawn
     uniformly *with* replacement from the inductive graph's entities, rejecting corruptions that are in
     the support graph or have equal ends, ranked as GraIL's ``argsort`` ranks (``test_ranking.py``);
     without replacement, filtered against all known triples, with realistic ties is an option.
     Negatives are seeded and the whole protocol is repeated ``samplings`` times;
     the mean, standard deviation, min and max over samplings are reported, because one draw of 50
     negatives can move Hits@10 a lot (PAPERS.md: 0.14 to 0.74 over ten re-evaluations of one CoMPILE
     checkpoint).
2. **Filtered full ranking**: each test triple ranked against *every* entity of the inductive graph as
   head and as tail, with every other known true triple (support graph + valid + test) removed from the
   candidates (Bordes et al. 2013 'filtered' setting). Reports MRR, Hits@1 and Hits@10.

Sampled ranks follow GraIL's ``argsort`` (``ties="grail"``) or are 'realistic' (``1 + #(better) + #(tied) /
2``, so a model that gives every candidate the same score does not get rank 1); the full ranking is always
realistic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FullRankingResult",
    "SampledProtocol",
    "direction_blind_auc_pr",
    "distance_scorer",
    "grail_rank",
    "full_ranking",
    "realistic_rank",
    "reversal_auc",
    "sample_protocol",
    "sampled_metrics",
]

Scorer = Callable[[np.ndarray], np.ndarray]


def realistic_rank(true_score: float, candidate_scores: np.ndarray) -> float:
    """``1 + #(candidates scoring higher) + #(ties) / 2`` (candidates exclude the true triple)."""
    better = float(np.sum(candidate_scores > true_score))
    ties = float(np.sum(candidate_scores == true_score))
    return 1.0 + better + 0.5 * ties


@dataclass
class SampledProtocol:
    """One draw of GraIL's negatives for ``T`` test triples.

    ``auc_negatives``: ``T x 3``; ``head_candidates`` / ``tail_candidates``: ``T x num_negatives``
    entity ids (``-1`` pads rows that had fewer valid corruptions).
    """

    test: np.ndarray
    auc_negatives: np.ndarray
    head_candidates: np.ndarray
    tail_candidates: np.ndarray

    def ranking_triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All triples to score: (corrupted-head triples, corrupted-tail triples, their validity mask)."""
        t, k = self.head_candidates.shape
        heads = np.repeat(self.test[:, None, :], k, axis=1).copy()
        heads[:, :, 0] = np.maximum(self.head_candidates, 0)
        tails = np.repeat(self.test[:, None, :], k, axis=1).copy()
        tails[:, :, 2] = np.maximum(self.tail_candidates, 0)
        return heads.reshape(-1, 3), tails.reshape(-1, 3), np.stack([self.head_candidates, self.tail_candidates]) >= 0


def sample_protocol(
    test: np.ndarray, entities: np.ndarray, known: set[tuple[int, int, int]], rng: np.random.Generator,
    *, num_negatives: int = 49, replace: bool = True, distinct_ends: bool = True, max_rounds: int = 100,
) -> SampledProtocol:
    """Draw the AUC negatives and the ranking candidates of GraIL's protocol, filtered against ``known``.

    GraIL's ``test_ranking.py`` (``get_neg_samples_replacing_head_tail``, copied by CoMPILE) draws
    ``num_negatives = 49`` entities per side *with* replacement (``np.random.choice``), rejecting a draw whose
    corrupted triple is in the support graph or has equal head and tail (``distinct_ends``); ``known`` is
    then the support graph. ``replace=False`` draws without replacement (our earlier protocol).
    The AUC negative is the first candidate of a side drawn with probability 1/2 (one uniform corruption).
    """
    test = np.asarray(test, dtype=np.int64).reshape(-1, 3)
    auc_neg = test.copy()
    head_cand = np.full((len(test), num_negatives), -1, dtype=np.int64)
    tail_cand = np.full((len(test), num_negatives), -1, dtype=np.int64)
    for i, (h, r, t) in enumerate(test.tolist()):
        for column, cand in ((0, head_cand), (2, tail_cand)):
            chosen = _draw_candidates(h, r, t, column, entities, known, rng, num_negatives, replace,
                                      distinct_ends, max_rounds)  # fmt: skip
            cand[i, : len(chosen)] = chosen
        side = 0 if rng.random() < 0.5 else 2
        pool = head_cand[i] if side == 0 else tail_cand[i]
        pool = pool[pool >= 0]
        if len(pool) == 0:  # no valid corruption on this side: use the other one
            side = 2 - side
            pool = (head_cand if side == 0 else tail_cand)[i]
            pool = pool[pool >= 0]
        auc_neg[i, side] = pool[0] if len(pool) else auc_neg[i, side]
    return SampledProtocol(test, auc_neg, head_cand, tail_cand)


def _draw_candidates(
    h: int, r: int, t: int, column: int, entities: np.ndarray, known: set[tuple[int, int, int]],
    rng: np.random.Generator, count: int, replace: bool, distinct_ends: bool, max_rounds: int,
) -> list[int]:
    """Up to ``count`` valid replacements of the head (``column`` 0) or tail (2) of ``(h, r, t)``."""

    def valid(e: int) -> bool:
        triple = (e, r, t) if column == 0 else (h, r, e)
        if distinct_ends and triple[0] == triple[2]:
            return False
        if not replace and triple == (h, r, t):  # GraIL's sampler may redraw the true triple itself
            return False
        return triple not in known

    chosen: list[int] = []
    if not replace:
        for e in rng.permutation(entities).tolist():
            if valid(e):
                chosen.append(e)
                if len(chosen) == count:
                    break
        return chosen
    for _ in range(max_rounds):  # rejection sampling, as GraIL's while-loop (bounded: a side may have none)
        for e in entities[rng.integers(0, len(entities), 2 * count)].tolist():
            if valid(e):
                chosen.append(e)
                if len(chosen) == count:
                    return chosen
    return chosen


def grail_rank(true_score: float, candidate_scores: np.ndarray) -> float:
    """GraIL's rank: ``argwhere(argsort([true, *candidates])[::-1] == 0) + 1`` (``test_ranking.get_rank``).

    Ties between the true triple and a candidate fall wherever NumPy's (unstable) ``argsort`` puts them, as
    in GraIL's code; a candidate equal to the true triple (possible with replacement and support-graph
    filtering) ties with it.
    """
    scores = np.concatenate([[true_score], candidate_scores])
    return float(np.argwhere(np.argsort(scores)[::-1] == 0)[0, 0] + 1)


def sampled_metrics(
    protocol: SampledProtocol, score: Scorer, *, ties: str = "grail"
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """AUC-PR, ROC-AUC, MRR and Hits@1/10 of one protocol draw; also the positive and negative scores.

    ``ties``: ``"grail"`` ranks as GraIL's code (:func:`grail_rank`); ``"realistic"`` counts half of the ties
    (:func:`realistic_rank`).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if ties not in ("grail", "realistic"):
        raise ValueError(f"ties must be 'grail' or 'realistic', got {ties!r}")
    rank = grail_rank if ties == "grail" else realistic_rank
    pos = score(protocol.test)
    neg = score(protocol.auc_negatives)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    values = np.concatenate([pos, neg])
    head_triples, tail_triples, valid = protocol.ranking_triples()
    t, k = protocol.head_candidates.shape
    head_scores = score(head_triples).reshape(t, k)
    tail_scores = score(tail_triples).reshape(t, k)
    ranks = []
    for i in range(t):
        ranks.append(rank(pos[i], head_scores[i][valid[0, i]]))
        ranks.append(rank(pos[i], tail_scores[i][valid[1, i]]))
    ranks_arr = np.asarray(ranks)
    metrics = {
        "auc_pr": float(average_precision_score(labels, values)),
        "auc_roc": float(roc_auc_score(labels, values)),
        "mrr": float(np.mean(1.0 / ranks_arr)),
        "hits1": float(np.mean(ranks_arr <= 1)),
        "hits10": float(np.mean(ranks_arr <= 10)),
    }
    return metrics, pos, neg


def direction_blind_auc_pr(protocol: SampledProtocol, score: Scorer) -> float:
    """AUC-PR of the reversal-symmetrised score ``(s(h, r, t) + s(t, r, h)) / 2`` on one protocol draw.

    A control, not a paper metric: the symmetrised score cannot tell a triple from its reversal, so when it
    does as well as the raw score, GraIL's protocol (random head/tail corruptions) gives no reward for
    knowing the direction of a relation.
    """
    from sklearn.metrics import average_precision_score

    triples = np.concatenate([protocol.test, protocol.auc_negatives])
    labels = np.concatenate([np.ones(len(protocol.test)), np.zeros(len(protocol.auc_negatives))])
    blind = (score(triples) + score(triples[:, [2, 1, 0]])) / 2.0
    return float(average_precision_score(labels, blind))


@dataclass
class FullRankingResult:
    mrr: float
    hits1: float
    hits10: float
    ranks: np.ndarray


def full_ranking(
    test: np.ndarray, num_entities: int, all_true: set[tuple[int, int, int]], score: Scorer
) -> FullRankingResult:
    """Filtered ranking of every test triple against all entities as head and as tail."""
    test = np.asarray(test, dtype=np.int64).reshape(-1, 3)
    entities = np.arange(num_entities)
    groups = []
    for h, r, t in test.tolist():
        for column in (0, 2):
            candidates = np.repeat(np.array([[h, r, t]], dtype=np.int64), num_entities, axis=0)
            candidates[:, column] = entities
            keep = np.array([tuple(row) not in all_true for row in candidates.tolist()], dtype=bool)
            groups.append(np.concatenate([[[h, r, t]], candidates[keep]]))
    scores = score(np.concatenate(groups))
    ranks = []
    start = 0
    for group in groups:
        chunk = scores[start : start + len(group)]
        ranks.append(realistic_rank(chunk[0], chunk[1:]))
        start += len(group)
    ranks_arr = np.asarray(ranks)
    return FullRankingResult(
        mrr=float(np.mean(1.0 / ranks_arr)),
        hits1=float(np.mean(ranks_arr <= 1)),
        hits10=float(np.mean(ranks_arr <= 10)),
        ranks=ranks_arr,
    )


def distance_scorer(heads: np.ndarray, tails: np.ndarray, num_entities: int) -> Scorer:
    """A model-free control: ``score(h, r, t) = -d(h, t)``, the undirected hop distance in the given graph.

    It ignores the relation and learns nothing; unreachable pairs get ``-num_entities``. Whatever a metric
    gives this score is what proximity alone earns under that protocol (its ceiling for telling models
    apart, not a paper metric).
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path

    adjacency = sp.csr_matrix(
        (np.ones(len(heads)), (np.asarray(heads), np.asarray(tails))), shape=(num_entities, num_entities)
    )
    dist = shortest_path(adjacency, directed=False, unweighted=True)
    dist[np.isinf(dist)] = num_entities

    def score(triples: np.ndarray) -> np.ndarray:
        triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        return -dist[triples[:, 0], triples[:, 2]]

    return score


def reversal_auc(triples: np.ndarray, score: Scorer) -> float:
    """ROC-AUC of true triples ``(h, r, t)`` against their reversals ``(t, r, h)`` (1 = always separated)."""
    from sklearn.metrics import roc_auc_score

    triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    reversed_ = triples[:, [2, 1, 0]]
    pos, neg = score(triples), score(reversed_)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    return float(roc_auc_score(labels, np.concatenate([pos, neg])))
