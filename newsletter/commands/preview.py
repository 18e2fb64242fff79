"""`newsletter preview ISSUE`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config
from newsletter.editor.preview import serve


@click.command("preview")
@click.argument("issue", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--as", "as_email", metavar="EMAIL",
              help="Fill in the fields of this reader of the issue's list: in its CSV source or a confirmed "
                   "member in the store (default: the list's first reader).")
@config_option
def preview_command(issue: Path, port: int, as_email: str | None, config_path: Path | None) -> None:
    """Preview ISSUE at http://127.0.0.1:8000/: desktop, phone and text views, subject and
    preheader as an inbox lists them, one reader of the issue's list filled in (with that
    list's sender).

    The page rebuilds and refreshes itself when the issue, newsletter.toml, the subscriber
    file or a template changes. A failed build shows its errors in the page and here; the
    server keeps running. Ctrl-C stops it.

    \b
    Example:
        newsletter preview issues/2011-11-28-free-ales-bialiatski.yaml --as ada@example.org
    """
    config = get_config(config_path, near=issue)
    serve(issue, config.path, port=port, recipient=as_email)
