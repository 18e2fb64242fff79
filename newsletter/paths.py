"""How a path is shown to the user: the way they would type it."""

from __future__ import annotations

from pathlib import Path


def display(path: Path | str) -> str:
    """A path relative to the current folder when inside it, else as given: error lines and
    summaries name files the way the editor would type them."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)
