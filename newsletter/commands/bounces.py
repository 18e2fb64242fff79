"""`newsletter bounces SOURCE`"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config

SOFT_LIMIT = 3  # soft bounces ...
SOFT_ISSUES = 2  # ... across this many different issues before an address is suppressed


@click.command("bounces")
@click.argument("source")
@config_option
def bounces_command(source: str, config_path: Path | None) -> None:
    """Read bounces from SOURCE and suppress the addresses that no longer take mail.

    SOURCE is a Maildir folder, an mbox file, or imaps://user@host/Folder (password in
    NEWSLETTER_IMAP_PASSWORD). A hard bounce (5.x.x) suppresses the address at once; soft
    ones (4.x.x, mailbox full) only after [bounces] soft_limit of them across soft_issues
    issues. Auto-replies are ignored. Messages that are not bounces are left exactly as they
    were; bounces are moved to the `processed` folder (an mbox file is only read: its
    bounces are remembered), so a second run counts nothing twice.

    \b
    Example:
        newsletter bounces ~/Maildir/.Bounces
        NEWSLETTER_IMAP_PASSWORD=... newsletter bounces imaps://bounces@mail.example.org/INBOX
    """
    from newsletter.audience.bounces import scan
    from newsletter.audience.mailboxes import open_source
    from newsletter.audience.secrets import signing_keys
    from newsletter.store import open_store

    # flufl.bounce logs a detector that trips on a malformed message with its traceback, then
    # raises (we count the message as not recognised): the user gets our line, not its log
    logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())
    config = get_config(config_path)
    keys = signing_keys(allow_development=True)
    store = open_store(config)
    try:
        mailbox = open_source(source)
        try:
            summary = scan(mailbox, store, keys=keys, bounce_address=config.bounces.get("address"),
                           soft_limit=config.bounces.get("soft_limit", SOFT_LIMIT),
                           soft_issues=config.bounces.get("soft_issues", SOFT_ISSUES))
        finally:
            mailbox.close()
    finally:
        store.close()
    for note in summary.notes:
        click.echo(note, err=True)
    click.echo(summary.line())
