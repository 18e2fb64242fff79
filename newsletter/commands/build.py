"""`newsletter build ISSUE...`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.build import build_many, summary
from newsletter.commands._common import config_option, get_config, reports_errors


@click.command("build")
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@reports_errors
def build_command(issues: tuple[Path, ...], config_path: Path | None) -> None:
    """Build ISSUES into build/<issue>/email.html, email.txt and web.html.

    Every problem in every issue is reported, one line each, as FILE:LINE: field: message,
    and then nothing at all is written (exit status 1). Per-reader fields such as
    {{ name }} and {{ unsubscribe_url }} stay as placeholders until `newsletter send`.

    \b
    Example:
        newsletter build issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter build issues/*.yaml
    """
    config = get_config(config_path, near=issues[0])
    for i, built in enumerate(build_many(issues, config)):
        if i:
            click.echo()
        for line in summary(built):
            click.echo(line)
