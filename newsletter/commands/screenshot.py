"""`newsletter screenshot ISSUE...`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config, issue_files, issues_argument
from newsletter.compose.build import build_issue
from newsletter.editor.screenshot import take_screenshots
from newsletter.paths import display


@click.command("screenshot")
@issues_argument
@click.option("--chromium", type=click.Path(dir_okay=False),
              help="Chromium to drive (default: $NEWSLETTER_CHROMIUM, else /usr/bin/chromium).")
@config_option
def screenshot_command(issues: tuple[Path, ...], chromium: str | None, config_path: Path | None) -> None:
    """PNG screenshots of ISSUES: build/<issue>/shots/{desktop,mobile,desktop-dark,mobile-dark}.png,
    and of each edition in build/<issue>/<lang>/shots/.

    600 px and 375 px wide, full page, light and dark (prefers-color-scheme), from headless
    Chromium. Nothing is fetched: images are grey placeholders of the same size.

    \b
    Example:
        newsletter screenshot issues/2011-11-28-free-ales-bialiatski.yaml
    """
    issues = issue_files(issues)
    config = get_config(config_path, near=issues[0])
    for path in issues:
        built = build_issue(path, config, write=False)
        for png in take_screenshots(built, chromium=chromium):
            click.echo(display(png))
