"""The Max-of-K model of Gross et al. (2024), Section 2 / Appendix B: a one-layer, one-head,
attention-only transformer without LayerNorm and with zero biases, read out at the last position.

For an input ``t_0 .. t_{n-1}`` with residual stream ``x_i = W_E[t_i] + W_pos[i]`` the logits are

    logits = x_{n-1} W_U + sum_i a_i x_i W_V W_O W_U,
    a = softmax_i( x_{n-1} W_Q (x_i W_K)^T / sqrt(d_head) ),

which the paper splits into three paths (Section 3, Figure 1): the QK circuit (``EQKE``, ``EQKP``), the
OV circuit (``EVOU``, ``PVOU``) and the direct path (``EU``). The weights keep TransformerLens's names and
shapes so state dicts move between the two libraries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from reprolab.core.checkpoint import read_state_dict
from reprolab.core.errors import DataError
from reprolab.maxk_proofs.tl_config import check_transformer_lens_config, read_transformer_lens_config

__all__ = ["MaxKConfig", "MaxKTransformer", "PathProducts", "load_state_dict_file", "save_state_dict_file"]


@dataclass(frozen=True)
class MaxKConfig:
    """Shapes of the model (paper Appendix B: d_vocab=64, n_ctx=4, d_model=d_head=32)."""

    d_vocab: int = 64
    n_ctx: int = 4
    d_model: int = 32
    d_head: int = 32
    d_vocab_out: int | None = None

    @property
    def vocab_out(self) -> int:
        return self.d_vocab if self.d_vocab_out is None else self.d_vocab_out


@dataclass(frozen=True)
class PathProducts:
    """The paper's path matrices (Section 3), in float64.

    ``EQKE[q, k]``: pre-softmax score (already divided by sqrt(d_head)) from query token ``q`` at the last
    position to key token ``k``; ``EQKP[q, i]``: the positional part of that score for key position ``i``;
    ``EVOU[k, j]`` / ``PVOU[i, j]``: what attending to token ``k`` / position ``i`` adds to logit ``j``;
    ``EU[q, j]``: the direct path from the query token (plus the last position's embedding) to logit ``j``.
    """

    EQKE: Tensor
    EQKP: Tensor
    EVOU: Tensor
    PVOU: Tensor
    EU: Tensor


class MaxKTransformer(nn.Module):
    """One attention head, no MLP, no LayerNorm, no biases; logits at the last position only."""

    def __init__(self, config: MaxKConfig | None = None) -> None:
        super().__init__()
        self.config = config or MaxKConfig()
        c = self.config
        self.W_E = nn.Parameter(torch.empty(c.d_vocab, c.d_model))
        self.W_pos = nn.Parameter(torch.empty(c.n_ctx, c.d_model))
        self.W_Q = nn.Parameter(torch.empty(1, c.d_model, c.d_head))
        self.W_K = nn.Parameter(torch.empty(1, c.d_model, c.d_head))
        self.W_V = nn.Parameter(torch.empty(1, c.d_model, c.d_head))
        self.W_O = nn.Parameter(torch.empty(1, c.d_head, c.d_model))
        self.W_U = nn.Parameter(torch.empty(c.d_model, c.vocab_out))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """TransformerLens's default GPT-2-style init: normal with std ``0.8 / sqrt(d_model)``."""
        std = 0.8 / math.sqrt(self.config.d_model)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)

    @property
    def attn_scale(self) -> float:
        return math.sqrt(self.config.d_head)

    def forward(self, tokens: Tensor) -> Tensor:
        """``tokens`` [batch, n_ctx] (long) -> logits at the last position [batch, d_vocab_out]."""
        if tokens.ndim != 2 or tokens.shape[1] != self.config.n_ctx:
            raise ValueError(f"tokens must have shape [batch, {self.config.n_ctx}], got {tuple(tokens.shape)}")
        x = self.W_E[tokens] + self.W_pos  # [B, n, d]
        q = x[:, -1] @ self.W_Q[0]  # [B, h]
        k = x @ self.W_K[0]  # [B, n, h]
        v = x @ self.W_V[0]  # [B, n, h]
        scores = torch.einsum("bh,bnh->bn", q, k) / self.attn_scale
        attn = scores.softmax(dim=-1)
        z = torch.einsum("bn,bnh->bh", attn, v)
        resid = x[:, -1] + z @ self.W_O[0]
        return resid @ self.W_U

    @torch.no_grad()
    def path_products(self) -> PathProducts:
        """EQKE, EQKP, EVOU, PVOU, EU in float64 (Section 3; the query side includes W_pos[-1])."""
        W = {name: p.detach().to(torch.float64).cpu() for name, p in self.named_parameters()}
        E, P, U = W["W_E"], W["W_pos"], W["W_U"]
        Eq = E + P[-1]
        M = W["W_Q"][0] @ W["W_K"][0].T / self.attn_scale
        OV = W["W_V"][0] @ W["W_O"][0]
        return PathProducts(EQKE=Eq @ M @ E.T, EQKP=Eq @ M @ P.T, EVOU=E @ OV @ U, PVOU=P @ OV @ U, EU=Eq @ U)

    def to_transformer_lens_state_dict(self) -> dict[str, Tensor]:
        """Keys and shapes of TransformerLens's ``HookedTransformer`` (attn_only, no LayerNorm), buffers included:
        the causal ``mask`` (lower-triangular, bool) and ``IGNORE`` (-inf) that a strict ``load_state_dict``
        of ``HookedTransformer`` expects."""
        c = self.config
        zeros = torch.zeros
        d = self.W_E.dtype
        return {
            "embed.W_E": self.W_E.detach().clone(),
            "pos_embed.W_pos": self.W_pos.detach().clone(),
            "blocks.0.attn.W_Q": self.W_Q.detach().clone(),
            "blocks.0.attn.W_K": self.W_K.detach().clone(),
            "blocks.0.attn.W_V": self.W_V.detach().clone(),
            "blocks.0.attn.W_O": self.W_O.detach().clone(),
            "blocks.0.attn.b_Q": zeros(1, c.d_head, dtype=d),
            "blocks.0.attn.b_K": zeros(1, c.d_head, dtype=d),
            "blocks.0.attn.b_V": zeros(1, c.d_head, dtype=d),
            "blocks.0.attn.b_O": zeros(c.d_model, dtype=d),
            "blocks.0.attn.mask": torch.tril(torch.ones(c.n_ctx, c.n_ctx, dtype=torch.bool)),
            "blocks.0.attn.IGNORE": torch.tensor(-torch.inf),
            "unembed.W_U": self.W_U.detach().clone(),
            "unembed.b_U": zeros(c.vocab_out, dtype=d),
        }

    @classmethod
    def from_transformer_lens_state_dict(
        cls, state: dict[str, Tensor], *, source: str = "state dict"
    ) -> MaxKTransformer:
        """Build a model from a TransformerLens state dict; biases must be zero (the paper's models)."""
        required = {
            "embed.W_E": 2,
            "pos_embed.W_pos": 2,
            "blocks.0.attn.W_Q": 3,
            "blocks.0.attn.W_K": 3,
            "blocks.0.attn.W_V": 3,
            "blocks.0.attn.W_O": 3,
            "unembed.W_U": 2,
        }
        for key, ndim in required.items():
            if key not in state:
                raise DataError(
                    f"{source}: missing key {key!r} (expected a 1-layer attention-only TransformerLens model)"
                )
            if state[key].ndim != ndim:
                raise DataError(f"{source}: {key} has shape {tuple(state[key].shape)}, expected {ndim} dimensions")
        extra = [k for k in state if k.startswith("blocks.1.") or "mlp" in k or k.startswith("ln") or ".ln" in k]
        if extra:
            raise DataError(f"{source}: unsupported keys {extra[:3]} (only 1-layer attention-only, no LayerNorm)")
        for key, value in state.items():
            if (key.split(".")[-1].startswith("b_")) and torch.count_nonzero(value):
                raise DataError(f"{source}: {key} is non-zero; the proofs assume zero biases")
        mask = state.get("blocks.0.attn.mask")
        n_pos = state["pos_embed.W_pos"].shape[0]
        if mask is not None and not torch.equal(mask.bool(), torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool))):
            raise DataError(f"{source}: blocks.0.attn.mask is not the causal mask; the proofs assume causal attention")
        E, P, WQ = state["embed.W_E"], state["pos_embed.W_pos"], state["blocks.0.attn.W_Q"]
        if WQ.shape[0] != 1:
            raise DataError(f"{source}: blocks.0.attn.W_Q has {WQ.shape[0]} heads, expected 1")
        config = MaxKConfig(
            d_vocab=E.shape[0],
            n_ctx=P.shape[0],
            d_model=E.shape[1],
            d_head=WQ.shape[2],
            d_vocab_out=state["unembed.W_U"].shape[1],
        )
        expected = cls(config).to_transformer_lens_state_dict()
        for key in required:
            if tuple(state[key].shape) != tuple(expected[key].shape):
                raise DataError(
                    f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(expected[key].shape)}"
                )
        model = cls(config)
        names = {"embed.W_E": "W_E", "pos_embed.W_pos": "W_pos", "unembed.W_U": "W_U"}
        names.update({f"blocks.0.attn.{w}": w for w in ("W_Q", "W_K", "W_V", "W_O")})
        with torch.no_grad():
            for key, attr in names.items():
                getattr(model, attr).copy_(state[key].to(torch.float32))
        return model


def maxk_transformer(
    d_vocab: int = 64, n_ctx: int = 4, d_model: int = 32, d_head: int = 32, d_vocab_out: int | None = None
) -> MaxKTransformer:
    """A :class:`MaxKTransformer` of these sizes (the builder of a run's saved models: plain keyword arguments)."""
    return MaxKTransformer(MaxKConfig(d_vocab, n_ctx, d_model, d_head, d_vocab_out))


def save_state_dict_file(model: MaxKTransformer, path: str | Path) -> Path:
    """Save a TransformerLens-style state dict with ``torch.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.to_transformer_lens_state_dict(), path)
    return path


def load_state_dict_file(path: str | Path, config_overrides: Mapping[str, Any] | None = None) -> MaxKTransformer:
    """Load a TransformerLens-style state dict saved by us or by ``HookedTransformer.state_dict()``.

    The model's TransformerLens configuration (a JSON next to the file, updated by ``config_overrides``) is
    checked first: LayerNorm, a non-default attention scale or non-standard positions are refused
    (:mod:`reprolab.maxk_proofs.tl_config`), since the state dict alone would load as a different function.
    """
    path = Path(path)
    tl_config = read_transformer_lens_config(path, config_overrides)
    # TransformerLens's attention buffer IGNORE is -inf by design (the masked-score fill value)
    state = read_state_dict(path, what="torch state dict", nonfinite_ok=frozenset({"blocks.0.attn.IGNORE"}))
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a dict of tensors (a state dict), got {type(state).__name__}")
    W_Q = state.get("blocks.0.attn.W_Q")
    d_head = int(W_Q.shape[-1]) if isinstance(W_Q, Tensor) and W_Q.ndim == 3 else None
    check_transformer_lens_config(tl_config, d_head=d_head, source=str(path))
    return MaxKTransformer.from_transformer_lens_state_dict(state, source=str(path))
