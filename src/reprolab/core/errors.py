"""Error types raised at reprolab's boundaries.

Every error a user can cause (a bad config key, a malformed data file, a corrupt checkpoint) is a
:class:`ReproError` whose message names the file, line or field at fault. The CLI prints the message on
one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DatasetMissingError",
    "MissingDependencyError",
    "ReproError",
    "missing_dependency",
]


class ReproError(Exception):
    """Base class of all user-facing reprolab errors."""


class ConfigError(ReproError, ValueError):
    """An unknown key, a wrong type or an unknown preset in an experiment configuration."""


class DataError(ReproError, ValueError):
    """A data file that exists but is malformed; the message names the file and line."""


class DatasetMissingError(ReproError, FileNotFoundError):
    """A real dataset that is not on disk; the message says where it comes from and the expected layout."""


class CheckpointError(ReproError):
    """A checkpoint that is corrupt or belongs to a different configuration."""


class MissingDependencyError(ReproError, ImportError):
    """An optional field library a method needs is not installed; the message names the extra to install."""


# top-level module -> the pyproject extra that installs it
OPTIONAL_MODULES = {
    "torch_geometric": "graph",
    "pykeen": "kg",
    "transformers": "vl",
    "skimage": "shapes",
    "h5py": "shapes",
}


def missing_dependency(err: ImportError, method: str) -> MissingDependencyError | None:
    """One line for an ``ImportError`` of an optional dependency (``None`` when it is not one: a real bug)."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(name)
    if extra is None:
        return None
    return MissingDependencyError(
        f"{method} needs the optional dependency {name!r}, which is not installed or does not import "
        f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
        f"install it with: pip install 'reprolab[{extra}]'"
    )
