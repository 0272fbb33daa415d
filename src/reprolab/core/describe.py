"""What ``reprolab show METHOD`` prints: every setting with its type, default, preset value and meaning.

One source of truth: a field's meaning is its ``field(metadata={"help": ...})`` when given, else the comment on
the field's line in the config dataclass, else the comment lines right above it. A preset's one-line
description is the comment above its entry in the method's ``PRESETS``. The extras a method needs are read
from the imports of its package, so nothing here has to be kept in step by hand.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import pkgutil
import textwrap
import tokenize
from collections.abc import Mapping
from typing import Any

from reprolab.core.config import config_to_dict, resolve_config

__all__ = ["field_docs", "preset_docs", "render_show", "required_extras"]

# top-level module -> the pyproject extra that installs it
EXTRA_OF_MODULE = {
    "torch_geometric": "graph",
    "pykeen": "kg",
    "transformers": "vl",
    "skimage": "shapes",
    "h5py": "shapes",
    "ray": "distributed",
}


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


def _comment_for(line: int, lines: list[str], comments: Mapping[int, str]) -> str:
    """The comment on ``line``, else the run of comment-only lines right above it."""
    if line in comments and lines[line - 1].strip() and not lines[line - 1].lstrip().startswith("#"):
        return comments[line]
    above: list[str] = []
    previous = line - 1
    while previous >= 1 and lines[previous - 1].lstrip().startswith("#"):
        above.insert(0, comments.get(previous, ""))
        previous -= 1
    return " ".join(above)


def field_docs(config_cls: type) -> dict[str, str]:
    """``{field: meaning}`` for every field of the config dataclass (empty string when none is written)."""
    docs = {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(config_cls)}
    try:
        source = textwrap.dedent(inspect.getsource(config_cls))
    except (OSError, TypeError):
        return docs
    lines = source.splitlines()
    comments = _comments_by_line(source)
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and not docs.get(node.target.id):
            docs[node.target.id] = _comment_for(node.lineno, lines, comments)
    return docs


def preset_docs(experiment: Any) -> dict[str, str]:
    """``{preset: its description}``: the module's ``PRESET_NOTES[preset]`` when given (presets built in a loop or
    shared by several names have no comment of their own), else the comment above its key in the module's
    ``PRESETS = {...}`` literal or above a ``PRESETS["name"] = ...`` statement (empty string when none is written).
    Only those places are read: a comment above the same name as a key of another dict (e.g. a table of the
    paper's numbers per dataset) describes that entry, not the preset."""
    module = importlib.import_module(experiment.run.__module__)
    notes: Mapping[str, str] = getattr(module, "PRESET_NOTES", {})
    docs = {name: str(notes.get(name, "")) for name in experiment.presets}
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return docs
    lines = source.splitlines()
    comments = _comments_by_line(source)
    for name, line in _preset_lines(ast.parse(source)):
        if name in docs and not docs[name]:
            docs[name] = _comment_for(line, lines, comments)
    for name, settings in experiment.presets.items():
        if not docs[name] and not settings:
            docs[name] = "the config's defaults (the settings table's default column)"
    return docs


def _preset_lines(tree: ast.Module) -> list[tuple[str, int]]:
    """(preset name, source line) of every literal key of a module-level ``PRESETS`` dict and of every
    ``PRESETS["name"] = ...`` statement."""
    found: list[tuple[str, int]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "PRESETS" and isinstance(value, ast.Dict):
                found += [(key.value, key.lineno) for key in value.keys
                          if isinstance(key, ast.Constant) and isinstance(key.value, str)]
            elif (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                  and target.value.id == "PRESETS" and isinstance(target.slice, ast.Constant)
                  and isinstance(target.slice.value, str)):
                found.append((target.slice.value, node.lineno))
    return found


def required_extras(experiment: Any) -> list[str]:
    """The pyproject extras whose modules the method's package imports (e.g. ``graph`` for PyG)."""
    package = importlib.import_module(experiment.run.__module__.rsplit(".", 1)[0])
    found: set[str] = set()
    for info in pkgutil.iter_modules(package.__path__):
        spec = importlib.util.find_spec(f"{package.__name__}.{info.name}")
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found |= {EXTRA_OF_MODULE[n.split(".")[0]] for n in names if n.split(".")[0] in EXTRA_OF_MODULE}
    return sorted(found)


def _type_name(tp: Any) -> str:
    text = getattr(tp, "__name__", None) if not hasattr(tp, "__args__") else None
    return text or str(tp).replace("typing.", "")


def _short(value: Any, width: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_show(experiment: Any, preset: str | None = None) -> str:
    """The text of ``reprolab show``: paper, presets, settings table, claims and datasets."""
    import typing

    config_cls = experiment.config_cls
    defaults = config_to_dict(config_cls())
    chosen = config_to_dict(resolve_config(config_cls, experiment.presets, preset)) if preset else None
    hints = typing.get_type_hints(config_cls)
    docs = field_docs(config_cls)
    extras = required_extras(experiment)
    lines = [
        f"{experiment.name}: {experiment.description}",
        f"paper: {experiment.paper.cite()}",
        f"install: pip install 'reprolab[{','.join(extras)}]'" if extras else "install: no extra needed",
        "",
        "presets (reprolab reproduce runs the stated seeds):",
    ]
    for name, text in preset_docs(experiment).items():
        if not text:
            text = "the config defaults" if not experiment.presets[name] else "(no description)"
        lines.append(f"  {name:<18} seeds {experiment.seeds_for(name):<3} {text}")
    lines += ["", f"settings ({'default -> ' + preset if preset else 'default'}; set with --set key=value):"]
    name_width = max(len(n) for n in defaults)
    for name, default in defaults.items():
        value = _short(default)
        if chosen is not None and chosen[name] != default:
            value += f" -> {_short(chosen[name])}"
        meaning = docs.get(name) or ""
        lines.append(f"  {name:<{name_width}}  {_type_name(hints[name]):<12} {value:<28} {meaning}".rstrip())
    lines += ["", "claims:"]
    for claim in experiment.claims:
        paper = f" (paper {claim.paper:g}, {claim.paper_source or 'source not stated'})" if claim.paper else ""
        needed = "".join(f" [needs n >= {n} at {preset}]" for preset, n in claim.units_needed)
        lines.append(f"  [{claim.kind}] {claim.id}: {claim.description}{paper}{needed}")
    lines += ["", "datasets:"]
    for info in experiment.datasets:
        where = "embedded" if info.embedded else f"real, under $REPROLAB_DATA/{info.subdir}"
        lines.append(f"  {info.name} ({where}): {info.description}")
    return "\n".join(lines)
