"""A self-contained HTML page: sections of text, tables and figures, styles inline and every
image embedded as a data URI, so the file opens anywhere with no network; or the same text and
tables as Markdown.

Text reaches the page from its inputs (a sweep's name, a model's, a file's), so every piece is
escaped as it is written: HTML-escaped in the page, and in Markdown escaped so that it shows
as written (a ``<script>`` tag as text, not as HTML that a Markdown viewer would pass through).
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1rem 1.25rem 3rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
p.lead { color: #555; margin-top: 0; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92rem; margin-top: 0.35rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.92rem; margin: 0.8rem 0; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #e5e5e5; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f6f6; }
caption { caption-side: bottom; text-align: left; color: #444; font-size: 0.9rem;
          padding-top: 0.35rem; }
@media (max-width: 640px) { body { padding: 0.6rem; } h1 { font-size: 1.3rem; } }
"""


@dataclass(frozen=True)
class Figure:
    """An image (PNG or SVG bytes) and the sentence that says what to read from it."""

    data: bytes
    mime: str
    caption: str
    alt: str


def svg_figure(draw: Callable[[Path], None], caption: str, alt: str) -> Figure:
    """The SVG file that ``draw(path)`` writes, as a figure with its ``caption`` and ``alt``
    text."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "figure.svg"
        draw(path)
        return Figure(path.read_bytes(), "image/svg+xml", caption, alt)


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def render(title: str, lead: str, sections: Sequence[Section]) -> str:
    """The whole page as one string."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="lead">{html.escape(lead)}</p>',
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        parts += [_table(t) for t in section.tables]
        parts += [_figure(f) for f in section.figures]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def markdown(title: str, lead: str, sections: Sequence[Section]) -> str:
    """The page's text and tables in Markdown, for pasting into notes (figures as their
    captions: the HTML report has them)."""
    parts = [f"# {escape_markdown(title)}", "", _markdown_paragraph(lead), ""]
    for section in sections:
        parts += [f"## {escape_markdown(section.title)}", ""]
        for paragraph in section.paragraphs:
            parts += [_markdown_paragraph(paragraph), ""]
        for table in section.tables:
            parts += [markdown_table(table), ""]
            if table.caption:
                parts += [_markdown_paragraph(table.caption), ""]
        for figure in section.figures:
            alt, caption = escape_markdown(figure.alt), escape_markdown(figure.caption)
            parts += [f"*Figure ({alt}): {caption}*", ""]
    return "\n".join(parts)


def markdown_table(table: Table) -> str:
    """The table in Markdown, for pasting into notes."""
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in table.header) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


# Characters that start inline Markdown (code, emphasis, links, images, table cells,
# strikethrough, a heading's closing hashes) anywhere in a line. An underscore inside a word
# (turning_point) starts nothing in CommonMark, so it is left as it is, for legibility.
_INLINE = re.compile(r"[\\`*\[\]|~#]|(?<![^\W_])_|_(?![^\W_])")
# What starts a block when it begins a paragraph: a list item, a thematic break or a setext
# underline (``-``, ``+``, ``=``), an ordered item (``1.`` or ``1)`` then a space).
_BLOCK_START = re.compile(r"^(?:[-+=]|\d+[.)](?=\s|$))")


def escape_markdown(text: str) -> str:
    """``text`` as inline Markdown that renders as ``text`` itself: on one line, HTML tags and
    entities shown as text (``&lt;``), and no emphasis, link, code or table cell that it did
    not mean."""
    line = html.escape(" ".join(text.split()), quote=False)
    return _INLINE.sub(lambda m: "\\" + m.group(0), line)


def _markdown_paragraph(text: str) -> str:
    """``text`` as a Markdown paragraph: escaped inline, and not starting a list or a rule."""
    line = escape_markdown(text)
    return _BLOCK_START.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], line)


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(figure: Figure) -> str:
    encoded = base64.b64encode(figure.data).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(figure.alt)}" src="data:{figure.mime};base64,{encoded}">'
        f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
    )
