"""STransE (Nguyen, Sirts, Qu, Johnson; NAACL 2016) as a PyKEEN model, one of DRE's three base models.

PyKEEN has TransE, TransR and SE but not STransE, which combines them: every relation ``r`` has a
translation vector ``r`` and two matrices ``W_{r,1}``, ``W_{r,2}`` (one per role), and

    f_r(h, t) = || W_{r,1} h + r - W_{r,2} t ||_{l1 or l2}          (STransE, Eq. 1)

lower is better (PyKEEN scores are the negated distance). As in the STransE paper, the matrices start
at the identity, so an untrained STransE is a TransE, and entity, relation and projected-entity vectors
are kept inside the unit ball (``||h|| <= 1``, ``||r|| <= 1``; the projected-norm constraint is applied
softly through the entity ball and identity start, as most re-implementations do).
"""

from __future__ import annotations

from typing import Any

import torch
from pykeen.models import ERModel
from pykeen.nn.modules import NormBasedInteraction
from pykeen.utils import clamp_norm

__all__ = ["STransE", "STransEInteraction", "stranse_projections"]


class STransEInteraction(NormBasedInteraction):
    """``-|| W_{r,1} h + r - W_{r,2} t ||_p`` (STransE Eq. 1), batched like every PyKEEN interaction."""

    relation_shape = ("d", "dd", "dd")

    def forward(self, h: torch.Tensor, r: tuple[torch.Tensor, ...], t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        translation, w_head, w_tail = r
        projected_head = torch.einsum("...ij,...j->...i", w_head, h)
        projected_tail = torch.einsum("...ij,...j->...i", w_tail, t)
        difference = projected_head + translation - projected_tail
        if self.power_norm:
            return -difference.abs().pow(self.p).sum(dim=-1)
        return -torch.linalg.vector_norm(difference, ord=self.p, dim=-1)


def _identity_(tensor: torch.Tensor) -> torch.Tensor:
    """Initialise a stack of square matrices to the identity (STransE Sec. 2: start from TransE)."""
    with torch.no_grad():
        dim = tensor.shape[-1]
        flat = tensor.view(-1, dim, dim)
        flat.copy_(torch.eye(dim, dtype=tensor.dtype).expand_as(flat))
    return tensor


class STransE(ERModel):
    """STransE over PyKEEN's ERModel: entity vectors, and per relation ``(r, W_{r,1}, W_{r,2})``."""

    def __init__(
        self, *, embedding_dim: int = 50, scoring_fct_norm: int = 1, power_norm: bool = False, **kwargs: Any
    ) -> None:
        ball = dict(maxnorm=1.0, p=2, dim=-1)
        super().__init__(
            interaction=STransEInteraction,
            interaction_kwargs=dict(p=scoring_fct_norm, power_norm=power_norm),
            entity_representations_kwargs=dict(
                shape=embedding_dim,
                initializer="xavier_uniform_",
                constrainer=clamp_norm,
                constrainer_kwargs=ball,
            ),
            relation_representations_kwargs=[
                dict(
                    shape=(embedding_dim,),
                    initializer="xavier_uniform_norm_",
                    constrainer=clamp_norm,
                    constrainer_kwargs=ball,
                ),
                dict(shape=(embedding_dim, embedding_dim), initializer=_identity_),
                dict(shape=(embedding_dim, embedding_dim), initializer=_identity_),
            ],
            **kwargs,
        )


@torch.no_grad()
def stranse_projections(model: STransE, entities: torch.Tensor, relation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_{r,1} e, W_{r,2} e)`` for all entities: the spaces of relation ``relation``'s head and tail domains."""
    index = torch.as_tensor([relation], device=entities.device)
    w_head = model.relation_representations[1](indices=index)[0]
    w_tail = model.relation_representations[2](indices=index)[0]
    return entities @ w_head.T, entities @ w_tail.T
