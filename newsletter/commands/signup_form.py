"""`newsletter signup-form LIST`: the HTML form to paste into the organisation's web site."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config


@click.command("signup-form")
@click.argument("list_key", metavar="LIST")
@config_option
def signup_form_command(list_key: str, config_path: Path | None) -> None:
    """Print an HTML <form> for LIST's signup: a plain POST to `newsletter serve`'s
    /subscribe/LIST (no JavaScript), with a hidden honeypot field for bots.

    \b
    Example:
        newsletter signup-form campaigns > form.html
    """
    from newsletter.audience.signup import signup_form
    from newsletter.commands.subscribers import _list_config

    click.echo(signup_form(_list_config(get_config(config_path), list_key)), nl=False)
