"""Markdown bodies to safe HTML and to readable plain text.

Raw HTML in Markdown is never passed through: markdown-it runs with `html` off, so
`<script>` or `<img onerror=...>` comes out as visible, escaped text, and its link
validator refuses `javascript:`, `vbscript:`, `file:` and `data:` URLs.
"""

from __future__ import annotations

from functools import lru_cache

import html2text
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


@lru_cache(maxsize=4096)
def to_html(text: str) -> Markup:
    """Markdown -> HTML fragment, safe to insert into an email (raw HTML escaped)."""
    return Markup(_md.render(text or ""))


@lru_cache(maxsize=4096)
def to_text(text: str, width: int = 72) -> str:
    """Markdown -> plain text for the text/plain part: links become `label (URL)`."""
    return html_to_text(str(to_html(text)), width=width)


def html_to_text(fragment: str, width: int = 72) -> str:
    """An HTML fragment as plain text, every link written out as its URL."""
    h = html2text.HTML2Text(bodywidth=width)
    h.ignore_images = True
    h.inline_links = False
    h.protect_links = True
    h.wrap_links = False
    h.ignore_emphasis = True
    h.unicode_snob = True
    h.links_each_paragraph = True
    h.use_automatic_links = True
    h.skip_internal_links = True
    h.single_line_break = False
    return h.handle(fragment).strip()
