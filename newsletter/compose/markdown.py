"""Markdown bodies to safe HTML and to readable plain text.

Raw HTML in Markdown is never passed through: markdown-it runs with `html` off, so
`<script>` or `<img onerror=...>` comes out as visible, escaped text, and its link
validator refuses `javascript:`, `vbscript:`, `file:` and `data:` URLs (the link is left
as plain text).

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

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

_ANCHOR = re.compile(r'<a\s+href="([^"]*)"[^>]*>(.*?)</a>', re.S | re.I)
_TAGS = re.compile(r"<[^>]+>")


@lru_cache(maxsize=4096)
def to_html(text: str) -> Markup:
    """Markdown -> HTML fragment, safe to insert into an email (raw HTML escaped).

    Placeholders are shielded from markdown-it, which would percent-encode
    `[unsubscribe]({{ unsubscribe_url }})` into a dead link."""
    return Markup(restore(_md.render(protect(text or ""))))


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
    # placeholders hold spaces; shielded, wrapping can never split `{{ name }}` across lines
    out = restore(h.handle(_ANCHOR.sub(_inline_link, protect(fragment))))
    out = re.sub(r"[ \t]+\n", "\n", out)
    return re.sub(r"(?<=\S) {2,}(?=\S)", " ", out).strip()
