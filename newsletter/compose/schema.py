"""A small declarative validator for YAML/TOML input that reports FILE:LINE: field.path.

Why not jsonschema or pydantic: their errors name JSON pointers, not lines, and stop at
type shapes. Editors need `issues/x.yaml:14: blocks[2].image.alt: missing` and "did you
mean" for typos, and every problem in one run.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable
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


class Rule:
    """A field's check, plus what a JSON Schema says of it (`json_schema`), so the validator
    and the schema editors autocomplete from are one specification and cannot drift.

    `doc()` attaches a description and examples, shown by editors on hover and completion."""

    description: str = ""
    examples: tuple[Any, ...] = ()

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        raise NotImplementedError

    def doc(self, description: str, *examples: Any) -> Rule:
        """A copy of this rule with a description and examples for the JSON Schema."""
        twin = copy.copy(self)
        twin.description, twin.examples = description, examples
        return twin

    def shape(self) -> dict[str, Any]:
        """The JSON Schema keywords of the value's shape (no description)."""
        return {}

    def example(self) -> Any:
        """One value this rule accepts, for the schema's `examples` (None if it has none)."""
        return next((e for e in self.examples if e not in ([], {})), None)

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of what this rule accepts."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out.update(self.shape())
        example = self.example()
        if example is not None:
            out["examples"] = [_jsonable(example)]
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def json_schema_of(spec: Any) -> dict[str, Any]:
    """The JSON Schema of any spec: a Rule's own, or nothing known (accepts anything)."""
    return spec.json_schema() if isinstance(spec, Rule) else {}


class Obj(Rule):
    """A mapping with known keys; unknown keys are errors with a suggestion."""

    def __init__(self, fields: dict[str, Spec], required: tuple[str, ...] = (),
                 defaults: dict[str, Any] | None = None):
        self.fields = fields
        self.required = required
        self.defaults = defaults or {}

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

    def example(self) -> Any:
        own = super().example()
        if own is not None:
            return own
        built = {k: f.example() for k, f in self.fields.items() if k in self.required and isinstance(f, Rule)}
        return built if built and None not in built.values() else None

    def shape(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object",
                               "properties": {k: json_schema_of(s) for k, s in self.fields.items()},
                               "additionalProperties": False}
        if self.required:
            out["required"] = list(self.required)
        return out


class ListOf(Rule):
    """A list whose items all follow `item`; bounded, so a runaway file cannot make a huge email."""

    def __init__(self, item: Spec, *, min_items: int = 0, max_items: int = 1000):
        self.item, self.min_items, self.max_items = item, min_items, max_items

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, list):
            chk.add(line, path, f"must be a list, got {kind_of(value)}")
            return []
        if len(value) < self.min_items:
            chk.add(line, path, f"needs at least {self.min_items} item(s)")
        if len(value) > self.max_items:
            chk.add(line, path, f"has {len(value)} items; at most {self.max_items}")
            return []
        return [self.item(chk, v, line_of(value, i), _join(path, i)) for i, v in enumerate(value)]

    def example(self) -> Any:
        own = super().example()
        if own is not None:
            return own
        item = self.item.example() if isinstance(self.item, Rule) else None
        return [item] if item is not None else None

    def shape(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": json_schema_of(self.item), "maxItems": self.max_items}
        if self.min_items:
            out["minItems"] = self.min_items
        return out


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF and CR are allowed (where lines are)
#: The same rules as JSON Schema patterns: no control characters (single line: no line breaks
#: either), and at least one character that is not a space.
_ONE_LINE_RX = r"^\s*[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0a-\x1f\x7f]*\s*$"
_LINES_RX = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class Str(Rule):
    """Text (numbers are accepted as their text): trimmed, non-empty, bounded, optionally matching `pattern`."""

    def __init__(self, *, max_len: int = 10_000, single_line: bool = True, pattern: str | None = None,
                 hint: str = ""):
        self.max_len, self.single_line, self.pattern, self.hint = max_len, single_line, pattern, hint
        self.rx = re.compile(pattern) if pattern else None

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            chk.add(line, path, f"must be text, got {kind_of(value)}")
            return None
        text = str(value).strip() if self.single_line else str(value)
        if self.single_line and ("\n" in text or "\r" in text):
            chk.add(line, path, "must be a single line")
            return None
        if not text.strip():
            chk.add(line, path, "must not be empty")
            return None
        control = _CONTROL.search(text)
        if control:  # a NUL or other control character breaks MJML and mail headers alike
            chk.add(line, path, f"contains a control character (U+{ord(control.group()):04X})")
            return None
        if len(text) > self.max_len:
            chk.add(line, path, f"is {len(text):,} characters; at most {self.max_len:,}")
            return None
        if self.rx and not self.rx.fullmatch(text):
            chk.add(line, path, f"{text!r} is not valid{': ' + self.hint if self.hint else ''}")
            return None
        return text

    def shape(self) -> dict[str, Any]:
        base = _ONE_LINE_RX if self.single_line else _LINES_RX
        out: dict[str, Any] = {"type": ["string", "number"] if self.single_line else "string",
                               "maxLength": self.max_len}
        if self.pattern:
            out["allOf"] = [{"pattern": base}, {"pattern": f"^\\s*(?:{self.pattern})\\s*$"}]
        else:
            out["pattern"] = base
        return out


class Markdown(Str):
    """Multi-line Markdown text; it is made safe when rendered (see newsletter.compose.markdown)."""

    def __init__(self, *, max_len: int = 100_000):
        super().__init__(max_len=max_len, single_line=False)


class Url(Rule):
    """An absolute URL with one of `schemes`: never javascript:, data: or a relative path."""

    def __init__(self, *, schemes: tuple[str, ...] = ("https", "http", "mailto")):
        self.schemes = schemes

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, str):
            chk.add(line, path, f"must be a URL, got {kind_of(value)}")
            return None
        url = value.strip()
        problem = url_problem(url, self.schemes)
        if problem:
            chk.add(line, path, problem)
            return None
        return url

    def shape(self) -> dict[str, Any]:
        def anycase(word: str) -> str:
            return "".join(f"[{c.lower()}{c.upper()}]" for c in word)

        web = [s for s in self.schemes if s in ("http", "https")]
        s = "[sS]" if web == ["https"] else "[sS]?" if "https" in web else ""
        starts = [f"{anycase('http')}{s}://[^\\s/?#{{]+"] if web else []
        if "mailto" in self.schemes:
            starts.append(f"{anycase('mailto')}:[^\\s@]*@")
        field = r"\{\{\s*[A-Za-z_][A-Za-z0-9_]{0,63}\s*\}\}"  # a per-reader placeholder, see url_problem
        rest = rf"(?:[^\s{{]|{field}|\{{)*"
        return {"type": "string", "format": "uri-reference",
                "pattern": f"^\\s*(?:{field}|(?:{'|'.join(starts)}){rest})\\s*$"}


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


class Date(Rule):
    """A calendar date, YYYY-MM-DD (YAML's own dates and quoted strings alike)."""

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
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

    def shape(self) -> dict[str, Any]:
        return {"type": "string", "format": "date", "pattern": r"^\s*\d{4}-\d{2}-\d{2}\s*$"}


class Int(Rule):
    """A whole number in range; true/false are not numbers here, though Python thinks so."""

    def __init__(self, *, minimum: int = 0, maximum: int = 10_000):
        self.minimum, self.maximum = minimum, maximum

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            chk.add(line, path, f"must be a whole number, got {kind_of(value)}")
            return None
        if not self.minimum <= value <= self.maximum:
            chk.add(line, path, f"{value} is out of range ({self.minimum} to {self.maximum})")
            return None
        return value

    def shape(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


class Bool(Rule):
    """true or false, nothing YAML would merely coerce."""

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, bool):
            chk.add(line, path, f"must be true or false, got {kind_of(value)}")
            return None
        return value

    def shape(self) -> dict[str, Any]:
        return {"type": "boolean"}


class OneOf(Rule):
    """One of a fixed set of words, with a suggestion for a near miss."""

    def __init__(self, *choices: str):
        self.choices = choices

    def __call__(self, chk: Checker, value: Any, line: int | None, path: str) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            from difflib import get_close_matches  # a mistake's near miss; not on every build

            hint = get_close_matches(str(value), self.choices, n=1)
            msg = f"{value!r} is not one of: {', '.join(self.choices)}"
            if hint:
                msg += f"; did you mean '{hint[0]}'?"
            chk.add(line, path, msg)
            return None
        return value

    def shape(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


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
