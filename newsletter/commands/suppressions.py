"""`newsletter unsubscribe`, `newsletter resubscribe` and `newsletter suppressions list|export|import`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.commands._common import config_option, get_config
from newsletter.errors import InputError, NewsletterError, Problem

if TYPE_CHECKING:
    from newsletter.store import Store


def _connect(config_path: Path | None) -> Store:
    from newsletter.store import open_store

    return open_store(get_config(config_path))


def _addresses(emails: tuple[str, ...]) -> list[str]:
    """Validated, normalised address keys; every bad one reported, none applied."""
    from newsletter.audience.subscribers import normalise_address
    from newsletter.store import email_key

    keys: list[str] = []
    problems: list[Problem] = []
    for i, raw in enumerate(emails, 1):
        try:
            keys.append(email_key(normalise_address(raw)))
        except ValueError as e:
            problems.append(Problem("command line", None, f"address {i}", f"not a valid address: {raw!r}: {e}"))
    if problems:
        raise InputError(problems)
    return keys


@click.command("unsubscribe")
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", default="", help="Why, in your words; kept with the suppression and in the log.")
@config_option
def unsubscribe_command(emails: tuple[str, ...], reason: str, config_path: Path | None) -> None:
    """Suppress EMAILS: they are never mailed again, by any send.

    \b
    Example:
        newsletter unsubscribe someone@example.org --reason "asked by phone"
    """
    keys = _addresses(emails)
    store = _connect(config_path)
    try:
        new = store.suppress_many([(k, "manual", "cli", " ".join(reason.split())) for k in keys])
    finally:
        store.close()
    click.echo(f"{new} suppressed, {len(set(keys)) - new} already suppressed")


@click.command("resubscribe")
@click.argument("email")
@click.option("--reason", default="", help="Why, in your words; kept in the log.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@config_option
def resubscribe_command(email: str, reason: str, yes: bool, config_path: Path | None) -> None:
    """Lift EMAIL's suppression, so future sends include it again (explicit and logged).

    Shows why the address was suppressed and asks first: mailing an address that bounced
    or complained harms delivery for every reader.

    \b
    Example:
        newsletter resubscribe someone@example.org --reason "asked by email on 2024-03-01"
    """
    (key,) = _addresses((email,))
    store = _connect(config_path)
    try:
        row = store.suppression(key)
        if row is None:
            click.echo(f"{key} is not suppressed; nothing to do")
            return
        why = (f"{row.reason} via {row.source or '?'} on {row.created_at[:10]}"
               + (f" ({row.detail})" if row.detail else ""))
        if not yes:
            if not sys.stdin.isatty():
                raise _Refused(f"{key} is suppressed: {why}; not resubscribed: pass --yes to confirm")
            if not click.confirm(f"{key} is suppressed: {why}. Resubscribe it?", default=False):
                raise _Refused("not resubscribed")
        store.resubscribe(key, source="cli", detail=" ".join(reason.split()))
    finally:
        store.close()
    click.echo(f"{key} resubscribed (was {why})")


class _Refused(NewsletterError):
    pass


@click.group("suppressions")
def suppressions_command() -> None:
    """The suppression list: addresses never mailed again (unsubscribed, bounced, complained...).

    \b
    Example:
        newsletter suppressions list
        newsletter suppressions export suppressions.csv
        newsletter suppressions import sendgrid-bounces.csv --reason bounced
        newsletter suppressions sync
    """


@suppressions_command.command("list")
@click.option("--reason", "only", type=click.Choice(["unsubscribed", "bounced", "complained", "manual", "dropped"]),
              help="Only this kind.")
@config_option
def list_command(only: str | None, config_path: Path | None) -> None:
    """Print the list: email, reason, source, date, detail (tab-separated).

    \b
    Example:
        newsletter suppressions list --reason bounced
    """
    store = _connect(config_path)
    n = 0
    try:
        for s in store.all_suppressions():
            if only and s.reason != only:
                continue
            click.echo("\t".join((s.email, s.reason, s.source, s.created_at[:19], s.detail)))
            n += 1
    finally:
        store.close()
    click.echo(f"{n} suppressed", err=True)


@suppressions_command.command("export")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@config_option
def export_command(out: Path, config_path: Path | None) -> None:
    """Write the list to OUT as CSV (email,reason,source,detail,created_at); `-` for stdout.

    \b
    Example:
        newsletter suppressions export suppressions.csv
    """
    from newsletter.audience.suppressions_csv import export_csv, write_csv

    store = _connect(config_path)
    try:
        if str(out) == "-":
            n = write_csv(store.all_suppressions(), sys.stdout)
        else:
            try:
                n = export_csv(store, out)
            except OSError as e:
                raise _Refused(f"{out}: cannot write: {e.strerror}") from None
    finally:
        store.close()
    click.echo(f"{n} suppressions exported" + ("" if str(out) == "-" else f" to {out}"), err=True)


@suppressions_command.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--reason", type=click.Choice(["unsubscribed", "bounced", "complained", "manual", "dropped"]),
              help="Kind for every row (an ESP's own reason text is kept as the detail).")
@click.option("--dry-run", is_flag=True, help="Check the file and count, change nothing.")
@config_option
def import_command(csv_file: Path, reason: str | None, dry_run: bool, config_path: Path | None) -> None:
    """Add every address in CSV_FILE (needs an `email` column) to the list.

    All rows are checked first: if any is bad, each problem is shown with its line and
    nothing is imported. Addresses already suppressed keep their original reason.

    \b
    Example:
        newsletter suppressions import sendgrid-bounces.csv --reason bounced
    """
    from newsletter.audience.suppressions_csv import apply_import, read_import

    plan = read_import(csv_file, reason=reason, display=str(csv_file))
    if dry_run:
        click.echo(f"{len(plan.rows)} addresses to import ({plan.duplicates} duplicate rows); nothing changed")
        return
    store = _connect(config_path)
    try:
        new = apply_import(store, plan)
    finally:
        store.close()
    click.echo(f"{new} suppressed, {len(plan.rows) - new} already suppressed, {plan.duplicates} duplicate rows")


@suppressions_command.command("sync")
@config_option
def sync_command(config_path: Path | None) -> None:
    """Pull SendGrid's bounces, blocks, spam reports, invalid emails and global unsubscribes.

    Only what is new since the last sync is read. `newsletter send` via SendGrid does this
    first by itself ([sendgrid] sync_suppressions = true, the default), so a send never
    mails someone SendGrid already knows to be gone, even when the webhook was down.
    The API key comes from SENDGRID_API_KEY.

    \b
    Example:
        newsletter suppressions sync
    """
    from newsletter.audience.sendgrid_sync import SendGridReader, sync
    from newsletter.store import open_store

    config = get_config(config_path)
    reader = SendGridReader(config)
    store = open_store(config)
    try:
        report = sync(store, reader)
    finally:
        store.close()
    click.echo(report.line())
