"""MJML that MRML accepts silently: unknown tags and attributes, checked against npm mjml's component list."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.lint.context import Context
from newsletter.lint.findings import Finding
from newsletter.paths import display

DATA = Path(__file__).parents[1] / "data"


@functools.lru_cache(maxsize=1)
def mjml_spec() -> dict[str, Any]:
    """The MJML component list (see newsletter/data/README.md for its source)."""
    return json.loads((DATA / "mjml-components.json").read_text(encoding="utf-8"))


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TAG = re.compile(
    r"<(/?)(mjml|mj-[A-Za-z0-9-]*)((?:\s+[^\s=>/\"']+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*(/?)>")
_ATTR = re.compile(r"([^\s=>/\"']+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


@dataclass(frozen=True)
class MjmlProblem:
    """A problem in generated MJML: its line there, a pattern to find it in a template, a message."""

    line: int
    pattern: str
    message: str


def validate_mjml(mjml: str) -> list[MjmlProblem]:
    """Unknown tags, unknown attributes, misplaced children and bad enum/unit values."""
    spec = mjml_spec()
    comps: dict[str, Any] = spec["components"]
    children: dict[str, Any] = spec["children"]
    known_free = set(spec["componentless_tags"])
    global_attrs = set(spec["global_attributes"])
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), mjml)
    out: list[MjmlProblem] = []
    stack: list[str] = []
    raw: str | None = None  # inside an ending-tag component (mj-text...): content is HTML
    for m in _TAG.finditer(text):
        closing, tag, attrs, selfclose = m.group(1), m.group(2), m.group(3), m.group(4)
        line = text.count("\n", 0, m.start()) + 1
        if raw is not None:
            if closing and tag == raw:
                raw = None
                if stack:
                    stack.pop()
            continue
        if closing:
            if tag in stack:
                while stack and stack.pop() != tag:
                    pass
            continue
        parent = stack[-1] if stack else None
        names = [a.group(1) for a in _ATTR.finditer(attrs)]
        values = {a.group(1): (a.group(2) or "").strip("\"'") for a in _ATTR.finditer(attrs)}
        if tag == "mjml":
            allowed: set[str] | None = set(spec["root"]["attributes"])
        elif parent == "mj-attributes" and tag in ("mj-all", "mj-class"):
            allowed = None  # defaults for any attribute
        elif tag in comps:
            allowed = set(comps[tag]["attributes"]) | global_attrs
        elif tag in known_free:
            allowed = {"mj-selector": {"path"}, "mj-html-attribute": {"name"},
                       "mj-include": {"path", "type", "css-inline"}}.get(tag)
        else:
            hint = difflib.get_close_matches(tag, [*comps, *known_free], n=1)
            out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b",
                                   f"unknown MJML tag <{tag}>" + (f" (did you mean <{hint[0]}>?)" if hint else "")
                                   + ": MRML drops it without a word"))
            if not selfclose:
                stack.append(tag)
            continue
        if allowed is not None:
            for name in names:
                if name not in allowed:
                    hint = difflib.get_close_matches(name, sorted(allowed), n=1)
                    out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b[^>]*\s{re.escape(name)}\s*=",
                                           f"unknown attribute {name}=\"…\" on <{tag}>"
                                           + (f" (did you mean {hint[0]}?)" if hint else "")
                                           + ": MRML ignores it without a word"))
            types = comps.get(tag, {}).get("attributes", {})
            for name, value in values.items():
                problem = _bad_value(types.get(name), value)
                if problem:
                    out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b[^>]*\s{re.escape(name)}\s*=",
                                           f"<{tag} {name}=\"{value}\">: {problem}"))
        if parent is not None and parent in children and children[parent] != "*" and tag in comps \
                and tag not in children[parent]:
            out.append(MjmlProblem(line, rf"<{re.escape(tag)}\b",
                                   f"<{tag}> cannot be inside <{parent}> (it may be inside: "
                                   + ", ".join(k for k, v in children.items() if v != "*" and tag in v) + ")"))
        if not selfclose:
            stack.append(tag)
            if tag in comps and comps[tag]["ending_tag"]:
                raw = tag
    return out


def _bad_value(kind: str | None, value: str) -> str | None:
    """Check enum and unit types the way mjml-validator does; other types pass."""
    if not kind or "{{" in value:
        return None
    m = re.fullmatch(r"enum\((.*)\)", kind)
    if m:
        choices = m.group(1).split(",")
        return None if value in choices else f"must be one of {', '.join(choices)}"
    m = re.fullmatch(r"unit\(([^)]*)\)(?:\{(\d+),?(\d+)?\})?", kind)
    if m:
        units = m.group(1).split(",")  # an empty unit ("unit(px,%,)") allows a bare number
        low = int(m.group(2) or 1)
        high = int(m.group(3) or m.group(2) or 1)
        tokens = value.split()
        unit_rx = "|".join(re.escape(u) for u in units)
        ok = low <= len(tokens) <= high and all(re.fullmatch(rf"(\d*\.?\d+)({unit_rx})|0", t) for t in tokens)
        if not ok:
            count = f"{low}" if low == high else f"{low} to {high}"
            return f"must be {count} value(s) in {', '.join(u or 'a bare number' for u in units)}"
    return None


def _mjml(ctx: Context) -> Iterator[Finding]:
    for p in validate_mjml(ctx.built.rendered.mjml):
        hit = ctx.in_templates(re.compile(p.pattern))
        file, line = hit or (display(ctx.built.out_dir / "email.mjml"), p.line)
        yield Finding(file, line, "error", p.message, "mjml")



RULES = (_mjml,)
