"""Seeding and determinism.

Same seed and config give the same metrics on the same machine: :func:`seed_everything` seeds Python,
NumPy and torch and turns on torch's deterministic algorithms. Experiments that run several independent
units (sweep points, folds, seeds) derive one seed per unit with :func:`derive_seed`, so that a unit's
result does not depend on which units ran before it -- that is what makes ``--resume`` exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "derive_seed",
    "get_rng_state",
    "perturbed_parameters",
    "seed_everything",
    "set_rng_state",
    "torch_generator",
]


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def derive_seed(seed: int, *keys: Any) -> int:
    """A stable 31-bit seed for a sub-task identified by ``keys`` (independent of Python's hash seed)."""
    text = "/".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def get_rng_state() -> dict[str, Any]:
    """Global RNG states in a form that ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`get_rng_state`."""
    random.setstate(_to_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


@contextlib.contextmanager
def perturbed_parameters(relative: float, seed: int) -> Iterator[None]:
    """Multiply every module's parameters by ``1 + relative * N(0, 1)`` once, at the module's first forward call.

    A stand-in for another machine's float arithmetic (``--perturb 1e-6``): a verdict that moves under a
    1e-6 relative change of the initial weights is decided by float noise, not by the method. Noise comes
    from its own generator, so the run's other random streams are untouched.
    """
    if not relative:
        yield
        return
    global _ACTIVE_PERTURBATION
    seen: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
    generator = torch_generator(derive_seed(seed, "perturb"))

    def perturb_once(module: torch.nn.Module, _args: Any) -> None:
        if module in seen:
            return
        seen.add(module)
        for parameter in module.parameters(recurse=False):
            _multiply_by_noise(parameter, relative, generator)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(perturb_once)
    previous, _ACTIVE_PERTURBATION = _ACTIVE_PERTURBATION, (relative, generator)
    try:
        yield
    finally:
        _ACTIVE_PERTURBATION = previous
        handle.remove()


# (relative size, noise generator) while a ``perturbed_parameters`` context is active, for ``perturb_initial``
_ACTIVE_PERTURBATION: tuple[float, torch.Generator] | None = None


def _multiply_by_noise(tensor: torch.Tensor, relative: float, generator: torch.Generator) -> None:
    if tensor.is_floating_point():
        with torch.no_grad():
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            tensor.mul_((1.0 + relative * noise).to(tensor.dtype).to(tensor.device))


def perturb_initial(tensor: torch.Tensor) -> torch.Tensor:
    """Apply the run's ``--perturb`` noise to an initial weight that lives outside any ``torch.nn.Module``.

    Methods that keep their parameters as plain tensors (LDS's bilevel GCN) call this on each freshly
    initialised weight, so the verdict-stability check reaches them too; outside a perturbed run it is the
    identity. Returns ``tensor`` (modified in place).
    """
    if _ACTIVE_PERTURBATION is not None:
        _multiply_by_noise(tensor, *_ACTIVE_PERTURBATION)
    return tensor
