"""Typed experiment configurations: dataclasses, named presets and ``key=value`` overrides.

A method declares its configuration as a (flat) dataclass whose defaults are the quick preset; a preset is
a dict of field overrides. Overrides from the command line arrive as strings and are parsed with YAML
rules, then checked against the field's annotated type, so ``--set lr=1e-3`` and ``--set ks=[2,4]`` work
and ``--set steps=ten`` is refused with a message naming the field and the expected type.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reprolab.core.errors import ConfigError

__all__ = [
    "MAX_SEED",
    "Range",
    "apply_overrides",
    "bounded",
    "check_ranges",
    "check_seed",
    "config_from_dict",
    "config_to_dict",
    "parse_set_options",
    "read_overrides_file",
    "resolve_config",
]

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a JSON/YAML-friendly dict of a config dataclass (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_set_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``["a=1", "b=[2,3]"]`` into ``{"a": 1, "b": [2, 3]}`` with YAML scalar rules."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        overrides[key] = _number_or_text(value)
    return overrides


def _number_or_text(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as text; read such strings as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes 32 bits; torch and random take more
INT_LIMIT = 2**63 - 1  # what torch and numpy integers hold; larger values overflow deep inside them


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed interval of a numeric config field (or of every item of a list field).

    Every float must also be finite and every integer fit in 64 bits, range or not: NaN, infinities and
    huge integers are refused by name at the edge instead of surfacing as a torch/numpy traceback or,
    worse, as a run whose claims pass on nonsense.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def violation(self, value: float) -> str | None:
        """Why ``value`` is outside the range (``None`` when it is inside)."""
        if self.ge is not None and not value >= self.ge:
            return f"must be >= {self.ge:g}"
        if self.gt is not None and not value > self.gt:
            return f"must be > {self.gt:g}"
        if self.le is not None and not value <= self.le:
            return f"must be <= {self.le:g}"
        if self.lt is not None and not value < self.lt:
            return f"must be < {self.lt:g}"
        return None


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A config dataclass field with a declared range, e.g. ``lr: float = bounded(1e-3, gt=0)`` or
    ``ks: list[int] = bounded(factory=lambda: [2, 4], ge=1)``; :func:`apply_overrides` enforces it."""
    metadata = {"range": Range(ge=ge, gt=gt, le=le, lt=lt)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_ranges(config: Any) -> None:
    """Refuse a non-finite float, an integer beyond 64 bits or a value outside a field's declared range."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        allowed = item.metadata.get("range") if item.metadata else None
        values = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, number in values:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                continue
            key = item.name if index is None else f"{item.name}[{index}]"
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{key}: must be a finite number, got {number}")
            if isinstance(number, int) and abs(number) > INT_LIMIT:
                raise ConfigError(f"{key}: {number} is beyond the 64-bit integer range")
            problem = allowed.violation(number) if allowed is not None else None
            if problem:
                raise ConfigError(f"{key}: {problem}, got {number}")


def _field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp`` (int, float, bool, str, list/tuple[...], X | None, Literal)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} is not a valid {_describe(tp)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and origin is list:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: cannot use {value!r} as {_describe(tp)}")


def apply_overrides(config: C, overrides: Mapping[str, Any], *, source: str = "--set") -> C:
    """Return a copy of ``config`` with ``overrides`` applied; unknown keys and wrong types are refused."""
    types_by_name = _field_types(type(config))
    unknown = sorted(set(overrides) - set(types_by_name))
    if unknown:
        valid = ", ".join(sorted(types_by_name))
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {valid}")
    changes = {key: _coerce(value, types_by_name[key], key) for key, value in overrides.items()}
    new = dataclasses.replace(config, **changes)
    check_ranges(new)
    validate = getattr(new, "validate", None)
    if callable(validate):
        validate()
    return new


def config_from_dict(config_cls: type[C], values: Mapping[str, Any], *, source: str = "config") -> C:
    """Build a config from a plain dict (for example a run folder's ``config.yaml``)."""
    return apply_overrides(config_cls(), values, source=source)




def check_seed(seed: Any) -> int:
    """A run seed: an integer in [0, 2**32 - 1] (refused by name otherwise, before any RNG sees it)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed: must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def resolve_config(
    config_cls: type[C],
    presets: Mapping[str, Mapping[str, Any]],
    preset: str,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Defaults, then the named preset, then user overrides."""
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(presets))}")
    config = apply_overrides(config_cls(), presets[preset], source=f"preset {preset!r}")
    return apply_overrides(config, overrides or {})


def read_overrides_file(path: str | Path) -> dict[str, Any]:
    """The overrides in a YAML file (``reprolab run --config FILE``): a mapping of config fields to values."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a readable UTF-8 YAML file ({type(err).__name__})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ConfigError(f"{path}: expected a mapping of config fields to values, got {type(loaded).__name__}")
    if isinstance(loaded.get("config"), dict) and "method" in loaded:  # a run's own config.yaml
        loaded = loaded["config"]
    return {key: _number_or_text(value) for key, value in loaded.items()}
