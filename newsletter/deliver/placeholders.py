"""Per-recipient fields in a built issue: `{{ name }}`, `{{ email }}`, `{{ unsubscribe_url }}`.

A built issue is rendered once; what differs per reader is left as literal placeholders
that survive MJML and CSS inlining unchanged and are filled in at send time by plain
string splicing (see `Template`), which is what makes per-recipient work cheap.

A placeholder may carry a fallback for readers whose value is empty:
`{{ name | default("friend") }}` (single or double quotes). It is the only filter: the fill
stays a join, not a template engine per reader. Between the issue text and the built HTML
the quotes may come back HTML-escaped (`&#34;`, `&quot;`, `&#39;`) by Jinja's autoescape or
lxml; the pattern accepts those too, and `Template` unescapes the fallback of an HTML part
before escaping it again like any value.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from markupsafe import Markup

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_QUOTE = r"(?:\"|'|&#34;|&#x22;|&quot;|&#39;|&#x27;|&apos;)"
#: `{{ field }}` or `{{ field | default("fallback") }}`. Group 1 is the field's name (the
#: fallback group is non-capturing, so `findall` and `split` callers still get names only).
PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*(?:\|\s*default\s*\(\s*" + _QUOTE
                         + r"[^\"'{}<>\n]{0,200}?" + _QUOTE + r"\s*\)\s*)?\}\}")
#: The same, with the fallback captured (group 2, None without one).
WITH_FALLBACK = re.compile(r"\{\{\s*(" + _NAME + r")\s*(?:\|\s*default\s*\(\s*" + _QUOTE
                   + r"([^\"'{}<>\n]{0,200}?)" + _QUOTE + r"\s*\)\s*)?\}\}")

#: Fields every recipient has; subscriber CSV columns add more.
STANDARD_FIELDS = ("name", "email", "unsubscribe_url")
#: `values[field + DEFAULT]` is a reader's own fallback for an empty `field` (the greeting
#: word of their language for `name`), used when the placeholder names none itself.
DEFAULT = ":default"


def value(values: Mapping[str, str], field: str, fallback: str = "") -> str:
    """What a placeholder of `field` with `fallback` shows for these values."""
    return values.get(field) or fallback or values.get(field + DEFAULT) or ""


def placeholder(field: str) -> Markup:
    """The literal placeholder text for `field`, as templates emit it."""
    return Markup("{{ " + field + " }}")


def canonical(field: str, fallback: str | None) -> str:
    """`{{ field }}` or `{{ field | default('fallback') }}` (single quotes: safe in a double-quoted attribute)."""
    return "{{ " + field + " }}" if fallback is None else "{{ " + field + " | default('" + fallback + "') }}"


class Recipient:
    """What templates see as `recipient`: `{{ recipient.name }}` emits `{{ name }}`."""

    def __getattr__(self, field: str) -> Markup:
        if field.startswith("_"):
            raise AttributeError(field)
        return placeholder(field)


def fields_in(text: str) -> set[str]:
    """The placeholder names used in `text`."""
    return set(PLACEHOLDER.findall(text))


def unknown_fields(used: Iterable[str], columns: Iterable[str]) -> list[str]:
    """The fields in `used` that are neither standard nor a column of the list, sorted."""
    known = set(STANDARD_FIELDS) | set(columns)
    return sorted(set(used) - known)


_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']\s*(\{\{[^{}]*\}\})\s*["']""", re.I)


def link_fields(html_text: str) -> list[tuple[str, str]]:
    """(field, fallback) of every placeholder that is a whole link or image URL in `html_text`
    (`href="{{ website }}"`): the reader's value becomes the URL itself, so it must be checked
    like a literal link, per reader. Standard fields are the tool's own, never checked."""
    out: list[tuple[str, str]] = []
    for m in _LINK.finditer(html_text):
        whole = WITH_FALLBACK.fullmatch(m.group(1))
        if whole is None or whole.group(1) in STANDARD_FIELDS:
            continue
        pair = (whole.group(1), html.unescape(whole.group(2) or ""))
        if pair not in out:
            out.append(pair)
    return out


def field_pattern(field: str) -> re.Pattern[str]:
    """Matches a placeholder of `field` as an editor wrote it (any spacing, with or without fallback)."""
    return re.compile(r"\{\{\s*" + re.escape(field) + r"\s*(?:\||\}\})")


def line_of(lines: list[str], field: str) -> int | None:
    """The first line (1-based) of `lines` that uses `field` as a placeholder, outside a comment."""
    pattern = field_pattern(field)
    for n, text in enumerate(lines, 1):
        if pattern.search(text) and not text.lstrip().startswith("#"):
            return n
    return None


def locate_field(issue_path: Path, templates: Iterable[Path], field: str) -> tuple[Path, int | None]:
    """Where an editor fixes `field`: the issue's line that uses it, else the first template
    line (`{{ field }}` or `recipient.field`), else the issue without a line."""
    try:
        line = line_of(issue_path.read_text(encoding="utf-8-sig").splitlines(), field)
    except (OSError, UnicodeDecodeError):
        line = None
    if line is not None:
        return issue_path, line
    pattern = re.compile(field_pattern(field).pattern + r"|\brecipient\." + re.escape(field) + r"\b")
    for folder in templates:
        for path in sorted(folder.rglob("*.j2")) if folder.is_dir() else ():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for n, text in enumerate(lines, 1):
                if pattern.search(text):
                    return path, n
    return issue_path, None


_PROTECTED = re.compile(r"NLFIELD7([A-Za-z_][A-Za-z0-9_]{0,63}?)(?:7NLDEF7([0-9a-f]*))?7NLFIELD")


def protect(text: str) -> str:
    """Swap placeholders for tokens no HTML tool will encode (lxml writes `{{%20x%20}}` in hrefs).
    A fallback travels hex-encoded inside the token."""
    def token(m: re.Match[str]) -> str:
        fallback = m.group(2)
        if fallback is None:
            return f"NLFIELD7{m.group(1)}7NLFIELD"
        return f"NLFIELD7{m.group(1)}7NLDEF7{html.unescape(fallback).encode().hex()}7NLFIELD"

    return WITH_FALLBACK.sub(token, text)


def restore(text: str) -> str:
    """Undo `protect`, giving every placeholder its canonical form (see `canonical`)."""
    def back(m: re.Match[str]) -> str:
        raw = m.group(2)
        fallback = None if raw is None else bytes.fromhex(raw).decode("utf-8", "replace")
        return canonical(m.group(1), fallback)

    return _PROTECTED.sub(back, text)


class Template:
    """A text with placeholders, split once so filling it is a join, not a regex per reader.

    `parts` are the static pieces, `fields` the field of each placeholder between them and
    `fallbacks` its fallback ("" without one), already unescaped for an HTML text."""

    __slots__ = ("parts", "fields", "fallbacks", "escape")

    def __init__(self, text: str, *, escape_html: bool = False):
        pieces = WITH_FALLBACK.split(text)
        self.parts: list[str] = pieces[0::3]
        self.fields: list[str] = pieces[1::3]
        self.fallbacks: list[str] = [html.unescape(f) if escape_html else f for f in
                                     (f or "" for f in pieces[2::3])]
        self.escape = escape_html

    def fill(self, values: Mapping[str, str]) -> str:
        """Splice `values` in; an empty or missing field takes its fallback (or ""). HTML templates escape values."""
        out = [self.parts[0]]
        esc = self.escape
        for field, fallback, tail in zip(self.fields, self.fallbacks, self.parts[1:], strict=True):
            v = values.get(field) or fallback or values.get(field + DEFAULT) or ""
            out.append(html.escape(v, quote=True) if esc else v)
            out.append(tail)
        return "".join(out)
