"""`newsletter build ISSUE...`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config, issue_files, issues_argument
from newsletter.compose.build import build_many, summary
from newsletter.errors import InputError, Problem
from newsletter.paths import display


@click.command("build")
@issues_argument
@config_option
def build_command(issues: tuple[Path, ...], config_path: Path | None) -> None:
    """Build ISSUES (files, or folders of .yaml files) into build/<issue>/: email.html,
    email.txt and web.html.

    Every problem in every issue (and in newsletter.toml) is reported, one line each, as
    FILE:LINE: field: message, and then nothing at all is written (exit status 1).
    Per-reader fields such as {{ name }} and {{ unsubscribe_url }} stay as placeholders
    until `newsletter send`.

    \b
    Example:
        newsletter build issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter build issues/
    """
    issues = issue_files(issues)
    try:
        config = get_config(config_path, near=issues[0])
    except InputError as e:
        raise InputError(e.problems + _issue_problems(issues)) from None
    for i, built in enumerate(build_many(issues, config)):
        if i:
            click.echo()
        for line in summary(built):
            click.echo(line)


def _issue_problems(issues: tuple[Path, ...]) -> list[Problem]:
    """With the config broken nothing can be rendered, but the issues can still be checked."""
    from newsletter.compose.issue import load_issue

    problems: list[Problem] = []
    for path in issues:
        try:
            load_issue(path, display=display(path))
        except InputError as e:
            problems.extend(e.problems)
    return problems
