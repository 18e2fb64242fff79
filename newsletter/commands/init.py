"""`newsletter init DIR`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.editor.scaffold import init_project
from newsletter.paths import display


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default="My Organisation", show_default=True, help="Your organisation's name.")
@click.option("--sender", default="newsletter@example.org", show_default=True,
              help="The From address (its domain also sets the website and base URL defaults).")
@click.option("--base-url", help="Where the web archive and unsubscribe page live (default: https://news.<domain>).")
@click.option("--website", help="Your website, linked in the footer (default: https://<domain>/).")
@click.option("--address", "postal_address", help="Your postal address, printed in every footer (the law requires it).")
@click.option("--language", default="en", show_default=True,
              help="Language of the theme's fixed strings: a BCP 47 tag (built in: en, ar, be, de, es, fr, ru).")
def init_command(directory: Path, name: str, sender: str, base_url: str | None, website: str | None,
                 postal_address: str | None, language: str) -> None:
    """Create a new newsletter project in DIRECTORY: newsletter.toml (every key explained),
    a first issue, a templates/ folder for overrides and a subscribers.csv.

    It builds and dry-runs as it is; put in your real addresses before a real send.

    \b
    Example:
        newsletter init my-newsletter --name "Viasna" --sender news@spring96.org \\
            --address "Internatsionalnaya 33, Minsk, Belarus"
        cd my-newsletter && newsletter build issues/*.yaml && newsletter send issues/*.yaml --dry-run
    """
    files = init_project(directory, name=name, sender=sender, base_url=base_url, website=website,
                         language=language, **({"postal_address": postal_address} if postal_address else {}))
    click.echo(f"created  {display(directory)}/")
    for path in files:
        click.echo(f"         {display(path)}")
    issue = next(p for p in files if p.parent.name == "issues")
    click.echo("next     cd " + display(directory) + f" && newsletter preview issues/{issue.name}")
