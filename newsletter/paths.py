"""How a path is shown to the user: the way they would type it."""

from __future__ import annotations

import secrets
from pathlib import Path


def display(path: Path | str) -> str:
    """A path relative to the current folder when inside it, else as given: error lines and
    summaries name files the way the editor would type them."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def staging_dir(parent: Path, prefix: str) -> Path:
    """A new, uniquely named folder in `parent` to fill and then rename into place.

    Unlike tempfile.mkdtemp (always mode 0700, since it is meant for private scratch space)
    it gets the mode any folder gets here (0777 less the umask): what it becomes is the
    build, the archive or a project, which others (a web server, a colleague) must read."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for a staging folder in {parent}")
