"""One self-contained HTML page per report (``reprolab report --html DIR``): the Markdown report rendered with
markdown-it, every figure embedded as a data URI, so the page opens anywhere (mail, another machine, a browser
with no access to the run folder)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from reprolab.core.errors import ReproError
from reprolab.core.io import atomic_write_text

__all__ = ["render_html", "write_html_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 48%; margin: 0.25rem; border: 1px solid #eee; }
code, pre { background: #f6f6f6; }
pre { padding: 0.5rem; overflow-x: auto; }
"""

_IMG = re.compile(r'<img src="([^"]+)"')


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(markdown_text: str, base: Path, title: str) -> str:
    """``markdown_text`` as a standalone page; images linked relative to ``base`` are embedded."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)

    def embed(match: re.Match[str]) -> str:
        target = (base / html.unescape(match.group(1))).resolve()
        if not target.is_file():
            return match.group(0)  # left as a link; the page says what is missing rather than failing
        return f'<img src="{_data_uri(target)}"'

    body = _IMG.sub(embed, body)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )


def write_html_report(folder: str | Path) -> Path:
    """Write ``report.html`` beside the ``report.md`` of a run or reproduce folder and return its path."""
    folder = Path(folder)
    report = folder / "report.md"
    if not report.is_file():
        raise ReproError(f"{folder}: no report.md here; is this a finished run or reproduce folder?")
    text = report.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text else "reprolab report"
    target = folder / "report.html"
    atomic_write_text(target, render_html(text, folder, title))
    return target
