"""`newsletter archive`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config
from newsletter.editor.archive import ArchiveError, build_archive
from newsletter.paths import display


@click.command("archive")
@click.option("--list", "list_key", metavar="ID",
              help="Only this list's site ([lists.<id>]); the other lists' sites are left as they are.")
@click.option("--issues", "issues_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of issue files (default: issues/ beside newsletter.toml).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where to write (default: build/archive/; with several lists, one folder per list in it).")
@click.option("--include-future", is_flag=True,
              help="Also publish issues dated after today (by default they wait for their date).")
@config_option
def archive_command(list_key: str | None, issues_dir: Path | None, out_dir: Path | None, include_future: bool,
                    config_path: Path | None) -> None:
    """Build a static web archive of every issue: an index by date, each issue's web
    version at the address its "view in browser" link uses, and an Atom feed.

    One site per list: a project with one list writes it to build/archive/; with several
    lists ([lists.<id>] in newsletter.toml), each list gets build/archive/<list-id>/ with
    its own index (its name and organisation), feed.xml and issues/<id>/ pages, holding
    only its own issues. Upload each site to its list's base_url (else [site] base_url),
    where its emails' web links point. Nothing is written unless every issue builds.
    Issues dated after today are left out (and named) unless --include-future.

    \b
    Examples:
        newsletter archive && python3 -m http.server -d build/archive
        newsletter archive --list digest        # build/archive/digest/ only
    """
    config = get_config(config_path)
    if list_key is not None:
        from newsletter.lists import keys

        if list_key not in keys(config):
            raise ArchiveError(f"--list {list_key}: no such list; the lists are: {', '.join(keys(config))}")
    archive = build_archive(config, issues_dir, out_dir, list_key=list_key, include_future=include_future)
    several = len(config.lists) > 1
    for site in archive.sites:
        n = len(site.entries)
        count = f"{n} issue{'s' * (n != 1)}"
        if several:
            click.echo(f"archive  {display(site.out_dir)}/  {site.list_key} ({site.config.list_name}): {count}, "
                       f"publish at {site.url}")
        else:
            click.echo(f"archive  {display(site.out_dir)}/ ({count}: index.html, feed.xml, issues/<id>/index.html)")
        for e in site.entries:
            click.echo(f"         {e.date.isoformat()}  {e.title}")
    for b in archive.future:
        click.echo(f"skipped  {b.issue.date.isoformat()}  {b.slug}: dated in the future "
                   "(--include-future to publish it)")
    for url, keys_ in archive.clashes():
        click.echo(f"warning: lists {', '.join(keys_)} share one address, {url}: one site's index.html and "
                   "feed.xml would overwrite the other's there; give each list its own [lists.<id>] base_url "
                   "in newsletter.toml", err=True)
