"""The TransformerLens configuration of a loaded state dict: refuse models the proofs would misread.

A ``HookedTransformer`` state dict does not say everything about the function it computes. With
``normalization_type="LNPre"`` (or ``"LN"`` folded into the weights) the residual stream is normalised before
attention and unembedding, but no LayerNorm weights appear in the state dict; a non-default ``attn_scale`` (or
``use_attn_scale=False``) divides the scores by something other than sqrt(d_head); rotary, ALiBi or shortformer
positions add no ``W_pos`` to the residual stream as the paper's model does (Section 2). Such a state dict loads
into :class:`~reprolab.maxk_proofs.model.MaxKTransformer` without error and would be proven as a different
function, so it is refused when its configuration says so.

The configuration comes from a JSON file next to the state dict (``<name>.json`` or ``<name>.pt.json`` or
``config.json`` in the same folder; the keys of ``HookedTransformerConfig.to_dict()``), overridden by fields
given explicitly (the experiment's ``model_*`` fields, ``--set``). Kept free of torch so that the experiment can
check its inputs before a run folder is made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reprolab.core.errors import DataError

__all__ = ["check_transformer_lens_config", "config_file_for", "read_transformer_lens_config"]

_NO_NORM = (None, "", "none", "None")
_STANDARD_POS = (None, "", "standard")


def config_file_for(path: str | Path) -> Path | None:
    """The JSON configuration next to state dict ``path``, if any (``a.json``, ``a.pt.json``, ``config.json``)."""
    path = Path(path)
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json"), path.parent / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def read_transformer_lens_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration of state dict ``path``: its JSON file (if any) updated by the non-empty ``overrides``."""
    config: dict[str, Any] = {}
    json_path = config_file_for(path)
    if json_path is not None:
        try:
            loaded = json.loads(json_path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{json_path}: not a readable JSON model configuration ({err})") from err
        if not isinstance(loaded, dict):
            kind = type(loaded).__name__
            raise DataError(f"{json_path}: expected a JSON object (a HookedTransformerConfig), got {kind}")
        config.update(loaded)
    config.update({k: v for k, v in (overrides or {}).items() if v not in (None, "")})
    return config


def check_transformer_lens_config(config: Mapping[str, Any], *, d_head: int | None = None, source: str) -> None:
    """Raise :class:`DataError` (one line naming ``source`` and the field) when ``config`` implies a model other
    than the paper's: LayerNorm of any kind, a non-default attention scale, non-standard positions, more than one
    layer or head, or an MLP."""
    norm = config.get("normalization_type")
    if norm not in _NO_NORM:
        raise DataError(
            f"{source}: normalization_type={norm!r} (LayerNorm is applied but its weights are not in the state dict);"
            " the proofs cover only models without LayerNorm (paper Section 2)"
        )
    pos = config.get("positional_embedding_type")
    if pos not in _STANDARD_POS:
        raise DataError(f"{source}: positional_embedding_type={pos!r}; the proofs need learned additive positions")
    if config.get("use_attn_scale", True) is False:
        raise DataError(f"{source}: use_attn_scale=False; the proofs assume scores divided by sqrt(d_head)")
    d_head = config.get("d_head", d_head)
    scale = config.get("attn_scale")
    default = scale in (None, "", 0, -1, -1.0)  # -1: TransformerLens's "default" marker
    if not default and d_head and not math.isclose(float(scale), math.sqrt(float(d_head)), rel_tol=1e-6):
        raise DataError(
            f"{source}: attn_scale={scale} differs from sqrt(d_head)={math.sqrt(float(d_head)):.6g};"
            " the proofs assume the default scale"
        )
    for key, expected in (("n_layers", 1), ("n_heads", 1)):
        if key in config and config[key] not in (None, expected):
            raise DataError(f"{source}: {key}={config[key]!r}; the proofs cover a 1-layer, 1-head model")
    if config.get("attn_only") is False or config.get("d_mlp") not in (None, 0, ""):
        raise DataError(f"{source}: the configuration has an MLP (attn_only false or d_mlp set); attention only")
