"""What every command shares: the --config option and finding newsletter.toml.

Errors are not handled here: commands let `NewsletterError` through to newsletter/cli.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter.config import Config, find_config, load_config
from newsletter.errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])


def issues_argument(f: F) -> F:
    """ISSUES...: issue files, or folders standing for the issues in them. Every command that
    takes several issues takes them this way (build, check, screenshot, send, status)."""
    return click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))(f)


def issue_files(paths: tuple[Path, ...] | list[Path]) -> tuple[Path, ...]:
    """A folder stands for the issues in it (*.yaml, *.yml, in name order, which is date order).
    An edition in it (`<id>.<lang>.yaml`) stands for its issue, which brings every edition along:
    a folder of one issue and its French edition is one issue to send, not two."""
    from newsletter.compose.build import main_path

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            found = list(dict.fromkeys(main_path(p) for p in found))
            out.extend(found or [path])  # an empty folder: reported as "is a directory"
        else:
            out.append(path)
    return tuple(out)


def config_option(f: F) -> F:
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
        help="newsletter.toml to use (default: found in this folder or a parent).",
    )(f)


def get_config(config_path: Path | None, near: Path | None = None) -> Config:
    """The --config file, else newsletter.toml in this folder or a parent, else near `near`."""
    if config_path is None and near is not None:
        try:
            config_path = find_config()
        except NewsletterError:
            config_path = find_config(near.resolve().parent)
    return load_config(config_path)


def took(seconds: float, messages: int) -> str:
    """How long a run took, and its rate when that means something: `12 ms`, `3.4 s (1,200 msg/s)`.
    Under a second a rate is noise (four messages in 15 ms are not "263 msg/s"), and "0.0 s" is
    not a duration."""
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    if seconds < 120:
        return f"{seconds:,.1f} s ({messages / seconds:,.0f} msg/s)"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s ({messages / seconds:,.0f} msg/s)"
