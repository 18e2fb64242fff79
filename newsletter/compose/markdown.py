"""Markdown bodies to safe HTML and to readable plain text.

Raw HTML in Markdown is never passed through: markdown-it runs with `html` off, so
`<script>` or `<img onerror=...>` comes out as visible, escaped text, and its link
validator refuses `javascript:`, `vbscript:`, `file:` and `data:` URLs (the link is left
as plain text).

GitHub-style tables are on: in the HTML each becomes an email-safe table (explicit
`cellpadding`/`border`/`width` attributes and `align` on every cell, which Outlook's Word
engine honours where it ignores CSS); in the text part, columns padded to line up, each
aligned as the Markdown says.

The plain-text part writes every link as `label (URL)` right where it stands, rather
than as numbered footnotes: a reader of the text part should not have to scroll to
find where "click here" goes.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import html2text
from markdown_it import MarkdownIt
from markupsafe import Markup

from newsletter.deliver.placeholders import protect, restore

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

_ANCHOR = re.compile(r'<a\s+href="([^"]*)"[^>]*>(.*?)</a>', re.S | re.I)
_TAGS = re.compile(r"<[^>]+>")
_TABLE = re.compile(r"<table>(.*?)</table>", re.S)
_CELL_ALIGN = re.compile(r'<(th|td) style="text-align:(left|right|center)">')
#: What stands in for a table while html2text wraps the text around it (it must not wrap a table).
_TABLE_MARK = "\x00table{}\x00"


def _email_table(m: re.Match[str]) -> str:
    inner = _CELL_ALIGN.sub(r'<\1 align="\2" style="text-align:\2">', m.group(1))
    inner = re.sub(r"<(th|td)>", r'<\1 align="left">', inner)
    return ('<table class="nl-table" width="100%" cellpadding="6" cellspacing="0" border="0">'
            f"{inner}</table>")


@lru_cache(maxsize=4096)
def to_html(text: str) -> Markup:
    """Markdown -> HTML fragment, safe to insert into an email (raw HTML escaped).

    Placeholders are shielded from markdown-it, which would percent-encode
    `[unsubscribe]({{ unsubscribe_url }})` into a dead link."""
    return Markup(_TABLE.sub(_email_table, restore(_md.render(protect(text or "")))))


@lru_cache(maxsize=4096)
def to_text(text: str, width: int = 72) -> str:
    """Markdown -> plain text for the text/plain part: links become `label (URL)`."""
    return html_to_text(str(to_html(text)), width=width)


def _inline_link(m: re.Match[str]) -> str:
    url = html.unescape(m.group(1))
    label_html = m.group(2)
    label = html.unescape(_TAGS.sub("", label_html)).strip()
    shown = url[len("mailto:"):] if url.lower().startswith("mailto:") else url
    if not label or label in (url, shown):
        return html.escape(shown)
    return f"{label_html} ({html.escape(shown)})"


def html_to_text(fragment: str, width: int = 72) -> str:
    """An HTML fragment as plain text, every link written out as `label (URL)`."""
    h = html2text.HTML2Text(bodywidth=width)
    h.ignore_images = True
    h.ignore_links = True  # links are already written out in the text, see _inline_link
    h.ignore_emphasis = True
    h.unicode_snob = True
    h.escape_snob = False
    h.single_line_break = False
    tables: list[str] = []

    def set_aside(m: re.Match[str]) -> str:
        tables.append(_text_table(m.group(0)))
        return f"<p>{_TABLE_MARK.format(len(tables) - 1)}</p>"

    fragment = re.sub(r"<table\b.*?</table>", set_aside, fragment, flags=re.S)
    # placeholders hold spaces; shielded, wrapping can never split `{{ name }}` across lines
    out = restore(h.handle(_ANCHOR.sub(_inline_link, protect(fragment))))
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"(?<=\S) {2,}(?=\S)", " ", out)
    for i, table in enumerate(tables):  # after the spaces are tidied: a table's padding is its point
        out = out.replace(_TABLE_MARK.format(i), table)
    return out.strip()


def _text_table(table_html: str) -> str:
    """A table as lines of padded columns: left, right or centred as its cells are aligned,
    a rule under the header row, links written out as `label (URL)`."""
    rows: list[tuple[bool, list[tuple[str, str]]]] = []
    for row in re.findall(r"<tr>(.*?)</tr>", table_html, re.S):
        cells = re.findall(r'<(th|td)(?: align="(\w+)")?[^>]*>(.*?)</\1>', row, re.S)
        rows.append((any(tag == "th" for tag, _, _ in cells),
                     [(align or "left", _cell_text(body)) for _, align, body in cells]))
    if not rows:
        return ""
    n = max(len(cells) for _, cells in rows)
    widths = [max((len(cells[i][1]) for _, cells in rows if i < len(cells)), default=0) for i in range(n)]
    lines = []
    for header, cells in rows:
        padded = []
        for i, width in enumerate(widths):
            align, text = cells[i] if i < len(cells) else ("left", "")
            padded.append(text.rjust(width) if align == "right" else text.center(width) if align == "center"
                          else text.ljust(width))
        lines.append("  ".join(padded).rstrip())
        if header:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell_text(cell_html: str) -> str:
    text = _ANCHOR.sub(_inline_link, cell_html)
    return re.sub(r"\s+", " ", html.unescape(_TAGS.sub("", text))).strip()
