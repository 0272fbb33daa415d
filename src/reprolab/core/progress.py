"""Progress that suits where the output goes: bars on a terminal, plain lines in logs, nothing in tests.

``REPROLAB_PROGRESS``: ``0`` (off), ``bar`` or ``1`` (tqdm bars), ``plain`` (a line every
``REPROLAB_PROGRESS_EVERY`` seconds, default 30, with the rate and an ETA). Unset: bars when stderr is a
terminal, plain lines otherwise -- a long loop in a CI log or under ``nohup`` is never silent.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["announce", "progress", "progress_enabled", "progress_mode", "step_progress"]

T = TypeVar("T")

_OFF = {"0", "false", "no", "off", ""}
_MIN_LOOP_S = 10.0  # loops shorter than this print nothing in plain mode


def progress_mode() -> str:
    """``off``, ``bar`` or ``plain`` (see the module docstring)."""
    setting = os.environ.get("REPROLAB_PROGRESS")
    if setting is not None:
        setting = setting.strip().lower()
        if setting in _OFF:
            return "off"
        return "plain" if setting == "plain" else "bar"
    return "bar" if sys.stderr.isatty() else "plain"


def progress_enabled() -> bool:
    """Whether interactive bars are shown (libraries with their own bars, e.g. PyKEEN, follow this)."""
    return progress_mode() == "bar"


def _every_s() -> float:
    try:
        return max(0.0, float(os.environ.get("REPROLAB_PROGRESS_EVERY", "30")))
    except ValueError:
        return 30.0


def announce(text: str) -> None:
    """One plain line on stderr (a finished unit, a stage), unless progress is off or shown as bars."""
    if progress_mode() == "plain":
        print(text, file=sys.stderr, flush=True)


def _eta(done: int, total: int | None, elapsed: float) -> str:
    if not total or done == 0:
        return f"{done} done, {elapsed:.0f} s"
    left = elapsed / done * (total - done)
    return f"{done}/{total} ({100 * done / total:.0f}%), {elapsed:.0f} s, ETA {left:.0f} s"


def _plain(iterable: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    every = _every_s()
    start = last = time.perf_counter()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last >= every and now - start >= min(every, _MIN_LOOP_S):
            print(f"{desc or 'progress'}: {_eta(done, total, now - start)}", file=sys.stderr, flush=True)
            last = now
    elapsed = time.perf_counter() - start
    if elapsed >= _MIN_LOOP_S:
        print(f"{desc or 'progress'}: finished {done} in {elapsed:.0f} s", file=sys.stderr, flush=True)


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable``: a tqdm bar, plain lines with an ETA, or nothing (see :func:`progress_mode`)."""
    mode = progress_mode()
    if mode == "off":
        yield from iterable
    elif mode == "plain":
        yield from _plain(iterable, desc, total)
    else:
        yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)


def step_progress(desc: str, total: int | None = None) -> Callable[[], None]:
    """Progress of a loop that is not a Python iterable here (a training loop that reports through a callback, or
    stops early): call the returned function once per finished item. Lines and bars as :func:`progress`; with
    early stopping, ``total`` is the cap and the ETA an upper bound (say so in ``desc``)."""
    items = progress(range(total) if total is not None else itertools.count(), desc=desc, total=total)
    next(items, None)  # the clock starts now: the first item is under way

    def step() -> None:
        next(items, None)

    return step
