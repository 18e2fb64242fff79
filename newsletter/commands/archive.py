"""`newsletter archive`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config
from newsletter.editor.archive import build_archive
from newsletter.paths import display


@click.command("archive")
@click.option("--issues", "issues_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of issue files (default: issues/ beside newsletter.toml).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where to write the site (default: build/archive/).")
@click.option("--include-future", is_flag=True,
              help="Also publish issues dated after today (by default they wait for their date).")
@config_option
def archive_command(issues_dir: Path | None, out_dir: Path | None, include_future: bool,
                    config_path: Path | None) -> None:
    """Build a static web archive of every issue: an index by date, each issue's web
    version at the address its "view in browser" link uses, and an Atom feed.

    Upload the folder to the site's base_url. Nothing is written unless every issue builds.
    Issues dated after today are left out (and named) unless --include-future.

    \b
    Example:
        newsletter archive && python3 -m http.server -d build/archive
    """
    config = get_config(config_path)
    archive = build_archive(config, issues_dir, out_dir, include_future=include_future)
    entries = archive.entries
    where = out_dir or config.build_dir / "archive"
    click.echo(f"archive  {display(where)}/ ({len(entries)} issue{'s' * (len(entries) != 1)}: "
               "index.html, feed.xml, issues/<id>/index.html)")
    for e in entries:
        click.echo(f"         {e.date.isoformat()}  {e.title}")
    for b in archive.future:
        click.echo(f"skipped  {b.issue.date.isoformat()}  {b.slug}: dated in the future "
                   "(--include-future to publish it)")
