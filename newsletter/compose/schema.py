"""A small declarative validator for YAML/TOML input that reports FILE:LINE: field.path.

Why not jsonschema or pydantic: their errors name JSON pointers, not lines, and stop at
type shapes. Editors need `issues/x.yaml:14: blocks[2].image.alt: missing` and "did you
mean" for typos, and every problem in one run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from newsletter.compose.source import Map, Seq, line_of
from newsletter.deliver.placeholders import PLACEHOLDER
from newsletter.errors import Problem

MISSING = object()


class Checker:
    """Collects problems for one file."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line: int | None, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, path, message))


Spec = Callable[[Checker, Any, int | None, str], Any]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class Obj:
    """A mapping with known keys; unknown keys are errors with a suggestion."""

    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, dict):
            chk.add(line, path or "(top)", f"must be a mapping of keys, got {kind_of(value)}")
            return None
        out: dict[str, Any] = {}
        for key in value:
            if key not in self.fields:
                from difflib import get_close_matches  # a mistake's near miss; not on every build

                hint = get_close_matches(str(key), list(self.fields), n=1, cutoff=0.6)
                msg = f"unknown key '{key}'"
                msg += f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(self.fields)}"
                chk.add(line_of(value, key), _join(path, key), msg)
        for key, spec in self.fields.items():
            if key not in value or value[key] is None:
                if key in self.required:
                    chk.add(line_of(value), _join(path, key), "missing (required)")
                out[key] = self.defaults.get(key)
                continue
            out[key] = spec(chk, value[key], line_of(value, key), _join(path, key))
        return out


def ListOf(item: Spec, *, min_items: int = 0, max_items: int = 1000) -> Spec:  # noqa: N802
    """A list whose items all follow `item`; bounded, so a runaway file cannot make a huge email."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, list):
            chk.add(line, path, f"must be a list, got {kind_of(value)}")
            return []
        if len(value) < min_items:
            chk.add(line, path, f"needs at least {min_items} item(s)")
        if len(value) > max_items:
            chk.add(line, path, f"has {len(value)} items; at most {max_items}")
            return []
        return [item(chk, v, line_of(value, i), _join(path, i)) for i, v in enumerate(value)]

    return check


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF and CR are allowed (where lines are)


def Str(*, max_len: int = 10_000, single_line: bool = True, pattern: str | None = None,  # noqa: N802
        hint: str = "") -> Spec:
    """Text (numbers are accepted as their text): trimmed, non-empty, bounded, optionally matching `pattern`."""
    rx = re.compile(pattern) if pattern else None

    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            chk.add(line, path, f"must be text, got {kind_of(value)}")
            return None
        text = str(value).strip() if single_line else str(value)
        if single_line and ("\n" in text or "\r" in text):
            chk.add(line, path, "must be a single line")
            return None
        if not text.strip():
            chk.add(line, path, "must not be empty")
            return None
        control = _CONTROL.search(text)
        if control:  # a NUL or other control character breaks MJML and mail headers alike
            chk.add(line, path, f"contains a control character (U+{ord(control.group()):04X})")
            return None
        if len(text) > max_len:
            chk.add(line, path, f"is {len(text):,} characters; at most {max_len:,}")
            return None
        if rx and not rx.fullmatch(text):
            chk.add(line, path, f"{text!r} is not valid{': ' + hint if hint else ''}")
            return None
        return text

    return check


def Markdown(*, max_len: int = 100_000) -> Spec:  # noqa: N802
    """Multi-line Markdown text; it is made safe when rendered (see newsletter.compose.markdown)."""
    return Str(max_len=max_len, single_line=False)


def Url(*, schemes: tuple[str, ...] = ("https", "http", "mailto")) -> Spec:  # noqa: N802
    """An absolute URL with one of `schemes`: never javascript:, data: or a relative path."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, str):
            chk.add(line, path, f"must be a URL, got {kind_of(value)}")
            return None
        url = value.strip()
        problem = url_problem(url, schemes)
        if problem:
            chk.add(line, path, problem)
            return None
        return url

    return check


def url_problem(url: str, schemes: tuple[str, ...] = ("https", "http", "mailto")) -> str | None:
    """Why `url` is not an absolute URL fit for an email, or None if it is.

    Per-reader placeholders (`https://example.org/forward?from={{ email }}`) are allowed."""
    if PLACEHOLDER.fullmatch(url):  # a whole URL filled in per reader: {{ unsubscribe_url }}
        return None
    shown = url
    url = PLACEHOLDER.sub("x", url)
    if not url or any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        return f"{shown!r} is not a URL (empty or contains spaces)"
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return f"{shown!r} is not a URL: {e}"
    if not parts.scheme:
        return f"{shown!r} is not an absolute URL (needs https://...)"
    if parts.scheme.lower() not in schemes:
        return f"{shown!r}: scheme '{parts.scheme}' not allowed (use {' or '.join(schemes)})"
    if parts.scheme.lower() in ("http", "https") and not parts.netloc:
        return f"{shown!r} has no host"
    if parts.scheme.lower() == "mailto" and "@" not in parts.path:
        return f"{shown!r} is not a mailto: address"
    return None


def Date() -> Spec:  # noqa: N802
    """A calendar date, YYYY-MM-DD (YAML's own dates and quoted strings alike)."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        chk.add(line, path, f"{value!r} is not a date (write YYYY-MM-DD)")
        return None

    return check


def Int(*, minimum: int = 0, maximum: int = 10_000) -> Spec:  # noqa: N802
    """A whole number in range; true/false are not numbers here, though Python thinks so."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            chk.add(line, path, f"must be a whole number, got {kind_of(value)}")
            return None
        if not minimum <= value <= maximum:
            chk.add(line, path, f"{value} is out of range ({minimum} to {maximum})")
            return None
        return value

    return check


def Bool() -> Spec:  # noqa: N802
    """true or false, nothing YAML would merely coerce."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, bool):
            chk.add(line, path, f"must be true or false, got {kind_of(value)}")
            return None
        return value

    return check


def OneOf(*choices: str) -> Spec:  # noqa: N802
    """One of a fixed set of words, with a suggestion for a near miss."""
    def check(chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if value not in choices:
            from difflib import get_close_matches  # a mistake's near miss; not on every build

            hint = get_close_matches(str(value), choices, n=1)
            msg = f"{value!r} is not one of: {', '.join(choices)}"
            if hint:
                msg += f"; did you mean '{hint[0]}'?"
            chk.add(line, path, msg)
            return None
        return value

    return check


def kind_of(value: Any) -> str:
    """What a value is, in the words of someone who wrote YAML rather than Python."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Map | dict):
        return "a mapping"
    if isinstance(value, Seq | list):
        return "a list"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, dt.date):
        return f"a date ({value})"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    return f"{type(value).__name__}"
