"""Where things came from: the built issue, its YAML with line numbers, the config and the templates,
so every finding can name the file (and line) an editor has to change."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.compose.build import Built
from newsletter.compose.render import default_theme
from newsletter.compose.source import Map, Seq, load_yaml
from newsletter.lint.links import is_example
from newsletter.paths import display


@dataclass
class Context:
    built: Built
    issue_file: str = ""
    issue_lines: list[str] = field(default_factory=list)
    issue_data: Any = None
    config_file: str = ""
    config_lines: list[str] = field(default_factory=list)
    templates: list[Path] = field(default_factory=list)
    strict_css: bool = False
    subscribers: Path | None = None  # the list being sent; None: the configured one

    def __post_init__(self) -> None:
        b = self.built
        self.issue_file = display(b.issue.path)
        self.issue_lines = read_lines(b.issue.path)
        try:
            self.issue_data = load_yaml(b.issue.path)
        except Exception:  # noqa: BLE001 - the issue built a moment ago; lines are a nicety
            self.issue_data = None
        self.config_file = display(b.config.path)
        self.config_lines = read_lines(b.config.path)
        folders = [b.config.templates_dir] if b.config.templates_dir.is_dir() else []
        folders.append(default_theme())
        self.templates = [p for folder in folders for p in sorted(folder.rglob("*.j2"))]

    @functools.cached_property
    def doc(self) -> Any:
        import lxml.html

        return lxml.html.document_fromstring(self.built.rendered.html)

    @functools.cached_property
    def demo(self) -> bool:
        """A project that sends from a reserved example domain cannot reach a real inbox: it is a demo."""
        return is_example(self.built.config.sender_address.rpartition("@")[2])

    def key_line(self, *path: str | int) -> int | None:
        """Line of a key in the issue YAML, e.g. key_line("subject")."""
        node = self.issue_data
        line = None
        for key in path:
            if isinstance(node, Map) and key in node:
                line = node.lines.get(str(key), line)
                node = node[key]
            elif isinstance(node, Seq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lines[key]
                node = node[key]
            else:
                return line
        return line

    def config_line(self, dotted: str) -> int | None:
        """Line of `table.key` in newsletter.toml (the schema keeps tables shallow)."""
        table, _, key = dotted.rpartition(".")
        current = ""
        for n, raw in enumerate(self.config_lines, 1):
            s = raw.strip()
            m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
            if m:
                current = m.group(1)
                continue
            if current == table and re.match(rf"^{re.escape(key)}\s*=", s):
                return n
        return None

    def locate(self, needle: str) -> tuple[str, int | None]:
        """Where a string in the email came from: the issue, the config, a template, or the email itself."""
        start = next((line for line, value in scalars(self.issue_data) if needle in value), None)
        if start is not None:
            # the value's key line; a block scalar's text goes on below it
            for n in range(start, len(self.issue_lines) + 1):
                if needle in self.issue_lines[n - 1] and not self.issue_lines[n - 1].lstrip().startswith("#"):
                    return self.issue_file, n
            return self.issue_file, start
        for n, text in enumerate(self.config_lines, 1):
            if needle in text and not text.lstrip().startswith("#"):
                return self.config_file, n
        hit = self.in_templates(re.compile(re.escape(needle)))
        return hit or (self.issue_file, None)

    def in_templates(self, pattern: re.Pattern[str]) -> tuple[str, int] | None:
        """First template line matching `pattern`: the project's overrides first, then the theme."""
        for path in self.templates:
            for n, text in enumerate(read_lines(path), 1):
                if pattern.search(text):
                    return display(path), n
        return None


def scalars(node: Any, line: int | None = None) -> Iterator[tuple[int, str]]:
    """(line of its key or item, text) for every string in a YAML tree from `load_yaml`."""
    if isinstance(node, Map):
        for key, value in node.items():
            yield from scalars(value, node.lines.get(key, line))
    elif isinstance(node, Seq):
        for i, value in enumerate(node):
            yield from scalars(value, node.lines[i] if i < len(node.lines) else line)
    elif isinstance(node, str) and line is not None:
        yield line, node


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
