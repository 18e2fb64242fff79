"""What every command shares: the --config option and turning library errors into exit 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsletter.config import Config, find_config, load_config
from newsletter.errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])


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


def reports_errors(f: F) -> F:
    """Run a command body; a NewsletterError prints one line per problem and exits 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except NewsletterError as e:
            for line in e.lines():
                click.echo(line, err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
