"""Per-recipient fields in a built issue: `{{ name }}`, `{{ email }}`, `{{ unsubscribe_url }}`.

A built issue is rendered once; what differs per reader is left as literal placeholders
that survive MJML and CSS inlining unchanged and are filled in at send time by plain
string splicing (see `Template`), which is what makes per-recipient work cheap.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from markupsafe import Markup

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")

#: Fields every recipient has; subscriber CSV columns add more.
STANDARD_FIELDS = ("name", "email", "unsubscribe_url")


def placeholder(field: str) -> Markup:
    """The literal placeholder text for `field`, as templates emit it."""
    return Markup("{{ " + field + " }}")


class Recipient:
    """What templates see as `recipient`: `{{ recipient.name }}` emits `{{ name }}`."""

    def __getattr__(self, field: str) -> Markup:
        if field.startswith("_"):
            raise AttributeError(field)
        return placeholder(field)


def fields_in(text: str) -> set[str]:
    """The placeholder names used in `text`."""
    return set(PLACEHOLDER.findall(text))


_PROTECTED = re.compile(r"NLFIELD7([A-Za-z_][A-Za-z0-9_]{0,63})7NLFIELD")


def protect(text: str) -> str:
    """Swap placeholders for tokens no HTML tool will encode (lxml writes `{{%20x%20}}` in hrefs)."""
    return PLACEHOLDER.sub(lambda m: f"NLFIELD7{m.group(1)}7NLFIELD", text)


def restore(text: str) -> str:
    """Undo `protect`, giving every placeholder its canonical form `{{ field }}`."""
    return _PROTECTED.sub(lambda m: "{{ " + m.group(1) + " }}", text)


class Template:
    """A text with placeholders, split once so filling it is a join, not a regex per reader."""

    __slots__ = ("parts", "fields", "escape")

    def __init__(self, text: str, *, escape_html: bool = False):
        pieces = PLACEHOLDER.split(text)
        self.parts: list[str] = pieces[0::2]
        self.fields: list[str] = pieces[1::2]
        self.escape = escape_html

    def fill(self, values: Mapping[str, str]) -> str:
        """Splice `values` in; missing fields become empty. HTML templates escape values."""
        out = [self.parts[0]]
        esc = self.escape
        for field, tail in zip(self.fields, self.parts[1:], strict=True):
            value = values.get(field) or ""
            out.append(html.escape(value, quote=True) if esc else value)
            out.append(tail)
        return "".join(out)
