"""Ellipsoid domains (paper Sec. 3) and the entity spaces they live in for PyKEEN base models.

For relation ``r`` the head domain and the tail domain are ellipsoids ``{x : k(x) = 1}`` with

    k(x) = 2 (x - c)^T M (x - c),   M = L^T L  (L upper triangular, so M is PSD by construction),
    y(x) = ||x - c||^2,
    d(x) = (1 - k(x)^{-1/2})^2 * y(x).

``d`` is the squared Euclidean distance from ``x`` to the point where the ray from the centre ``c``
through ``x`` crosses the surface, ``c + (x - c) / sqrt(k)``. Domains are *fitted* with the unclamped
``d`` (entities are pulled onto the surface, as the official ``ellipsoid.cpp`` does) and *used* at test
time with ``d = 0`` for ``k <= 1`` (inside or on the domain), as in the official ``test_*_ellipsoid.cpp``.
The link-prediction energy is ``f_base(h, r, t) + d_h(h, r) + d_t(t, r)`` (the official
``clac_value``); with PyKEEN's higher-is-better scores that is ``score - w (d_h + d_t)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reprolab.core.errors import ConfigError

__all__ = ["K_FORMS", "EllipsoidDomains", "domain_distance", "entity_space", "quadratic_k"]

_EPS = 1e-9


K_FORMS = ("paper", "official")


def quadratic_k(x: torch.Tensor, center: torch.Tensor, factor: torch.Tensor, *, form: str = "paper") -> torch.Tensor:
    """``k`` for points ``x [..., n, d]``, centre ``[..., d]``, ``L [..., d, d]``, ``M = L^T L``.

    ``form="paper"``: ``k = 2 (x - c)^T M (x - c)`` (paper Sec. 3). ``form="official"``: the official
    ``cal_k_h``/``cal_k_t`` loop ``sum_{i <= j} 2 M_ij (x_i - c_i)(x_j - c_j)``, which counts each cross term
    once and each square twice, i.e. ``(x - c)^T (M + diag M) (x - c)``.
    """
    diff = x - center.unsqueeze(-2)
    projected = diff @ factor.transpose(-1, -2)  # rows are L (x - c)
    quadratic = projected.pow(2).sum(-1)  # (x - c)^T M (x - c)
    if form == "paper":
        return 2.0 * quadratic
    if form == "official":
        diagonal = factor.pow(2).sum(-2)  # M_ii = ||L[:, i]||^2
        return quadratic + (diff.pow(2) * diagonal.unsqueeze(-2)).sum(-1)
    raise ConfigError(f"k_form must be one of {', '.join(K_FORMS)}, got {form!r}")


def domain_distance(
    x: torch.Tensor, center: torch.Tensor, factor: torch.Tensor, *, clamp_inside: bool = True, form: str = "paper"
) -> torch.Tensor:
    """Distance of points to an ellipsoid domain, ``d = (1 - k^{-1/2})^2 ||x - c||^2`` (paper Sec. 3).

    With ``clamp_inside`` the distance is zero for ``k <= 1`` (test-time use); without it, points inside
    are also penalised by their distance to the surface (the fitting objective).
    """
    k = quadratic_k(x, center, factor, form=form).clamp_min(_EPS)
    y = (x - center.unsqueeze(-2)).pow(2).sum(-1)
    gap = 1.0 - k.rsqrt()
    if clamp_inside:
        gap = gap.clamp_min(0.0)
    return gap.pow(2) * y


class EllipsoidDomains(nn.Module):
    """A head and a tail ellipsoid for each relation: centres ``[R, 2, d]`` and factors ``L [R, 2, d, d]``.

    Index 0 of the second axis is the head domain, index 1 the tail domain.
    """

    def __init__(self, num_relations: int, dim: int, *, k_form: str = "paper") -> None:
        super().__init__()
        if k_form not in K_FORMS:
            raise ConfigError(f"k_form must be one of {', '.join(K_FORMS)}, got {k_form!r}")
        self.k_form = k_form
        if num_relations <= 0 or dim <= 0:
            raise ConfigError(f"EllipsoidDomains: num_relations and dim must be > 0, got {num_relations}, {dim}")
        self.num_relations = num_relations
        self.dim = dim
        self.center = nn.Parameter(torch.zeros(num_relations, 2, dim))
        self.raw_factor = nn.Parameter(torch.eye(dim).repeat(num_relations, 2, 1, 1))

    @property
    def factor(self) -> torch.Tensor:
        """Upper-triangular ``L`` (the official code stores only the upper triangle)."""
        return torch.triu(self.raw_factor)

    def shape_matrix(self) -> torch.Tensor:
        """``M = L^T L`` for every domain, ``[R, 2, d, d]``; positive semi-definite by construction."""
        factor = self.factor
        return factor.transpose(-1, -2) @ factor

    @torch.no_grad()
    def initialise(self, points: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Start every domain as the sphere through the RMS radius of its training entities.

        ``points[r] = (head vectors, tail vectors)`` of relation ``r`` in its entity space. The official
        code starts from random centres and factors; a data-driven start converges in far fewer epochs.
        """
        for r, pair in enumerate(points):
            for side, x in enumerate(pair):
                if x.numel() == 0:
                    continue
                centre = x.mean(0)
                radius = (x - centre).pow(2).sum(-1).mean().sqrt().clamp_min(1e-3)
                self.center[r, side] = centre
                # k = 2 ||x - c||^2 / (2 radius^2) = 1 on the sphere of that radius (both k forms: M is diagonal)
                self.raw_factor[r, side] = torch.eye(self.dim) / (2.0**0.5 * radius)

    def distance(
        self,
        x: torch.Tensor,
        relation: int,
        side: int,
        *,
        clamp_inside: bool = True,
        factor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Distances of the rows of ``x`` to one domain (``side`` 0 = head, 1 = tail).

        ``factor`` may pass a precomputed :attr:`factor` so a loop over relations computes it once.
        """
        factor = self.factor if factor is None else factor
        return domain_distance(
            x, self.center[relation, side], factor[relation, side], clamp_inside=clamp_inside, form=self.k_form
        )

    def pair_distance(
        self, heads: torch.Tensor, tails: torch.Tensor, relations: torch.Tensor, *, clamp_inside: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-triple ``d_h`` and ``d_t`` for a batch of entity vectors ``[B, d]`` and relation ids ``[B]``."""
        factor = self.factor[relations]  # [B, 2, d, d]
        center = self.center[relations]  # [B, 2, d]
        form = self.k_form
        d_h = domain_distance(heads.unsqueeze(1), center[:, 0], factor[:, 0], clamp_inside=clamp_inside, form=form)
        d_t = domain_distance(tails.unsqueeze(1), center[:, 1], factor[:, 1], clamp_inside=clamp_inside, form=form)
        return d_h.squeeze(1), d_t.squeeze(1)


def _real(x: torch.Tensor) -> torch.Tensor:
    if torch.is_complex(x):
        x = torch.view_as_real(x).flatten(-2)
    return x.reshape(x.shape[0], -1)


@torch.no_grad()
def entity_space(model: Any, relation: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(head-space, tail-space) entity vectors ``[E, d]`` in which relation ``relation``'s domains live.

    TransE and most PyKEEN models: the raw entity embeddings (the same for every relation). TransR:
    ``e M_r`` (paper Sec. 3, "relation-projected where the model projects"); STransE: ``W_{r,1} e`` for the
    head domain and ``W_{r,2} e`` for the tail domain (its two role-specific projections). The result is detached:
    the domains are fitted on frozen base embeddings.
    """
    entities = _real(model.entity_representations[0](indices=None)).detach()
    name = type(model).__name__
    if name == "TransR" and relation is not None:
        index = torch.as_tensor([relation], device=entities.device)
        projection = model.relation_representations[1](indices=index)[0]  # [d_e, d_r]
        projected = entities @ projection
        return projected, projected
    if name == "STransE" and relation is not None:
        from reprolab.domain_kge.stranse import stranse_projections

        return stranse_projections(model, entities, relation)
    return entities, entities


def space_is_relation_specific(model: Any) -> bool:
    """True when :func:`entity_space` depends on the relation (projection models)."""
    return type(model).__name__ in ("TransR", "STransE")
