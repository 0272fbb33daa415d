"""Progress bars that stay quiet when output is not a terminal (CI logs, pipes, tests)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress", "progress_enabled"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars are shown on an interactive stderr unless ``REPROLAB_PROGRESS=0``."""
    setting = os.environ.get("REPROLAB_PROGRESS")
    if setting is not None:
        return setting not in {"0", "false", "no", ""}
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when :func:`progress_enabled`, else iterate it plainly."""
    if not progress_enabled():
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)
