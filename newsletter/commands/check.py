"""`newsletter check ISSUE...`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config, issue_files, issues_argument
from newsletter.compose.build import build_issue, main_path
from newsletter.errors import CheckFailed, NewsletterError
from newsletter.lint import check_online, lint
from newsletter.lint.findings import dedupe


@click.command("check")
@issues_argument
@click.option("--online", is_flag=True,
              help="Also ask every link and image whether it answers (HEAD, a few at a time).")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True,
              help="Seconds to wait for each link with --online.")
@click.option("--strict-css", is_flag=True,
              help="Also report CSS that only one major client (usually Outlook for Windows) ignores.")
@config_option
def check_command(issues: tuple[Path, ...], online: bool, timeout: float, strict_css: bool,
                  config_path: Path | None) -> None:
    """Lint ISSUES (files, or folders of .yaml files; editions, issues/<id>.<lang>.yaml, are
    checked with their issue) before sending: one line per finding, FILE[:LINE]: error|warning: message.

    The findings are the report (stdout); an issue that does not even build has its problems
    on stderr, like every command's errors, and so has the closing count. Exit status 1 if any
    issue has an error (or does not build). Nothing is written.
    `newsletter send` runs the same check first and refuses on errors unless --force.

    \b
    Example:
        newsletter check issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter check --online issues/
    """
    issues = issue_files(issues)
    config = get_config(config_path, near=issues[0])
    errors = warnings = 0
    for path in dict.fromkeys(main_path(p) for p in issues):  # an edition is checked with its issue
        try:
            built = build_issue(path, config, write=False)
        except NewsletterError as e:
            for line in e.lines():
                click.echo(line, err=True)
                errors += 1
            continue
        findings = []
        for b in built.all():  # the issue and each of its editions
            findings += lint(b, strict_css=strict_css)
            if online:
                findings += check_online(b, timeout=timeout)
        for f in dedupe(findings):  # the config's findings are the same for every edition
            click.echo(str(f))
            errors += f.is_error
            warnings += not f.is_error
    count = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    if errors:
        raise CheckFailed(count)
    click.echo(count, err=True)
