"""Error types raised at reprolab's boundaries.

Every error a user can cause (a bad config key, a malformed data file, a corrupt checkpoint) is a
:class:`ReproError` whose message names the file, line or field at fault. The CLI prints the message on
one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "DatasetMissingError", "ReproError"]


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
