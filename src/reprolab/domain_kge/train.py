"""Base-model training (PyKEEN's sLCWA loop), domain fitting on frozen embeddings, filtered ranking.

Evaluation follows the paper's protocol (Bordes et al. 2013, which DRE reuses): for every test triple
the head and then the tail is replaced by every entity, other known triples (train+valid+test) are
filtered out, and MR, MRR and Hits@1/3/10 are reported overall, per direction and per relation
category (1-1, 1-N, N-1, N-N by the 1.5 threshold on heads-per-tail and tails-per-head). Ranks are
PyKEEN's "realistic" ranks (mean of optimistic and pessimistic), so ties cost what they should.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reprolab.core.errors import ConfigError
from reprolab.domain_kge.data import KGSplits
from reprolab.domain_kge.experiment import TRANSR_CLAMPS
from reprolab.domain_kge.model import EllipsoidDomains, domain_distance, entity_space

if TYPE_CHECKING:
    from reprolab.domain_kge.checkpoints import StageCheckpoint

__all__ = [
    "CATEGORIES",
    "build_base_model",
    "domain_distances",
    "evaluate",
    "evaluate_protocols",
    "fit_domains",
    "relation_categories",
    "train_base_model",
    "type_constraints",
]

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
VARIANTS = ("base", "head", "both")  # ablations: base alone; + head domain; + head and tail domains


def unit_ball(x: torch.Tensor, **_pykeen_kwargs: Any) -> torch.Tensor:
    """Rescale rows with L2 norm above 1 back to norm 1; shorter rows are left alone (the constraint of TransE and
    of TransR's entity and relation vectors). Always the L2 ball, whatever norm PyKEEN passes as keyword
    arguments (for TransR it passes the scoring norm, an L1 ball at p = 1)."""
    from pykeen.utils import clamp_norm

    return clamp_norm(x, maxnorm=1.0, p=2, dim=-1)


def build_base_model(
    name: str, splits: KGSplits, *, dim: int, seed: int, relation_unit_ball: bool = False, transr_clamp: str = "l2",
    **kwargs: Any,
) -> Any:
    """Any PyKEEN model by name (``TransE``, ``TransR``, ...) or our ``STransE``; L1 energy for TransE/STransE.

    ``relation_unit_ball``: TransE's relation vectors are rescaled to norm 1 when longer after each step, as the
    official ``trainMode_TransE`` does (TransR and STransE clamp their relation vectors already).
    ``transr_clamp``: TransR's projected vectors are clamped into the L2 unit ball (``"l2"``, Lin et al. 2015) or,
    as PyKEEN's ``TransRInteraction`` does, into the ball of the scoring norm (``"scoring"``: L1 at p = 1).
    """
    if transr_clamp not in TRANSR_CLAMPS:
        raise ConfigError(f"transr_clamp: {transr_clamp!r} is not one of {', '.join(TRANSR_CLAMPS)}")
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
    if cls.__name__ == "TransR":
        # relation space as large as the entity space: Lin et al. (2015) on WN18 (k = d) and the official DRE
        # test_R_ellipsoid.cpp (dimensionR = dimension); PyKEEN's default is a fixed 30
        options.setdefault("relation_dim", dim)
        # Lin et al. constrain L2 norms (||h||_2, ||r||_2 <= 1) while scoring with L1; PyKEEN ties the ball's norm to
        # the scoring norm (an L1 ball at p = 1, far smaller in 50 dimensions)
        options.setdefault("entity_constrainer", unit_ball)
        options.setdefault("relation_constrainer", unit_ball)
    if cls.__name__ == "TransE":
        # The paper's (and Bordes et al.'s official) TransE only rescales entity vectors whose norm exceeds 1;
        # PyKEEN's default projects every entity onto the unit sphere, where one sphere is a perfect domain for
        # every relation and DRE can say nothing (see docs/notes/domain_kge.md#wn18rr-benchmark-and-smoke-runs).
        options.setdefault("entity_constrainer", unit_ball)
        if relation_unit_ball:
            options.setdefault("relation_constrainer", unit_ball)
    model = cls(triples_factory=splits.training, **options)
    if cls.__name__ == "TransR" and transr_clamp == "l2":  # the paper's clamp (reprolab.domain_kge.transr)
        from reprolab.domain_kge.transr import L2ProjectionTransRInteraction

        old = model.interaction
        model.interaction = L2ProjectionTransRInteraction(
            p=old.p, power_norm=old.power_norm, max_projection_norm=old.max_projection_norm
        )
    return model


def saved_base_model(
    name: str, dataset: str, *, dim: int, relation_unit_ball: bool = False, transr_clamp: str = "l2"
) -> Any:
    """Rebuild a run's saved base model (``reprolab.load_run(dir).model("base")``): the PyKEEN model (or STransE)
    over ``dataset``'s training triples (an embedded name or the folder the run read), whose entity and relation
    ids fix the embedding tables' sizes; the weights are loaded afterwards."""
    from reprolab.domain_kge.data import load_splits

    return build_base_model(
        name, load_splits(dataset), dim=dim, seed=0, relation_unit_ball=relation_unit_ball, transr_clamp=transr_clamp
    )


@torch.no_grad()
def initialise_from_transe(model: Any, transe: Any) -> None:
    """Start a TransR / STransE ``model`` from a trained ``transe`` of the same dimension: entity and relation vectors
    copied, every projection matrix the identity (Lin et al. 2015, Sec. 4: "initialize entity and relation
    embeddings with results of TransE ... relation matrices as identity matrices"; Nguyen et al. 2016, Sec. 2).

    Set as each representation's initializer, because PyKEEN's training loop re-initialises every parameter when it
    starts (``reset_parameters_``); a plain copy would be wiped before the first step."""
    source = transe.entity_representations[0]
    target = model.entity_representations[0]
    if source._embeddings.weight.shape != target._embeddings.weight.shape:
        raise ConfigError(
            f"transe_init: TransE entity vectors {tuple(source._embeddings.weight.shape)} do not fit "
            f"{tuple(target._embeddings.weight.shape)}"
        )
    _start_from(target, source._plain_forward())
    _start_from(model.relation_representations[0], transe.relation_representations[0]._plain_forward())
    for matrices in model.relation_representations[1:]:
        identity = torch.eye(*matrices.shape, dtype=matrices._embeddings.weight.dtype)
        _start_from(matrices, identity.expand(matrices.max_id, *matrices.shape))


class _StartValues:
    """An initializer returning a fresh copy of fixed values. PyKEEN's ``PretrainedInitializer`` hands out its own
    tensor, which then *is* the weight: the in-place default reset of the inner ``nn.Embedding`` (run before the
    representation's own) overwrote the TransE values with random ones."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.values.to(device=x.device, dtype=x.dtype).clone()


def _start_from(representation: Any, values: torch.Tensor) -> None:
    """Make ``values`` the representation's initial value, now and at every later ``reset_parameters``."""
    representation.initializer = _StartValues(values.detach().clone().reshape(representation.max_id,
                                                                              *representation.shape))
    representation.reset_parameters()


def negative_sampler_kwargs(num_negs: int, filtered: bool) -> dict[str, Any]:
    """PyKEEN's uniform corruption sampler; ``filtered``: a corruption that is a training triple is dropped by the
    exact set filter (the official sampler redraws it), so no true triple is trained as a negative."""
    return {"num_negs_per_pos": num_negs, "filtered": filtered, **({"filterer": "python-set"} if filtered else {})}


def train_base_model(
    model: Any, splits: KGSplits, *, epochs: int, batch_size: int, lr: float, num_negs: int = 1,
    filtered_negatives: bool = False, checkpoint: StageCheckpoint | None = None,
) -> list[float]:
    """Train with PyKEEN's sLCWA loop (margin ranking loss for translation models); returns epoch losses.

    ``filtered_negatives``: corruptions that are training triples are dropped (PyKEEN's exact set filter), the
    official sampler's behaviour (it redraws them). ``checkpoint``: PyKEEN's training-loop checkpointing into
    that file (atomic, see :mod:`reprolab.domain_kge.checkpoints`); an existing file is resumed from its epoch.
    """
    from pykeen.training import SLCWATrainingLoop

    from reprolab.domain_kge.checkpoints import ResumableSLCWA

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    options: dict[str, Any] = dict(
        model=model,
        triples_factory=splits.training,
        optimizer=optimizer,
        negative_sampler_kwargs=negative_sampler_kwargs(num_negs, filtered_negatives),
    )
    loop = SLCWATrainingLoop(**options) if checkpoint is None else ResumableSLCWA(**options, checkpoint=checkpoint)
    from reprolab.core.progress import progress_enabled

    # PyKEEN's own epoch bar (with ETA) when reprolab shows progress bars
    return loop.train(
        triples_factory=splits.training, num_epochs=epochs, batch_size=batch_size, use_tqdm=progress_enabled(),
        use_tqdm_batch=False,
    )


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
    k_form: str = "paper",
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
    checkpoint: StageCheckpoint | None = None,
) -> tuple[EllipsoidDomains, list[float]]:
    """Fit head/tail ellipsoids on frozen base embeddings by minimising ``d_h + d_t`` over training triples.

    This is the official objective (``ellipsoid.cpp``: the unclamped distance summed over the positive
    training triples, no negatives). A triple contributes ``d_h(h, r) + d_t(t, r)``, so the loss equals
    a count-weighted sum over the distinct (relation, side, entity) members, which we minimise full-batch
    with Adam (``epochs`` steps, all domains at once) instead of the official per-triple SGD. The base
    embeddings are detached copies, so the base model never changes. ``checkpoint``: the domains, Adam's state
    and the losses are saved every ``checkpoint.minutes`` and at the end, and a saved state is resumed from its
    step (the fit draws no random numbers, so a resumed fit equals an uninterrupted one).
    """
    return _fit(model, triples, num_relations, epochs=epochs, lr=lr, k_form=k_form, progress=progress,
                checkpoint=checkpoint)


def _fit(
    model: Any, triples: torch.Tensor, num_relations: int, *, epochs: int, lr: float, k_form: str,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None, checkpoint: StageCheckpoint | None = None,
) -> tuple[EllipsoidDomains, list[float]]:
    started = time.perf_counter()  # the stage's time includes building the member tables, as before resumes
    groups = _members(model, triples, num_relations)
    dim = entity_space(model, 0)[0].shape[1]
    domains = EllipsoidDomains(num_relations, dim, k_form=k_form)
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
    start, elapsed_before = 0, 0.0
    if checkpoint is not None and (saved := _load_domain_stage(checkpoint, domains, optimizer)) is not None:
        start, losses, elapsed_before = saved
    steps = range(start, epochs)
    last_save = time.time()
    for step in progress(steps, len(steps)) if progress is not None else steps:
        loss = step_loss(domains) / n
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if checkpoint is not None and (step + 1 == epochs or checkpoint.due(last_save)):
            checkpoint.elapsed_s = elapsed_before + time.perf_counter() - started
            _save_domain_stage(checkpoint, step + 1, domains, optimizer, losses)
            last_save = time.time()
    if checkpoint is not None:
        checkpoint.elapsed_s = elapsed_before + time.perf_counter() - started
    return domains, losses


def _save_domain_stage(
    checkpoint: StageCheckpoint, step: int, domains: EllipsoidDomains, optimizer: torch.optim.Optimizer,
    losses: list[float],
) -> None:
    from reprolab.domain_kge.checkpoints import save_stage

    save_stage(checkpoint, {"step": step, "domains": domains.state_dict(), "optimizer": optimizer.state_dict(),
                            "losses": list(losses), "elapsed_s": checkpoint.elapsed_s})


def _load_domain_stage(
    checkpoint: StageCheckpoint, domains: EllipsoidDomains, optimizer: torch.optim.Optimizer
) -> tuple[int, list[float], float] | None:
    """(next step, losses so far, seconds spent) of a saved domain fit, its domains and Adam state restored."""
    from reprolab.core.errors import CheckpointError
    from reprolab.domain_kge.checkpoints import load_stage

    state = load_stage(checkpoint)
    if state is None:
        return None
    try:
        domains.load_state_dict(state["domains"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"]), [float(x) for x in state["losses"]], float(state["elapsed_s"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{checkpoint.path}: not a complete domain-fit checkpoint ({err})") from None


def _looped_loss(groups: list[tuple[int, int, torch.Tensor, torch.Tensor]]) -> Any:
    """Sum of weighted member distances, one small op chain per domain (few domains, many members)."""

    def loss(domains: EllipsoidDomains) -> torch.Tensor:
        factor = domains.factor  # computed once per step, indexed per domain
        total = torch.zeros(())
        for r, side, vectors, weights in groups:
            d = domain_distance(
                vectors, domains.center[r, side], factor[r, side], clamp_inside=False, form=domains.k_form
            )
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
        d = domain_distance(points, center, factor, clamp_inside=False, form=domains.k_form)
        return (weights * d).sum()

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


PROTOCOLS = ("filtered", "raw", "tc")  # filtered (paper), raw (official code too), filtered + type constraint


class _FilterIndex:
    """Known answers of every (h, r, ?) and (?, r, t) query over train + valid + test, as index tensors."""

    def __init__(self, triples: torch.Tensor, num_relations: int) -> None:
        self.num_relations = num_relations
        self.tails = self._group(triples[:, 0] * num_relations + triples[:, 1], triples[:, 2])
        self.heads = self._group(triples[:, 2] * num_relations + triples[:, 1], triples[:, 0])

    @staticmethod
    def _group(keys: torch.Tensor, values: torch.Tensor) -> dict[int, torch.Tensor]:
        order = torch.argsort(keys, stable=True)
        keys, values = keys[order], values[order]
        unique, counts = torch.unique_consecutive(keys, return_counts=True)
        return dict(zip(unique.tolist(), torch.split(values, counts.tolist())))

    def entries(self, side: str, anchors: torch.Tensor, relation: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, entity) pairs of the known answers of each query row (anchor = h for tails, t for heads)."""
        table = self.tails if side == "tail" else self.heads
        empty = torch.zeros(0, dtype=torch.long)
        found = [table.get(int(a) * self.num_relations + relation, empty) for a in anchors.tolist()]
        rows = torch.repeat_interleave(torch.arange(len(found)), torch.tensor([len(f) for f in found]))
        return rows, torch.cat(found) if found else empty


def _ranks(
    scores: torch.Tensor,
    target: torch.Tensor,
    known: tuple[torch.Tensor, torch.Tensor],
    allowed: torch.Tensor | None,
    protocols: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """Realistic ranks (mean of optimistic and pessimistic) of ``target`` in each row, per protocol.

    Filtering subtracts the other known answers that score above (or level with) the target instead of
    masking a copy of ``scores``; the type constraint counts only the relation's ``allowed`` candidates
    (the target always competes).
    """
    true = scores.gather(1, target.unsqueeze(1))
    above, level = scores > true, scores >= true
    rows, cols = known
    other = cols != target[rows]
    rows, cols = rows[other], cols[other]
    known_above = torch.zeros_like(true.squeeze(1)).index_add_(0, rows, above[rows, cols].to(true.dtype))
    known_level = torch.zeros_like(true.squeeze(1)).index_add_(0, rows, level[rows, cols].to(true.dtype))
    result = {}
    for protocol in protocols:
        if protocol == "tc" and allowed is not None:
            mask = allowed[cols].to(true.dtype)
            greater = (above & allowed).sum(1).to(true.dtype)
            greater -= torch.zeros_like(greater).index_add_(0, rows, above[rows, cols].to(true.dtype) * mask)
            equal = (level & allowed).sum(1).to(true.dtype) + (~allowed[target]).to(true.dtype)
            equal -= torch.zeros_like(equal).index_add_(0, rows, level[rows, cols].to(true.dtype) * mask)
        else:
            greater, equal = above.sum(1).to(true.dtype), level.sum(1).to(true.dtype)
            if protocol != "raw":
                greater, equal = greater - known_above, equal - known_level
        result[protocol] = 0.5 * (greater + 1.0) + 0.5 * equal
    return result


@torch.no_grad()
def _translation_tables(model: Any, relation: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(head table, tail table, relation vector) with ``score = -||head[h] + r - tail[t]||``, or ``None``.

    TransE: the entity vectors; TransR: ``clamp(e M_r)`` (the interaction's projected-norm clamp); STransE:
    ``W_{r,1} e`` and ``W_{r,2} e``. With these tables every candidate of a query is one row of a
    ``torch.cdist``, so no ``[batch, entities, dim]`` difference tensor is ever formed.
    """
    name = type(model).__name__
    if name not in ("TransE", "TransR", "STransE"):
        return None
    entities = _entity_matrix(model)
    index = torch.as_tensor([relation], device=entities.device)
    vector = model.relation_representations[0](indices=index)[0]
    if name == "TransE":
        return entities, entities, vector
    if name == "TransR":
        from pykeen.utils import clamp_norm

        interaction = model.interaction
        projected = entities @ model.relation_representations[1](indices=index)[0]
        norm = getattr(interaction, "projection_p", interaction.p)
        projected = clamp_norm(projected, p=norm, dim=-1, maxnorm=interaction.max_projection_norm)
        return projected, projected, vector
    from reprolab.domain_kge.stranse import stranse_projections

    heads, tails = stranse_projections(model, entities, relation)
    return heads, tails, vector


def _entity_matrix(model: Any) -> torch.Tensor:
    return model.entity_representations[0](indices=None).detach()


def _negative_distance(queries: torch.Tensor, table: torch.Tensor, model: Any) -> torch.Tensor:
    p, power = model.interaction.p, model.interaction.power_norm
    distance = torch.cdist(queries.unsqueeze(0), table.unsqueeze(0), p=p,
                           compute_mode="donot_use_mm_for_euclid_dist")[0]
    return -(distance.pow(p) if power else distance)


def _candidate_scores(
    model: Any, batch: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of every candidate head ``[B, E]`` and tail ``[B, E]`` of a batch of one relation."""
    if tables is None:  # any other PyKEEN model: its own all-candidate scoring
        return model.score_h(batch[:, 1:]).float(), model.score_t(batch[:, :2]).float()
    heads, tails, vector = tables
    head_scores = _negative_distance(tails[batch[:, 2]] - vector, heads, model)
    tail_scores = _negative_distance(heads[batch[:, 0]] + vector, tails, model)
    return head_scores.float(), tail_scores.float()


@torch.no_grad()
def evaluate_protocols(
    model: Any,
    splits: KGSplits,
    distances: torch.Tensor | None,
    *,
    weight: float = 1.0,
    batch_size: int = 256,
    allowed: torch.Tensor | None = None,
    protocols: tuple[str, ...] = ("filtered",),
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Ranks of every test triple, ``{protocol: {variant: {"head": ranks, "tail": ranks}}}``, in one pass.

    Test triples are grouped by relation; per relation the candidate tables and the domain distances of
    all entities (``distances[r, side]``, :func:`domain_distances`) are taken once, and each chunk of
    ``batch_size`` queries scores all candidates at once. The combined score of a candidate is
    ``score(h, r, t) - weight (d_h(h, r) + d_t(t, r))``; the term of the fixed entity is the same for every
    candidate of a query, so "head" changes only head ranks and "both" adds the tail domain to tail ranks.
    Protocols: ``filtered`` (other known triples of train + valid + test removed), ``raw`` (nothing removed),
    ``tc`` (filtered, candidates restricted to ``allowed[r, side]``, :func:`type_constraints`).
    """
    model.eval()
    for protocol in protocols:
        if protocol not in PROTOCOLS or (protocol == "tc" and allowed is None):
            raise ConfigError(f"protocol {protocol!r}: expected one of {PROTOCOLS} (tc needs allowed=)")
    test = splits.testing.mapped_triples
    everything = torch.cat([splits.training.mapped_triples, splits.validation.mapped_triples, test])
    index = _FilterIndex(everything, splits.training.num_relations)
    variants = ("base",) if distances is None else VARIANTS
    out = {p: {v: {s: torch.zeros(test.shape[0]) for s in ("head", "tail")} for v in variants} for p in protocols}
    chunks = [
        chunk
        for relation in torch.unique(test[:, 1]).tolist()
        for chunk in torch.nonzero(test[:, 1] == relation).squeeze(1).split(batch_size)
    ]
    tables_of: dict[int, Any] = {}
    for chunk in progress(chunks, len(chunks)) if progress is not None else chunks:
        batch = test[chunk]
        relation = int(batch[0, 1])
        if relation not in tables_of:
            tables_of = {relation: _translation_tables(model, relation)}  # one relation at a time in memory
        head_scores, tail_scores = _candidate_scores(model, batch, tables_of[relation])
        known = {
            "head": index.entries("head", batch[:, 2], relation),
            "tail": index.entries("tail", batch[:, 0], relation),
        }
        sides = {"head": (head_scores, batch[:, 0], 0), "tail": (tail_scores, batch[:, 2], 1)}
        for side, (scores, target, column) in sides.items():
            mask = None if allowed is None else allowed[relation, column]
            plain = _ranks(scores, target, known[side], mask, protocols)
            with_domain = plain
            if distances is not None:
                shifted = scores - weight * distances[relation, column]
                with_domain = _ranks(shifted, target, known[side], mask, protocols)
            for protocol in protocols:
                out[protocol]["base"][side][chunk] = plain[protocol]
                if distances is not None:
                    out[protocol]["head"][side][chunk] = with_domain[protocol] if side == "head" else plain[protocol]
                    out[protocol]["both"][side][chunk] = with_domain[protocol]
    return {p: {v: {s: r.numpy() for s, r in sides.items()} for v, sides in vs.items()} for p, vs in out.items()}


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
    """Filtered ranks (type-constrained when ``allowed`` is given): ``{variant: {"head": ranks, "tail": ranks}}``."""
    protocol = "tc" if allowed is not None else "filtered"
    ranks = evaluate_protocols(
        model, splits, distances, weight=weight, batch_size=batch_size, allowed=allowed, protocols=(protocol,)
    )
    return ranks[protocol]


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
