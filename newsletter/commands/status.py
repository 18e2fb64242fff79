"""`newsletter status ISSUE`"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config, issue_files
from newsletter.config import Config
from newsletter.errors import NewsletterError

SHOW = 20


class StatusError(NewsletterError):
    """A request `status` cannot answer as asked."""


@click.command("status")
@click.argument("issues", nargs=-1, type=click.Path(path_type=Path))
@click.option("--subscribers", "subscribers", type=click.Path(path_type=Path, dir_okay=False),
              help="Subscriber CSV to count what is still pending (default: from newsletter.toml).")
@click.option("--uncertain", "list_uncertain", is_flag=True,
              help="List every uncertain reader's address, one a line (nothing else on stdout).")
@config_option
def status_command(issues: tuple[Path, ...], subscribers: Path | None, list_uncertain: bool,
                   config_path: Path | None) -> None:
    """Show how far the send of ISSUE has got: sent, pending, failed, uncertain.

    With no issue, every issue in issues/ beside newsletter.toml; with a folder or several
    issues, those: one line each (sent, failed, uncertain; not sent).

    Pending is counted against the subscriber list as it is now. Uncertain readers (a
    hand-off was interrupted: they may or may not have the message) are listed; resend
    them with `newsletter send ISSUE --resend-uncertain`.

    \b
    Examples:
        newsletter status issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter status
        newsletter status issues/2011-11-28-free-ales-bialiatski.yaml --uncertain > uncertain.txt
    """
    if list_uncertain and (len(issues) != 1 or issues[0].is_dir()):
        raise StatusError(f"--uncertain lists the readers of one issue: name one issue file "
                          f"(got {len(issues) or 'none'}), e.g. `newsletter status issues/ISSUE.yaml --uncertain`")
    if len(issues) != 1 or issues[0].is_dir():
        from newsletter.commands._overview import print_overview

        config = get_config(config_path, near=issues[0] if issues else None)
        print_overview(issue_files(issues or [config.root / "issues"]), config)
        return
    issue = issues[0]
    from newsletter.compose.build import Built, load_with_editions
    from newsletter.deliver.send import edition_counts, make_plan
    from newsletter.store import open_store, store_exists
    from newsletter.store.ledger import Ledger

    config = get_config(config_path, near=issue)
    if list_uncertain:
        _list_uncertain(issue, config)
        return
    # status needs the issue's slug, subject and language, not its HTML: validate, don't render
    # (rendering, premailer above all, was most of the time of `status` on a big ledger)
    loaded, editions = load_with_editions(issue)
    config = config.for_issue(loaded)  # the issue's list: its CSV source and members (its editions' too)
    out_dir = config.build_dir / loaded.slug
    built = Built(issue=loaded, config=config, rendered=None, out_dir=out_dir,  # type: ignore[arg-type]
                  editions=tuple(Built(issue=e, config=config, rendered=None, out_dir=out_dir / (e.edition or ""),  # type: ignore[arg-type]
                                       main=loaded) for e in editions))
    from newsletter.audience.members import csv_source

    csv_path = subscribers.resolve() if subscribers is not None else csv_source(config)
    if csv_path is not None and subscribers is None and not csv_path.exists():
        csv_path = None  # the list's file is not on this machine: count the store's members alone
    store = open_store(config, readonly=True) if store_exists(config) else None
    try:
        counts = Ledger(store, built.slug).counts() if store is not None else {}
        from_store = subscribers is None and store is not None
        plan = make_plan(built, csv_path, store, display=str(csv_path), from_store=from_store) \
            if (csv_path is not None and csv_path.exists()) or from_store else None
        click.echo(f"issue       {built.slug}: {built.issue.subject}")
        uncertain = counts.get("uncertain", 0) + counts.get("sending", 0)
        parts = [f"sent {counts.get('sent', 0):,}"]
        if plan is not None:
            parts.append(f"pending {plan.to_send - plan.retrying_failed:,}")
        parts += [f"failed {counts.get('failed', 0):,}", f"uncertain {uncertain:,}"]
        click.echo("  " + " · ".join(parts))
        if editions and plan is not None:  # the ledger keeps one row per reader: the list says which edition
            for lang, c in edition_counts(built, csv_path, store, from_store=from_store).items():
                click.echo(f"  edition {lang:<6} sent {c['sent']:,} · pending {c['pending']:,} · "
                           f"failed {c['failed']:,} · uncertain {c['uncertain']:,}")
        if store is not None:
            delivery = store.delivery_counts(built.slug)
            if delivery:  # what came back afterwards: webhook events, `newsletter bounces`
                click.echo("  delivery: " + " · ".join(f"{k} {n:,}" for k, n in sorted(delivery.items())))
        if plan is not None and plan.suppressed:
            click.echo(f"  ({plan.suppressed:,} on the list are suppressed and will not be sent to)")
        if counts.get("failed"):
            click.echo("  (a rerun of `newsletter send` tries the failed ones again)")
        if counts.get("sending"):
            click.echo(f"  {counts['sending']:,} are being handed off now, or a send was killed mid-hand-off"
                       " (they become uncertain when a send starts)")
        if store is not None:
            ledger = Ledger(store, built.slug)
            for status in ("uncertain", "failed"):
                rows = ledger.rows(status, limit=SHOW)
                for row in rows:
                    click.echo(f"{status} {row.email}: {row.last_error} (attempts {row.attempts}, {row.updated_at})")
                if counts.get(status, 0) > SHOW:
                    click.echo(f"… and {counts[status] - SHOW:,} more {status}")
        if not counts.get("sent") and store is None:
            click.echo("  nothing has been sent yet")
    finally:
        if store is not None:
            store.close()


def _list_uncertain(issue: Path, config: Config) -> None:
    """Every reader whose hand-off has an unknown outcome (`uncertain`, or `sending` left by a
    killed run), one address a line on stdout, so they can be looked up or written to; the
    count and what resending costs on stderr."""
    from newsletter.compose.issue import load_issue
    from newsletter.paths import display
    from newsletter.store import open_store, store_exists
    from newsletter.store.ledger import Ledger

    slug = load_issue(issue, display=display(issue)).slug
    if not store_exists(config):
        click.echo("0 uncertain: nothing has been sent yet", err=True)
        return
    store = open_store(config, readonly=True)
    try:
        ledger = Ledger(store, slug)
        rows = ledger.rows("uncertain") + ledger.rows("sending")
    finally:
        store.close()
    for row in sorted(rows, key=lambda r: r.email):
        click.echo(row.email)
    click.echo(f"{len(rows):,} uncertain: most such readers usually did get the message; "
               f"`newsletter send {issue} --resend-uncertain` mails all of them again "
               "(a duplicate for each who has it)", err=True)
