"""Device selection: CPU by default, CUDA when asked for or (with ``auto``) when available."""

from __future__ import annotations

import torch

from reprolab.core.errors import ConfigError

__all__ = ["CONV_LAYOUT", "DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")

# The memory layout of convolution weights and activations (ras, orderfree): channels-last computes the same
# function with the rounding of another oneDNN kernel and is faster on one CPU thread (measured in session 12:
# a RAS training step 1.6x, a quick ras seed ~24 % less CPU, the orderfree CNN 1.2-1.4x); on CUDA it is the
# layout cuDNN prefers too. A module converts its weights once (``module.to(memory_format=CONV_LAYOUT)``) and
# its input in ``forward``.
CONV_LAYOUT = torch.channels_last


def resolve_device(name: str = "cpu") -> torch.device:
    """Turn ``auto|cpu|cuda[:N]`` into a ``torch.device``; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but torch sees no CUDA device; use --device cpu")
        return torch.device(name)
    raise ConfigError(f"--device: unknown device {name!r}; valid choices: {', '.join(DEVICE_CHOICES)}")
