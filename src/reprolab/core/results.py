"""Trained models a user can keep, and a finished run as a Python object.

A method saves each trained model with :meth:`RunContext.save_model`: ``models/<name>.safetensors`` (the state
dict) and ``models/<name>.json`` (the importable builder and the keyword arguments that rebuild the module).
:func:`load_run` opens a run folder as a :class:`RunResult` (config, metrics, claims, verdict totals) whose
:meth:`RunResult.model` rebuilds a saved model and loads its weights -- the counterpart of PyKEEN's
``PipelineResult`` and HF's ``from_pretrained``, with safetensors so that loading runs no pickled code.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reprolab.core.errors import ReproError

__all__ = ["RunResult", "load_run", "save_model"]

MODELS_DIR = "models"


def _builder_path(build: Callable[..., torch.nn.Module]) -> str:
    module, name = build.__module__, build.__qualname__
    if "<" in name:
        raise ValueError(f"save_model: build must be an importable module-level callable, got {module}.{name}")
    return f"{module}:{name}"


def save_model(
    folder: str | Path,
    name: str,
    model: torch.nn.Module,
    *,
    build: Callable[..., torch.nn.Module],
    kwargs: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    frozen: Sequence[str] = (),
) -> Path:
    """Save ``model``'s weights as safetensors with what rebuilds it: ``build(**kwargs)`` (JSON-able kwargs).

    ``frozen`` names submodule prefixes (e.g. ``"clip."``) whose weights are not saved because ``build``
    restores them itself (a frozen pretrained backbone): only the trained parts are written, and loading
    checks that every key missing from the file lies under one of these prefixes."""
    from safetensors.torch import save_file

    from reprolab.core.io import atomic_write_text

    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"save_model: {name!r} is not a plain file name")
    target = Path(folder) / MODELS_DIR
    target.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared storage: store contiguous CPU copies (loading ties them again via the module)
    tensors = {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in model.state_dict().items()
        if not key.startswith(tuple(frozen))
    }
    weights = target / f"{name}.safetensors"
    partial = weights.with_suffix(".safetensors.tmp")
    save_file(tensors, str(partial))
    partial.replace(weights)
    card = {"build": _builder_path(build), "kwargs": dict(kwargs or {}), "class": type(model).__qualname__}
    card["meta"] = dict(meta or {})
    if frozen:
        card["frozen"] = list(frozen)
    atomic_write_text(target / f"{name}.json", json.dumps(card, indent=1, sort_keys=True))
    return weights


@dataclass
class RunResult:
    """A finished run: its ``results.json`` as attributes, and its saved models."""

    path: Path
    results: dict[str, Any] = field(repr=False)

    @property
    def method(self) -> str:
        return str(self.results["method"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.results.get("config", {}))

    @property
    def metrics(self) -> dict[str, float | None]:
        return dict(self.results.get("metrics", {}))

    @property
    def claims(self) -> list[dict[str, Any]]:
        return list(self.results.get("claims", []))

    @property
    def verdicts(self) -> dict[str, str]:
        """``{claim id: pass | fail | inconclusive}``."""
        return {c["id"]: c.get("verdict", "pass" if c.get("passed") else "fail") for c in self.claims}

    @property
    def models(self) -> list[str]:
        """Names of the models this run saved."""
        return sorted(p.stem for p in (self.path / MODELS_DIR).glob("*.json"))

    def model(self, name: str, *, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Rebuild the saved model ``name`` and load its weights (strict), in eval mode on ``device``."""
        from safetensors.torch import load_file

        card_path = self.path / MODELS_DIR / f"{name}.json"
        if not card_path.is_file():
            saved = ", ".join(self.models) or "none"
            raise ReproError(f"{self.path}: no saved model {name!r}; saved models: {saved}")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            module_name, qualname = card["build"].split(":")
        except (ValueError, KeyError, UnicodeDecodeError) as err:
            raise ReproError(f"{card_path}: not a reprolab model card ({type(err).__name__})") from None
        if not module_name.startswith("reprolab."):
            raise ReproError(f"{card_path}: builder {card['build']!r} is outside reprolab; refusing to import it")
        build: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            build = getattr(build, part)
        model = build(**card["kwargs"])
        try:
            state = load_file(str(card_path.with_suffix(".safetensors")), device=str(device))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ReproError(f"{card_path.with_suffix('.safetensors')}: unreadable weights ({err})") from None
        frozen = tuple(card.get("frozen", ()))
        if frozen:  # the builder restored these weights (a frozen backbone); the file holds the rest
            missing, unexpected = model.load_state_dict(state, strict=False)
            stray = [k for k in missing if not k.startswith(frozen)] + list(unexpected)
            if stray:
                raise ReproError(f"{card_path}: the weights do not fit the rebuilt model (e.g. {stray[0]!r})")
        else:
            model.load_state_dict(state, strict=True)
        return model.to(device).eval()


def load_run(path: str | Path) -> RunResult:
    """Open a finished run folder (the one ``reprolab run --out`` wrote)."""
    from reprolab.core.io import read_json

    path = Path(path)
    results_path = path / "results.json"
    if not results_path.is_file():
        raise ReproError(f"{path}: no results.json here; is this a finished run folder?")
    try:
        results = read_json(results_path)
    except ValueError as err:
        raise ReproError(f"{results_path}: not valid JSON ({err})") from None
    if not isinstance(results, dict) or "method" not in results:
        raise ReproError(f"{results_path}: not a reprolab results file (no method)")
    return RunResult(path, results)
