"""Validation at the edge for the readers of every method: text, JSON, images and numbers from user files.

One function per kind of input, each turning what a malformed or hostile file makes the underlying library
raise (``UnicodeDecodeError``, ``RecursionError``, PIL's ``DecompressionBombError``, NaN weights) into one
:class:`DataError` line naming the file (and line, where the format has lines).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolab.core.errors import DataError, ReproError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_JSON_DEPTH",
    "check_finite",
    "check_index_range",
    "check_state_finite",
    "load_json_capped",
    "open_image_safe",
    "read_text_utf8",
]

MAX_JSON_DEPTH = 64  # the readers' formats nest 3-4 levels; json's C parser recurses on the stack
MAX_IMAGE_PIXELS = 50_000_000  # ~7000 x 7000: far above any dataset here, far below a decompression bomb


def read_text_utf8(path: str | Path, *, what: str = "text file", error: type[ReproError] = DataError) -> str:
    """The whole file as text (UTF-8, a BOM tolerated), or one line naming the file and the offending line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as err:
        raise error(f"{path}: cannot read {what} ({err.strerror or err})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _json_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings ignored), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def load_json_capped(
    source: str | Path, *, text: str | None = None, max_depth: int = MAX_JSON_DEPTH, line: int | None = None
) -> Any:
    """Parse a JSON file (or ``text`` read from ``source``), refusing nesting deeper than ``max_depth``.

    ``line`` names the line of a JSON-lines file the text came from. NaN/Infinity literals are refused: no
    format read here uses them, and they would flow silently into metrics.
    """
    where = f"{source}:{line}" if line is not None else str(source)
    if text is None:
        text = read_text_utf8(source, what="JSON file")
    if _json_depth(text) > max_depth:
        raise DataError(f"{where}: JSON nested deeper than {max_depth} levels; refusing to parse it")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as err:
        at = f"{source}:{(line or 1) + err.lineno - 1}" if line is None else where
        raise DataError(f"{at}: not valid JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:
        raise DataError(f"{where}: not valid JSON ({err})") from None


def open_image_safe(path: str | Path, mode: str = "RGB", *, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """A fully loaded PIL image converted to ``mode``; a bomb, a truncated or foreign file is one line."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                width, height = handle.size
                if width * height > max_pixels:
                    raise DataError(
                        f"{path}: image of {width}x{height} pixels exceeds the limit of {max_pixels} "
                        "(a decompression bomb?)"
                    )
                image = handle.convert(mode)
                image.load()
                return image
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path}: refusing a decompression bomb ({str(err).splitlines()[0]})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read image ({text})") from None


def check_finite(values: Any, source: str | Path, what: str = "values") -> None:
    """Refuse NaN or infinite entries in an array or tensor read from ``source``."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise DataError(f"{source}: {what} hold {bad} NaN or infinite value(s)")


def check_state_finite(state: Mapping[str, Any], source: str | Path) -> None:
    """Refuse a state dict with a NaN or infinite weight, naming the first offending tensor."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise DataError(f"{source}: weight {key!r} holds NaN or infinite values")


def check_index_range(indices: Iterable[int], low: int, high: int, source: str | Path, what: str = "index") -> None:
    """Refuse an index outside ``[low, high)`` (the file's own sizes), naming the first one."""
    for position, index in enumerate(indices):
        if not low <= int(index) < high or (isinstance(index, float) and not math.isfinite(index)):
            raise DataError(f"{source}:{position + 1}: {what} {index} outside [{low}, {high})")
