"""`newsletter build ISSUE...`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.build import build_issue, summary
from newsletter.commands._common import config_option, get_config, reports_errors
from newsletter.errors import NewsletterError


@click.command("build")
@click.argument("issues", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@reports_errors
def build_command(issues: tuple[Path, ...], config_path: Path | None) -> None:
    """Build ISSUES into build/<issue>/email.html, email.txt and web.html.

    Every problem in an issue is reported as FILE:LINE: field: message and nothing is
    written for that issue.

    \b
    Example:
        newsletter build issues/2011-11-28-free-ales-bialiatski.yaml
    """
    config = get_config(config_path, near=issues[0])
    problems: list[str] = []
    for path in issues:
        try:
            built = build_issue(path, config)
        except NewsletterError as e:
            problems.extend(e.lines())
            continue
        for line in summary(built):
            click.echo(line)
    if problems:
        raise _Failed(problems)


class _Failed(NewsletterError):
    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self._lines = lines

    def lines(self) -> list[str]:
        return self._lines
