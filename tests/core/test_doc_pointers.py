"""Every ``docs/...md`` path (and ``#anchor``) that the source mentions exists, with mkdocs' own heading ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POINTER = re.compile(r"docs/[\w/.-]+?\.md(?:#[\w-]+)?")
VAGUE = re.compile(r"\((?:see )?docs\)|see docs(?![/\w])|\(docs, |\bdocs, \"")


def _pointers() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [(f"{path.relative_to(ROOT)}:{number}", match) for match in POINTER.findall(line)]
    return found


def _heading_ids(page: Path) -> set[str]:
    """The ids mkdocs gives the page's headings: Python-Markdown's toc extension (its default slugify, unique
    suffixes ``_1``, ``_2`` for repeats), run on the page as mkdocs renders it."""
    markdown = pytest.importorskip("markdown")
    renderer = markdown.Markdown(extensions=["toc", "tables", "fenced_code"])
    renderer.convert(page.read_text(encoding="utf-8"))

    def walk(tokens: list[dict]) -> set[str]:
        return {t["id"] for t in tokens} | {i for t in tokens for i in walk(t["children"])}

    return walk(renderer.toc_tokens)


def test_every_docs_pointer_in_the_source_resolves():
    pointers = _pointers()
    assert len(pointers) >= 25  # the scan sees them (a broken regex would pass vacuously)
    ids: dict[str, set[str]] = {}
    broken = []
    for where, pointer in pointers:
        page, _, anchor = pointer.partition("#")
        if not (ROOT / page).is_file():
            broken.append(f"{where}: {pointer} (no such page)")
            continue
        if anchor:
            if page not in ids:
                ids[page] = _heading_ids(ROOT / page)
            if anchor not in ids[page]:
                broken.append(f"{where}: {pointer} (no such heading; ids: {sorted(ids[page])[:8]} ...)")
    assert not broken, "\n".join(broken)


def test_no_vague_docs_pointers():
    """``(see docs)`` cannot be checked and goes stale when a section moves: name the page and the heading."""
    vague = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if VAGUE.search(line)
    ]
    assert not vague, "\n".join(vague)
