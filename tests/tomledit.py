"""Editing a project's newsletter.toml in tests: by key, never by the text around it.

A test that wants `[smtp] port = 2525` says so, `edit_toml(path, {"smtp.port": 2525})`,
instead of replacing `port = 25` or a comment in the example file: the example's wording,
comments and layout may change without breaking the tests. tomlkit keeps every other line,
comment and blank as it was, so a value set on an existing key stays on its line (tests that
expect an error on a line can still find it there) and `[table]`s a test adds go at the end.

    edit_toml(root / "newsletter.toml", {"send.batch_size": 20, "smtp.username": "news",
                                         "web": {"db_wait_seconds": 1}, "organisation.website": DELETE})
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import tomlkit

#: The value that removes a key (or a whole table): `{"organisation.website": DELETE}`.
DELETE: Any = object()


def edit_toml(path: Path, changes: Mapping[str, object]) -> None:
    """Set each dotted key of `changes` to its value, or remove it when the value is DELETE.

    A missing table on the way is created (at the end of the file); a dict value writes a
    table. Removing a key that is not there raises KeyError: the test's premise is wrong."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *tables, key = dotted.split(".")
        container: Any = doc
        for name in tables:
            if name not in container:
                if value is DELETE:
                    raise KeyError(f"{dotted}: no [{name}] in {path}")
                container[name] = tomlkit.table()
            container = container[name]
            if not isinstance(container, MutableMapping):
                raise TypeError(f"{dotted}: {name} is not a table in {path}")
        if value is DELETE:
            if key not in container:
                raise KeyError(f"{dotted}: not set in {path}")
            del container[key]
        else:
            container[key] = value
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def read_toml(path: Path) -> dict[str, Any]:
    """The file's values as plain Python (dicts, lists, str, int ...): what to copy elsewhere."""
    return tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()


def line_of(path: Path, start: str, *, after: str | None = None) -> int:
    """The number (from 1) of the file's first line that starts with `start`, past the first line
    that starts with `after` when given: where a test expects an error about a key it set."""
    lines = path.read_text(encoding="utf-8").splitlines()
    first = 0 if after is None else next(i for i, line in enumerate(lines) if line.startswith(after)) + 1
    return next(i for i, line in enumerate(lines[first:], first + 1) if line.startswith(start))
