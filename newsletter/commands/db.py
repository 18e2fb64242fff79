"""`newsletter db migrate` and `newsletter db copy SRC DST`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config


@click.group("db")
def db_command() -> None:
    """The state database: suppressions, the send ledger, the action log.

    `database` in newsletter.toml is a path (SQLite, the default .newsletter/state.db) or a
    postgresql:// URL; the environment variable NEWSLETTER_DATABASE overrides it.

    \b
    Examples:
        newsletter db migrate
        newsletter db copy .newsletter/state.db postgresql://news@db.example.org/news
    """


@db_command.command("migrate")
@config_option
def migrate_command(config_path: Path | None) -> None:
    """Bring the database's schema up to date (every command also does this on first use).

    \b
    Example:
        newsletter db migrate
    """
    from newsletter.store import open_store

    store = open_store(get_config(config_path), migrate=False)
    try:
        was = store.migrate()
        now = store.schema_version()
    finally:
        store.close()
    click.echo(f"{store.name}: schema version {now}" + (f" (was {was})" if was != now else ", up to date"))


@db_command.command("copy")
@click.argument("src")
@click.argument("dst")
def copy_command(src: str, dst: str) -> None:
    """Copy all state from SRC to DST (each a SQLite path or a postgresql:// URL).

    DST must be empty. Each table is copied in one transaction and its rows counted on
    both sides. Afterwards, point `database` (or NEWSLETTER_DATABASE) at DST.

    \b
    Example:
        newsletter db copy .newsletter/state.db postgresql://news@db.example.org/news
    """
    from newsletter.store import DatabaseError, open_store, target_of
    from newsletter.store.copy import copy_store

    source = target_of(src)
    if source.path is not None and not source.path.exists():
        raise DatabaseError(f"{source.shown}: no such database")
    a = open_store(source, readonly=True)
    try:
        b = open_store(target_of(dst))
        try:
            copied = copy_store(a, b, progress=lambda c: click.echo(f"{c.table:<13}{c.rows:>12,} rows"))
        finally:
            b.close()
    finally:
        a.close()
    click.echo(f"copied {sum(c.rows for c in copied):,} rows from {a.name} to {b.name}; counts verified")
