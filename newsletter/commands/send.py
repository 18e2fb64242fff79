"""`newsletter send ISSUE [--dry-run] [--to ADDR] [--backend NAME] ...`"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.audience.members import csv_source, describe
from newsletter.audience.secrets import MissingSecret, SigningKeys, signing_keys
from newsletter.commands._common import config_option, get_config, issue_files, issues_argument, took
from newsletter.compose.build import Built, build_issue
from newsletter.config import BACKENDS, Config
from newsletter.deliver.send import (
    Plan,
    SendOptions,
    SendReport,
    check_fields,
    make_plan,
    send_issue,
    send_test,
    tested_edition,
    write_samples,
)
from newsletter.errors import SendError
from newsletter.paths import display

if TYPE_CHECKING:
    from newsletter.store import Store

SAMPLES = 3
SHOW_ROWS = 20


@click.command("send")
@issues_argument
@click.option("--dry-run", is_flag=True, help="Show who would get it and write sample .eml files; send nothing.")
@click.option("--to", "to", metavar="ADDR", help="Send one test message to ADDR (subject prefixed [TEST]).")
@click.option("--language", metavar="LANG", help="With --to: the edition a reader of LANG gets (default: the issue).")
@click.option("--backend", type=click.Choice(BACKENDS), help="outbox, smtp or sendgrid (default: from config).")
@click.option("--subscribers", "subscribers", type=click.Path(path_type=Path, dir_okay=False),
              help="Subscriber CSV (default: `subscribers` in newsletter.toml).")
@click.option("--rate", type=click.FloatRange(min=0), metavar="N", help="At most N messages per second (0: no limit).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--resend-uncertain", is_flag=True,
              help="Also resend to readers whose earlier hand-off had an unknown outcome.")
@click.option("--force", is_flag=True, help="Send even though `newsletter check` reports errors.")
@config_option
def send_command(issues: tuple[Path, ...], dry_run: bool, to: str | None, language: str | None, backend: str | None,
                 subscribers: Path | None, rate: float | None, yes: bool, resend_uncertain: bool, force: bool,
                 config_path: Path | None) -> None:
    """Send ISSUE to the subscribers, resumably: a rerun sends only to who has not had it.

    ISSUES are files or folders, as for `build`: a --dry-run or a --to test covers each of
    them in turn; a send to the list takes exactly one issue.

    A kill at any moment is safe: run the same command again. Readers whose hand-off was
    interrupted mid-way are marked `uncertain` (see `newsletter status`) and resent only
    with --resend-uncertain. Suppressed addresses are never mailed. The issue is checked
    first (`newsletter check`): a send to the list refuses on errors unless --force.

    \b
    Examples:
        newsletter send issues/2011-11-28-free-ales-bialiatski.yaml --dry-run
        newsletter send issues/2011-11-28-free-ales-bialiatski.yaml --to me@example.org
        newsletter send issues/2011-11-28-free-ales-bialiatski.yaml --to me@example.org --language fr
        newsletter send issues/2011-11-28-free-ales-bialiatski.yaml --backend smtp
        newsletter send issues/ --dry-run
    """
    paths = issue_files(issues)
    if len(paths) > 1 and not (dry_run or to):
        raise SendError(f"a send to the list takes one issue, not {len(paths)} "
                        f"({', '.join(display(p) for p in paths[:3])}{', …' if len(paths) > 3 else ''}); "
                        "--dry-run and --to take several")
    if language and not to:
        raise SendError("--language chooses the edition of a --to test; a send to the list gives each reader "
                        "the edition in their own language")
    for i, issue in enumerate(paths):
        if i:
            click.echo()
        _send(issue, dry_run, to, language, backend, subscribers, rate, yes, resend_uncertain, force, config_path)


def _send(issue: Path, dry_run: bool, to: str | None, language: str | None, backend: str | None,
          subscribers: Path | None, rate: float | None, yes: bool, resend_uncertain: bool, force: bool,
          config_path: Path | None) -> None:
    from newsletter.deliver.backends import get_backend
    from newsletter.store import open_store, store_exists

    config = get_config(config_path, near=issue)
    backend_name = backend or config.backend
    built = build_issue(issue, config, write=False)
    config = built.config  # the issue's list: its sender, CSV source, members
    # the list's CSV source and its confirmed members in the store; --subscribers: a one-off to a file
    from_store = subscribers is None
    csv_path = subscribers.resolve() if subscribers is not None else csv_source(config)
    if not (dry_run or to) and csv_path is not None:
        check_fields(built, csv_path, display=display(csv_path))  # no --force for this one
    _gate(built, refuse=not (dry_run or to or force), subscribers=None if to else csv_path)
    no_mail_leaves = dry_run or backend_name == "outbox"  # only then may links use the development key
    keys = _keys(allow_development=no_mail_leaves, backend=backend_name)

    if dry_run:
        store = open_store(config, readonly=True) if store_exists(config) else None
        try:
            plan = make_plan(built, csv_path, store, resend_uncertain=resend_uncertain, samples=SAMPLES,
                             display=_shown(csv_path), from_store=from_store)
        finally:
            if store is not None:
                store.close()
        _print_header(built, backend_name, config)
        _print_plan(plan)
        samples = write_samples(built, plan, keys, config.build_dir / built.slug / "samples")
        if samples:
            which = f"{len(samples)} message{'s' * (len(samples) != 1)}"
            if len(samples) < plan.to_send:
                which = f"{len(samples)} of the {plan.to_send:,} messages (a dry run writes the first {SAMPLES})"
            click.echo(f"samples        {which}, as they would be sent: {display(samples[0].parent)}/")
            _announce_key(keys)
        click.echo("dry run: nothing sent, nothing recorded")
        if csv_path is not None:
            check_fields(built, csv_path, display=display(csv_path))  # a send would refuse, even with --force
        return

    if to:
        tested = tested_edition(built, language)  # a language without an edition stops before any connection
        store = open_store(config, readonly=True) if store_exists(config) else None
        try:
            with get_backend(backend_name, config) as b:
                outcome = send_test(tested, b, to, keys=keys, store=store)
        finally:
            if store is not None:
                store.close()
        _announce_key(keys)
        if outcome.status != "sent":
            raise SendError(f"test message to {outcome.email} {outcome.status}: {outcome.detail}")
        where = f" ({outcome.detail})" if backend_name == "outbox" else ""
        edition = f" (the {tested.language} edition)" if built.editions else ""
        click.echo(f"test message{edition} sent to {outcome.email} via {backend_name}{where}; not recorded as a send")
        return

    store = open_store(config)
    try:
        with store.issue_lock(built.slug):
            if backend_name == "sendgrid" and config.sendgrid.get("sync_suppressions", True):
                _sync_suppressions(config, store)
            if yes:  # no question, so no plan first: the send reads the list once, the table comes after
                report = _send_without_plan(built, backend_name, config, csv_path, store, keys=keys,
                                            resend_uncertain=resend_uncertain, rate=rate, issue=issue,
                                            from_store=from_store)
                if report is None:
                    return
            else:
                report = _send_after_question(built, backend_name, config, csv_path, store, keys=keys,
                                              resend_uncertain=resend_uncertain, rate=rate, issue=issue,
                                              from_store=from_store)
                if report is None:
                    return
    finally:
        store.close()
    _print_report(report, issue, backend_name)
    if not report.complete:
        sys.exit(1)


def _send_after_question(built: Built, backend_name: str, config: Config, csv_path: Path | None, store: Store, *,
                         keys: SigningKeys, resend_uncertain: bool, rate: float | None,
                         issue: Path, from_store: bool) -> SendReport | None:
    """Show the plan, ask, send. None if there was nothing to send."""
    from newsletter.deliver.backends import get_backend

    plan = make_plan(built, csv_path, store, resend_uncertain=resend_uncertain, display=_shown(csv_path),
                     from_store=from_store)
    _print_header(built, backend_name, config)
    _print_plan(plan)
    b = get_backend(backend_name, config)  # bad settings fail here, before the question
    if plan.to_send == 0:
        _nothing_to_send(plan.uncertain_held, issue)
        return None
    _announce_key(keys)
    if not click.confirm(f"Send to {plan.to_send:,} subscribers via {backend_name}?", default=False):
        raise SendError("not sent")
    progress = _Progress(plan.to_send + plan.bad_link_count)  # those fail, but are gone through
    try:
        options = SendOptions.from_config(config, b, rate=rate, resend_uncertain=resend_uncertain)
        return send_issue(built, options, csv_path, store, keys=keys,
                          total=plan.to_send, progress=progress, display=_shown(csv_path),
                          from_store=from_store)
    finally:
        progress.close()


def _send_without_plan(built: Built, backend_name: str, config: Config, csv_path: Path | None, store: Store, *,
                       keys: SigningKeys, resend_uncertain: bool, rate: float | None,
                       issue: Path, from_store: bool) -> SendReport | None:
    """--yes: send while reading the list (once: validating a million addresses twice was a
    fifth of a big send), then print the table the plan would have shown, from what the
    send counted. The progress bar follows the bytes of the list read. None if nothing was sent."""
    from newsletter.deliver.backends import get_backend

    _print_header(built, backend_name, config)
    b = get_backend(backend_name, config)
    try:
        size = csv_path.stat().st_size if csv_path is not None else 0
    except OSError:
        size = 0  # read_subscribers says what is wrong with the file
    progress = _Progress(size, by_bytes=True)
    try:
        options = SendOptions.from_config(config, b, rate=rate, resend_uncertain=resend_uncertain)
        report = send_issue(built, options, csv_path, store, keys=keys,
                            progress=progress, display=_shown(csv_path), from_store=from_store)
    finally:
        progress.close()
    if report.stopped:
        # the list was not read to the end: its counts so far are not the list's, so none is
        # shown as if it were (the report below says what was sent)
        s = report.stats
        pct = f", {100 * s.bytes_read / size:.0f}% of the file" if size else ""
        click.echo(f"subscribers    {_shown(csv_path) or 'the store'}: the send stopped after reading {s.rows:,} "
                   f"row{'' if s.rows == 1 else 's'}{pct}; the rest was not read")
        return report
    source = describe(csv_path, config.list_key if from_store else None, _shown(csv_path))
    plan = Plan(subscribers=_shown(csv_path), source=source, stats=report.stats, to_send=report.attempted,
                suppressed=report.suppressed, already_sent=report.already_sent,
                uncertain_held=report.uncertain_held, editions=report.editions)
    _print_plan(plan)
    if report.attempted == 0 and report.stopped is None:
        if report.recovered:
            click.echo(f"  {report.recovered:,} left mid-hand-off by an earlier run are now uncertain", err=True)
        _nothing_to_send(report.uncertain_held, issue)
        return None
    _announce_key(keys)  # after the send, not before: on "nothing to send" it would be noise
    return report


def _sync_suppressions(config: Config, store: Store) -> None:
    """Before a SendGrid send: pull what SendGrid knows to be gone ([sendgrid] sync_suppressions)."""
    from newsletter.audience.sendgrid_sync import SendGridReader, sync

    report = sync(store, SendGridReader(config))
    click.echo(f"suppressions   synced from SendGrid: {report.new:,} newly suppressed")


def _shown(csv_path: Path | None) -> str:
    return display(csv_path) if csv_path is not None else ""


def _nothing_to_send(uncertain_held: int, issue: Path) -> None:
    click.echo("nothing to send")
    if uncertain_held:
        raise SendError(f"{uncertain_held:,} uncertain: most such readers usually did get the message; list them "
                        f"with `newsletter status {issue} --uncertain`; --resend-uncertain mails all of them again "
                        "(a duplicate for each who already has it)")


def _gate(built: Built, *, refuse: bool, subscribers: Path | None) -> None:
    """Run `newsletter check`'s rules (merge fields against `subscribers`, the list being
    sent); show errors, and refuse a real send on them."""
    from newsletter.lint import has_errors, lint
    from newsletter.lint.findings import dedupe

    findings = dedupe([f for b in built.all() for f in lint(b, subscribers=subscribers)])  # every edition
    errors = [f for f in findings if f.is_error]
    for f in errors:
        click.echo(str(f), err=True)
    if not has_errors(findings):
        return
    if refuse:
        raise SendError(f"check found {len(errors)} error{'s' if len(errors) > 1 else ''}: "
                        "fix them (see `newsletter check`) or send anyway with --force")
    click.echo(f"check found {len(errors)} error(s): a send to the list would refuse without --force", err=True)


def _keys(*, allow_development: bool, backend: str) -> SigningKeys:
    try:
        return signing_keys(allow_development=allow_development)
    except MissingSecret as e:
        raise SendError(f"refusing to send via {backend}: {e}") from None


def _announce_key(keys: SigningKeys) -> None:
    if keys.is_development:
        click.echo("note: unsubscribe links are signed with the development key (NEWSLETTER_SECRET is not set); "
                   "they will not work on the live site", err=True)



def _lines(rows: list, limit: int = 8) -> str:
    nums = [str(r.line) for r in rows[:limit]]
    more = "" if len(rows) <= limit else ", …"
    return f"(line{'s' if len(rows) > 1 else ''} {', '.join(nums)}{more})" if rows else ""


def _print_header(built: Built, backend: str, config: Config) -> None:
    where = {"outbox": f"writes .eml files to {display(config.outbox_dir / built.slug)}/",
             "smtp": f"{config.smtp.get('host', 'localhost')}:{config.smtp.get('port', 25)}",
             "sendgrid": str(config.sendgrid.get("host", "https://api.sendgrid.com"))}.get(backend, "")
    click.echo(f"issue          {built.slug}: {built.issue.subject}")
    for e in built.editions:
        click.echo(f"  edition {e.edition:<6} {e.issue.subject}")
    click.echo(f"backend        {backend} ({where})")


def _print_plan(plan: Plan) -> None:
    s = plan.stats
    click.echo(f"subscribers    {plan.source or plan.subscribers}: {s.rows:,} row{'' if s.rows == 1 else 's'}")
    rows = [
        ("to send", plan.to_send, ""),
        ("suppressed", plan.suppressed, ""),
        ("invalid", s.invalid_count, _lines(s.invalid)),
        ("duplicates", s.duplicate_count, _lines(s.duplicates)),
        ("already sent", plan.already_sent, ""),
    ]
    if plan.uncertain_held:
        rows.append(("uncertain", plan.uncertain_held, "(held back: --resend-uncertain to resend)"))
    if plan.bad_link_count:
        rows.append(("bad link", plan.bad_link_count, f"{_lines(plan.bad_links)} (a value used as a link is not "
                                                      "a URL: these readers fail, fix the list)"))
    width = max(6, *(len(f"{n:,}") for _, n, _ in rows))
    for label, n, note in rows:
        click.echo(f"  {label:<13}{n:>{width},}  {note}".rstrip())
    if plan.editions:
        click.echo("  (to send per edition: " + ", ".join(f"{lang} {n:,}" for lang, n in plan.editions.items()) + ")")
    if plan.retrying_failed or plan.resending_uncertain:
        click.echo(f"  (to send includes {plan.retrying_failed:,} that failed before"
                   f" and {plan.resending_uncertain:,} uncertain)")
    for r in s.invalid[:SHOW_ROWS]:
        shown = f" {r.email!r}:" if r.email else ""
        click.echo(f"{plan.subscribers}:{r.line}: email:{shown} {r.reason}", err=True)
    if s.invalid_count > SHOW_ROWS:
        click.echo(f"… and {s.invalid_count - SHOW_ROWS:,} more invalid rows", err=True)


class _Progress:
    """A bar with rate and ETA on a terminal; a plain line every few seconds when piped.

    `by_bytes`: the total is the list's size in bytes and the bar follows how much of it the
    send has read (--yes sends without counting the readers first)."""

    def __init__(self, total: int, *, by_bytes: bool = False):
        self.total = total
        self.by_bytes = by_bytes
        self.done = 0
        self.tty = sys.stdout.isatty()
        self.bar = None
        self.last = time.monotonic()
        if self.tty:
            self.bar = click.progressbar(length=total, label="sending", show_eta=True, show_percent=True,
                                         show_pos=not by_bytes, item_show_func=lambda r: r)
            self.bar.__enter__()

    def __call__(self, report: SendReport) -> None:
        position = min(report.stats.bytes_read, self.total) if self.by_bytes else report.attempted
        step = position - self.done
        self.done = position
        # what the backend answered, never what was merely attempted: a request refused
        # (429 every time) is `failed`, not `sent`
        tally = f"sent {report.sent:,}" + (f" · failed {report.failed:,}" if report.failed else "") + \
            (f" · uncertain {report.uncertain:,}" if report.uncertain else "")
        if self.bar is not None:
            self.bar.update(step, f"{tally}, {report.rate:,.0f} msg/s")
        elif time.monotonic() - self.last >= 5:
            self.last = time.monotonic()
            pct = 100 * self.done / self.total if self.total else 100
            if self.by_bytes:
                click.echo(f"{tally} ({pct:.0f}% of the list read), {report.rate:,.0f} msg/s")
            else:
                click.echo(f"{tally} of {self.total:,} ({pct:.0f}% handed off), {report.rate:,.0f} msg/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _print_report(report: SendReport, issue: Path, backend: str) -> None:
    """What happened, once each, in numbers that are true: one line per kind of failure (a
    refused request's readers share one reason), the stop once, and a hint that says what
    a rerun will and will not do."""
    elapsed = time.monotonic() - report.started
    click.echo(f"done in {took(elapsed, report.sent)} via {backend}:")
    click.echo(f"  sent {report.sent:,} · failed {report.failed:,} · uncertain {report.uncertain:,}"
               f" · suppressed {report.suppressed:,} · already sent {report.already_sent:,}")
    if report.editions:
        click.echo("  handed off per edition: " + ", ".join(f"{lang} {n:,}" for lang, n in report.editions.items()))
    if report.recovered:
        click.echo(f"  {report.recovered:,} left mid-hand-off by an earlier run are now uncertain", err=True)
    stop = "; ".join(line.strip() for line in report.stopped.splitlines()) if report.stopped else None
    examples: dict[str, list[str]] = {}
    for o in report.failures:
        examples.setdefault(o.detail, []).append(o.email)
    for detail, n in report.failure_kinds.items():
        who = _some(examples.get(detail, []), n)
        if n == 1 and examples.get(detail):
            click.echo(f"failed {examples[detail][0]}: {detail}", err=True)
        elif stop is not None and "; ".join(line.strip() for line in detail.splitlines()) == stop:
            click.echo(f"failed {n:,}: the request that stopped the send was refused, nothing in it was sent {who}",
                       err=True)
        else:
            click.echo(f"failed {n:,}: {detail} {who}".rstrip(), err=True)
    for o in report.uncertain_list[:SHOW_ROWS]:
        click.echo(f"uncertain {o.email}: {o.detail}", err=True)
    if report.uncertain > SHOW_ROWS:
        click.echo(f"… and {report.uncertain - SHOW_ROWS:,} more uncertain", err=True)
    if stop is not None:
        click.echo(f"stopped: {stop}", err=True)
    held = report.uncertain + report.uncertain_held
    if held:
        click.echo(f"{held:,} uncertain: their hand-off was cut before the answer came, and most such readers usually "
                   f"did get the message. List them with `newsletter status {issue} --uncertain`; "
                   "--resend-uncertain sends to all of them again, a duplicate for each who already has it", err=True)
    retryable = report.failed - report.unfixable
    if report.stopped:
        click.echo("once the cause is fixed, run the same command again: it sends only to who has not had it",
                   err=True)
    elif retryable:
        click.echo(f"run the same command again to retry the {retryable:,} failed", err=True)
    if report.unfixable:
        click.echo(f"{report.unfixable:,} failed for a reason a rerun alone will not fix: correct their rows "
                   "in the subscriber list as said above", err=True)


def _some(emails: list[str], n: int, show: int = 3) -> str:
    """`(a@x, b@x, c@x and 997 more)`: who, without a line each."""
    if not emails:
        return ""
    more = f" and {n - min(show, len(emails)):,} more" if n > show else ""
    return f"({', '.join(emails[:show])}{more})"
