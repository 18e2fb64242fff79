"""`newsletter subscribers import|export|count|list|show|forget`: the readers kept in the store."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.commands._common import config_option, get_config
from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store import Store

SHOW_ROWS = 20
CHUNK = 1000  # rows per transaction of an import


class SubscribersError(NewsletterError):
    """A subscribers command cannot do what was asked (unknown list, no key, refused)."""


def _list_config(config: Config, key: str | None) -> Config:
    """The Config of --list KEY; may be left out when the project has one list."""
    from newsletter.lists import keys

    ids = keys(config)
    if key is None:
        if len(ids) == 1:
            return config.for_list(ids[0])
        raise SubscribersError(f"--list: this project has {len(ids)} lists, name one: {', '.join(ids)}")
    if key not in ids:
        raise SubscribersError(f"--list {key}: no such list; the lists are: {', '.join(ids)}")
    return config.for_list(key)


def _store(config: Config) -> Store:
    from newsletter.store import open_store

    return open_store(config)


def _forget_keys(store: Store):  # noqa: ANN202 - SigningKeys | None
    """The keys to recognise forgotten people, if the store holds any (they need the real key)."""
    from newsletter.audience.secrets import MissingSecret, signing_keys

    if not store.has_forgotten():
        return None
    try:
        return signing_keys(allow_development=False)
    except MissingSecret:
        raise SubscribersError("the store holds people who asked to be forgotten: set NEWSLETTER_SECRET (the key "
                               "their hashes were made with) so they are recognised and not added again") from None


@click.group("subscribers")
def subscribers_command() -> None:
    """The readers kept in the store: lists, memberships, consent.

    \b
    Examples:
        newsletter subscribers import crm-export.csv --list campaigns
        newsletter subscribers count
        newsletter subscribers export --list digest digest.csv
        newsletter subscribers show ada@example.org --json
    """


@subscribers_command.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--list", "list_key", metavar="ID", help="The list ([lists.<id>]); optional with one list.")
@config_option
def import_command(csv_file: Path, list_key: str | None, config_path: Path | None) -> None:
    """Add and update the people of CSV_FILE on a list, as confirmed members.

    The CSV rules of `send`: an `email` column, optional `name` and `language`, any other
    column a merge field; BOM, `;` or tab separated. Invalid rows and duplicates are shown
    with their line and skipped (exit status 1 if any row was invalid: fix them and import
    the file again; rows already in change nothing). Read as a stream, a transaction per
    1,000 rows: memory stays flat at a million rows. Never re-subscribes anyone who
    unsubscribed from the list, is suppressed, or asked to be forgotten.
    """
    from newsletter.audience.privacy import forget_hashes
    from newsletter.audience.subscribers import ReadStats, Subscriber, read_subscribers
    from newsletter.paths import display
    from newsletter.store import ImportCounts, ImportRow

    config = _list_config(get_config(config_path), list_key)
    shown = display(csv_file.resolve())
    stats = ReadStats()
    counts = ImportCounts()
    store = _store(config)
    try:
        keys = _forget_keys(store)
        batch: list[ImportRow] = []
        for row in read_subscribers(csv_file, default_language=config.default_language, stats=stats, display=shown):
            if not isinstance(row, Subscriber):
                continue
            batch.append(ImportRow(row.email, row.name, row.language, row.fields,
                                   forget_hashes(keys, row.email) if keys is not None else ()))
            if len(batch) >= CHUNK:
                store.import_members(config.list_key, batch, source=shown, counts=counts)
                batch = []
        store.import_members(config.list_key, batch, source=shown, counts=counts)
        store.log_action("import-subscribers", "", f"{shown} -> {config.list_key}: {counts.added} added, "
                                                   f"{counts.updated} updated")
    finally:
        store.close()
    for r in stats.invalid[:SHOW_ROWS]:
        click.echo(f"{shown}:{r.line}: email: {r.email + ': ' if r.email else ''}{r.reason}", err=True)
    for r in stats.duplicates[:SHOW_ROWS]:
        click.echo(f"{shown}:{r.line}: email: {r.email}: {r.reason} (skipped)", err=True)
    click.echo(f"{shown} -> {config.list_key}: {stats.rows:,} rows; added {counts.added:,}, "
               f"updated {counts.updated:,}, unchanged {counts.unchanged:,}")
    left_out = [(counts.unsubscribed, "unsubscribed from the list"), (counts.suppressed, "suppressed"),
                (counts.forgotten, "asked to be forgotten"), (stats.invalid_count, "invalid"),
                (stats.duplicate_count, "duplicate rows")]
    if any(n for n, _ in left_out):
        click.echo("not added: " + ", ".join(f"{n:,} {why}" for n, why in left_out if n))
    if stats.invalid_count:
        raise SubscribersError(f"{shown}: {stats.invalid_count:,} invalid row(s) not imported: fix them and import "
                               "the file again (rows already imported change nothing)")


@subscribers_command.command("export")
@click.option("--list", "list_key", metavar="ID", help="The list ([lists.<id>]); optional with one list.")
@click.argument("out", required=False, type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@config_option
def export_command(list_key: str | None, out: Path | None, config_path: Path | None) -> None:
    """Write a list's confirmed members as CSV (email,name,language,<merge fields>) to OUT or stdout.

    The file imports back unchanged (`subscribers import`). Written atomically: a reader never
    sees half a file.
    """
    config = _list_config(get_config(config_path), list_key)
    store = _store(config)
    try:
        names: set[str] = set()
        for m in store.members(config.list_key):  # first pass: the merge fields' names, not the rows
            names.update(m.fields)
        columns = ["email", "name", "language", *sorted(names)]

        def write(f) -> int:  # noqa: ANN001
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            n = 0
            for m in store.members(config.list_key):
                w.writerow([m.email, m.name, m.language, *(m.fields.get(c, "") for c in columns[3:])])
                n += 1
            return n

        if out is None or str(out) == "-":
            n = write(sys.stdout)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                    n = write(f)
                os.replace(tmp, out)
            except OSError as e:
                Path(tmp).unlink(missing_ok=True)
                raise SubscribersError(f"{out}: cannot write: {e.strerror}") from None
    finally:
        store.close()
    click.echo(f"{n:,} confirmed members of {config.list_key} exported" + (f" to {out}" if out else ""), err=True)


@subscribers_command.command("count")
@click.option("--list", "list_key", metavar="ID", help="Only this list.")
@config_option
def count_command(list_key: str | None, config_path: Path | None) -> None:
    """Members per list: confirmed, pending, unsubscribed."""
    from newsletter.lists import keys

    project = get_config(config_path)
    ids = [_list_config(project, list_key).list_key] if list_key else keys(project)
    store = _store(project)
    try:
        counts = store.member_counts(list_key)
    finally:
        store.close()
    for key in [*ids, *sorted(set(counts) - set(ids))]:
        c = counts.get(key, {})
        unknown = "" if key in ids else "  (not in newsletter.toml)"
        click.echo(f"{key:<16} confirmed {c.get('confirmed', 0):>9,} · pending {c.get('pending', 0):>7,} · "
                   f"unsubscribed {c.get('unsubscribed', 0):>7,}{unknown}")


@subscribers_command.command("list")
@click.option("--list", "list_key", metavar="ID", help="The list ([lists.<id>]); optional with one list.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(["confirmed", "pending", "unsubscribed"]),
              help="Only these (default: confirmed).")
@config_option
def list_command(list_key: str | None, statuses: tuple[str, ...], config_path: Path | None) -> None:
    """Print a list's members: email, status, language, name (tab-separated)."""
    config = _list_config(get_config(config_path), list_key)
    store = _store(config)
    n = 0
    try:
        for m in store.members(config.list_key, statuses or ("confirmed",)):
            click.echo("\t".join((m.email, m.status, m.language, m.name)))
            n += 1
    finally:
        store.close()
    click.echo(f"{n:,} members", err=True)


@subscribers_command.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="As JSON (a subject access request's answer).")
@config_option
def show_command(email: str, as_json: bool, config_path: Path | None) -> None:
    """Everything stored about EMAIL: memberships, consent records, sends, suppression, actions."""
    config = get_config(config_path)
    store = _store(config)
    try:
        data = store.person(email)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    p = data["person"]
    click.echo(f"email        {data['email']}")
    if p is None and not any(data[k] for k in ("memberships", "sends", "actions")) and data["suppression"] is None:
        click.echo("nothing stored about this address")
        return
    if p is not None:
        click.echo(f"person       {p['address']} · name {p['name'] or '-'} · language {p['language'] or '-'}"
                   f" · since {p['created_at'][:19]}")
        for k, v in sorted(p["fields"].items()):
            click.echo(f"  {k}: {v}")
    for m in data["memberships"]:
        click.echo(f"list         {m['list']}: {m['status']} (via {m['source'] or '-'}, {m['updated_at'][:19]})")
    for c in data["consents"]:
        confirmed = f"confirmed {c['confirmed_at'][:19]}" if c["confirmed_at"] else "not confirmed"
        click.echo(f"consent      {c['list']}: {c['method']} {c['form_url']} {c['requested_at'][:19]}, {confirmed}"
                   + (f", wording {c['wording']}" if c["wording"] else "")
                   + (f", client {c['ip_hash'][:12]}… (keyed hash)" if c["ip_hash"] else ""))
    for s in data["sends"]:
        click.echo(f"sent         {s['issue']}: {s['status']} via {s['backend']} {s['updated_at'][:19]}"
                   + (f" ({s['delivery']})" if s["delivery"] else ""))
    if data["suppression"]:
        s = data["suppression"]
        click.echo(f"suppressed   {s['reason']} via {s['source']} {s['created_at'][:19]} {s['detail']}".rstrip())
    for a in data["actions"]:
        click.echo(f"action       {a['at'][:19]} {a['action']} {a['detail']}".rstrip())


@subscribers_command.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Really erase (required: it cannot be undone).")
@config_option
def forget_command(email: str, yes: bool, config_path: Path | None) -> None:
    """Erase everything stored about EMAIL (GDPR art. 17); keep only a keyed hash.

    The hash (HMAC under NEWSLETTER_SECRET) lets no later import or signup form mail them
    without a new confirmation. The action is logged without the address.
    """
    from newsletter.audience.privacy import forget_hashes
    from newsletter.audience.secrets import MissingSecret, signing_keys

    if not yes:
        raise SubscribersError(f"forget {email}: erases everything about this person and cannot be undone; "
                               "add --yes")
    try:
        keys = signing_keys(allow_development=False)
    except MissingSecret:
        raise SubscribersError("forget needs NEWSLETTER_SECRET: the keyed hash that keeps them from being "
                               "added again is made with it") from None
    config = get_config(config_path)
    store = _store(config)
    try:
        n = store.forget(email, forget_hashes(keys, email))
    finally:
        store.close()
    click.echo(f"forgotten: {n:,} rows erased; a keyed hash is kept so no import or form adds them again "
               "without a new confirmation")
