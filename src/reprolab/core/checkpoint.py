"""Safe checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict ``{"format": ..., "fingerprint": ..., "state": ...}``. The fingerprint is a hash of
the run's method, preset-resolved config and seed; loading a checkpoint written by another configuration
is refused, as is a file that is truncated or not a reprolab checkpoint. ``map_location`` is always
given, so a checkpoint written on a GPU machine loads on a CPU-only one.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from reprolab.core.errors import CheckpointError, DataError, ReproError
from reprolab.core.io import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "config_fingerprint",
    "load_cached",
    "load_checkpoint",
    "read_state_dict",
    "save_cached",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "reprolab-checkpoint-v1"

# What torch.load raises on a truncated, corrupt, foreign or unsafe file (struct.error: a file of a few bytes;
# KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError: the legacy reader on short text files).
_UNREADABLE = (
    RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError, struct.error,
    KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError,
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def config_fingerprint(payload: Any) -> str:
    """A short, stable hash of a JSON-serialisable payload (method, config, seed)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: str | Path, state: dict[str, Any], *, fingerprint: str) -> Path:
    """Atomically write ``state`` (tensors, numbers, strings, lists, dicts) to ``path``."""
    payload = {"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "state": state}
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(
    path: str | Path, *, fingerprint: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`; return its ``state``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except _UNREADABLE as err:
        first_line = _first_line(err)
        raise CheckpointError(f"{path}: corrupt or unsafe checkpoint ({first_line})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state" not in payload:
        raise CheckpointError(f"{path}: not a reprolab checkpoint (expected format {CHECKPOINT_FORMAT})")
    if fingerprint is not None and payload.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path}: checkpoint belongs to a different configuration "
            f"(fingerprint {payload.get('fingerprint')} != {fingerprint}); "
            "resume with the same method, preset, overrides and seed, or use a new --out folder"
        )
    return payload["state"]


def load_cached(
    name: str,
    folders: Sequence[str | Path],
    fingerprint: str,
    *,
    note: Callable[[str], None] | None = None,
    accept: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[dict[str, Any], Path] | None:
    """The state of the first valid cached artefact ``name`` among ``folders``, and its path; ``None`` on a miss.

    For derived artefacts such as a pretrained stand-in backbone: a file that is corrupt, belongs to another
    fingerprint or fails ``accept`` is reported through ``note`` and treated as a miss, never as an error.
    """
    for folder in folders:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path, fingerprint=fingerprint)
        except CheckpointError as err:
            if note is not None:
                note(f"Ignored a cache file: {err}")
            continue
        if accept is not None and not accept(state):
            if note is not None:
                note(f"Ignored a cache file: {path}: its contents do not fit this model")
            continue
        return state, path
    return None



def require_cached(name: str, folders: Sequence[str | Path], fingerprint: str, what: str) -> dict[str, Any]:
    """The state of cached artefact ``name`` that a saved model's card names (its frozen backbone), or one
    line saying how to rebuild it: rerunning the run's command pretrains it again, deterministically."""
    cached = load_cached(name, folders, fingerprint)
    if cached is None:
        raise ReproError(
            f"the run's {what} {name} is in none of {', '.join(map(str, folders))}; rerun the "
            "run's command with the same settings to pretrain it again (deterministic)"
        )
    return cached[0]

def save_cached(name: str, folders: Sequence[str | Path], state: dict[str, Any], fingerprint: str) -> Path | None:
    """Write ``state`` as ``name`` into the first writable folder of ``folders``; ``None`` if none is writable."""
    for folder in folders:
        try:
            return save_checkpoint(Path(folder) / name, state, fingerprint=fingerprint)
        except OSError:
            continue
    return None


def read_state_dict(
    path: str | Path,
    *,
    what: str = "state dict",
    error: type[ReproError] = DataError,
    nonfinite_ok: frozenset[str] = frozenset(),
) -> dict:
    """A plain ``torch.save``d state dict made elsewhere (torchvision, TransformerLens, ...), read safely.

    ``weights_only=True`` and ``map_location="cpu"``; an unreadable file or one that does not hold a mapping
    raises ``error`` naming the file and ``what`` was expected. Keys and shapes are the caller's to check.
    ``nonfinite_ok`` names buffers that are infinite by design (TransformerLens's ``IGNORE`` = -inf).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as err:
        first_line = _first_line(err)
        raise error(f"{path}: not a readable {what} ({first_line})") from err
    if not isinstance(state, dict):
        raise error(f"{path}: expected a {what} (a mapping of tensors), got {type(state).__name__}")
    for key, value in state.items():  # no method here can use a NaN/inf weight; it would only poison results
        if key in nonfinite_ok:
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise error(f"{path}: weight {key!r} of the {what} holds NaN or infinite values")
    return state
