"""The send loop: subscribers -> suppressions -> ledger -> backend. Also the dry run and --to.

    plan = make_plan(built, csv, store)                    # counts; writes nothing
    report = send_issue(built, SendOptions(backend), csv, store, keys=keys)  # resumable, kill-safe

The subscriber CSV is streamed in batches; for each batch the ledger says who already
has the issue, the suppression list is asked right before the hand-off (so an
unsubscribe that lands mid-send is honoured from the next batch on), and the ledger
records `sending` before and the outcome after each hand-off (see ledger.py for why a
kill -9 at any moment is then safe).

Two things keep a big send cheap: rows the ledger already has as `sent` are passed over
without validating their address again (read_subscribers' `skip`: a resume of 1,000 left
out of a million reads the list, it does not re-check it), and a backend may overlap its
network wait with our reading of the next batch (Backend.submit/finish: SendGrid posts from
a sender thread, one request in flight, still marking each request's readers first).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.audience.members import describe, read_audience
from newsletter.audience.secrets import SigningKeys
from newsletter.audience.subscribers import Done, ReadStats, Rejected, Subscriber, normalise_address
from newsletter.compose import i18n
from newsletter.compose.build import Built
from newsletter.compose.schema import url_problem
from newsletter.config import Config
from newsletter.deliver.backends.base import Backend, Hooks, Outcome
from newsletter.deliver.message import PreparedMessage, Recipient, make_recipient, prepare_message
from newsletter.deliver.placeholders import STANDARD_FIELDS, link_fields, locate_field, unknown_fields
from newsletter.deliver.placeholders import value as field_value
from newsletter.errors import BackendError, InputError, Problem, SendError
from newsletter.store import Store, email_key
from newsletter.store.ledger import Ledger

KEEP = 200  # failures / uncertain addresses kept in a report for display
DEFAULT_BATCH = 500  # readers per batch when neither [send] batch_size nor the backend says
KINDS = 50  # distinct failure reasons counted in a report
OTHER = "other reasons"


@dataclass
class Plan:
    """What a send would do now, from the CSV, the suppression list and the ledger."""

    subscribers: str  # the CSV file, as shown (its rows' problems name it)
    source: str = ""  # where the readers come from: `file.csv + store (list)` (audience/members.py)
    stats: ReadStats = field(default_factory=ReadStats)
    to_send: int = 0
    retrying_failed: int = 0  # part of to_send: failed before, tried again
    resending_uncertain: int = 0  # part of to_send: only with --resend-uncertain
    suppressed: int = 0
    already_sent: int = 0
    uncertain_held: int = 0  # uncertain (or left `sending`) and not resent without the flag
    bad_links: list[Subscriber] = field(default_factory=list)  # would fail the link check (first KEEP)
    bad_link_count: int = 0  # not part of to_send: their send fails, per reader
    first: list[Subscriber] = field(default_factory=list)  # a few of to_send, for samples
    editions: dict[str, int] = field(default_factory=dict)  # to_send per edition's language (issues with editions)


@dataclass
class SendReport:
    total: int = 0  # what the plan said would be sent
    attempted: int = 0
    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    suppressed: int = 0
    already_sent: int = 0
    uncertain_held: int = 0
    recovered: int = 0  # `sending` rows a killed run left behind, now `uncertain`
    stats: ReadStats = field(default_factory=ReadStats)
    failures: list[Outcome] = field(default_factory=list)
    #: how many failed with each distinct reason (at most KINDS reasons; the rest as one):
    #: a stopped request's thousand readers share one reason and are reported once
    failure_kinds: dict[str, int] = field(default_factory=dict)
    unfixable: int = 0  # of failed: a rerun alone will not send them (their data breaks a rule)
    uncertain_list: list[Outcome] = field(default_factory=list)
    stopped: str | None = None  # the backend gave up: its words
    in_flight: int = 0  # handed to the backend, outcome not returned yet
    started: float = field(default_factory=time.monotonic)
    editions: dict[str, int] = field(default_factory=dict)  # handed off per edition's language (with editions)

    @property
    def complete(self) -> bool:
        """Every recipient was handed off: nothing failed, uncertain, held back or stopped."""
        return (self.failed == 0 and self.uncertain == 0 and self.uncertain_held == 0
                and self.stopped is None)

    @property
    def rate(self) -> float:
        """Messages sent per second: what the service took, not what was tried (a refused
        request is no throughput)."""
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


# --- classifying readers --------------------------------------------------------------------


def _batches(rows: Iterator[Subscriber | Rejected | Done], size: int) -> Iterator[list[Subscriber]]:
    """Valid readers `size` at a time. (Done rows, already sent, are counted in the read's
    stats.done; they need nothing more.)"""
    batch: list[Subscriber] = []
    for row in rows:
        if isinstance(row, Subscriber):
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _classify(batch: list[Subscriber], statuses: dict[str, str], store: Store | None,
              resend_uncertain: bool, lock: AbstractContextManager[object] | None = None,
              list_key: str | None = None) -> Iterator[tuple[Subscriber, str]]:
    """(subscriber, what to do): 'sent', 'suppressed', 'held', 'failed', 'uncertain' or 'new'.
    Whoever left `list_key` counts as suppressed: no file brings them back (audience/members.py)."""
    unsent = [s for s in batch if statuses.get(s.key) != "sent"]
    suppressed: set[str] = set()
    if store is not None and unsent:
        with lock or nullcontext():  # a backend's sender thread may be using the store
            suppressed = store.suppressed_among(s.email for s in unsent)
            if list_key is not None:
                suppressed |= store.unsubscribed_among(list_key, (s.email for s in unsent))
    for s in batch:
        status = statuses.get(s.key)
        if status == "sent":
            yield s, "sent"
        elif s.key in suppressed:
            yield s, "suppressed"
        elif status in ("uncertain", "sending"):
            yield s, "uncertain" if resend_uncertain else "held"
        elif status == "failed":
            yield s, "failed"
        else:
            yield s, "new"


def _passed_over(tally: Plan | SendReport, what: str) -> bool:
    """Count a reader who is not sent to now (already sent, suppressed, held uncertain);
    False for one to send. The plan and the send count the same way."""
    if what == "sent":
        tally.already_sent += 1
    elif what == "suppressed":
        tally.suppressed += 1
    elif what == "held":
        tally.uncertain_held += 1
    else:
        return False
    return True


def make_plan(built: Built, subscribers: Path | None, store: Store | None, *,
              resend_uncertain: bool = False, samples: int = 0, display: str | None = None,
              from_store: bool = False) -> Plan:
    """Count who would be sent to (per edition too), without writing anything. `store` None: no
    state yet. `from_store`: the list's confirmed members in the store too (audience/members.py)."""
    plan = Plan(subscribers=display or str(subscribers),
                source=describe(subscribers, built.config.list_key if from_store else None, display))
    if built.editions:
        plan.editions = dict.fromkeys((b.language for b in built.all()), 0)
    ledger = Ledger(store, built.slug) if store is not None else None
    rows = read_audience(subscribers, store if from_store else None, built.config.list_key,
                         default_language=built.language, stats=plan.stats, display=display or str(subscribers),
                         skip=ledger.sent_among if ledger is not None and ledger.resumed() else None)
    links = _link_fields(built)
    for batch in _batches(rows, DEFAULT_BATCH):
        statuses = ledger.statuses(s.email for s in batch) if ledger is not None else {}
        for s, what in _classify(batch, statuses, store, resend_uncertain, list_key=built.config.list_key):
            if not _passed_over(plan, what):
                if links and link_problem(links, s.fields) is not None:
                    plan.bad_link_count += 1
                    if len(plan.bad_links) < KEEP:
                        plan.bad_links.append(s)
                    continue
                plan.to_send += 1
                plan.retrying_failed += what == "failed"
                plan.resending_uncertain += what == "uncertain"
                if built.editions:
                    plan.editions[built.for_language(s.language).language] += 1
                if len(plan.first) < samples:
                    plan.first.append(s)
    plan.already_sent += plan.stats.done
    return plan


def edition_counts(built: Built, subscribers: Path | None, store: Store | None, *,
                   from_store: bool = False) -> dict[str, dict[str, int]]:
    """For `status` of an issue with editions: per edition's language, how many of the readers
    now on the list (the CSV, and with `from_store` the list's confirmed members, as the send
    reads them) the ledger has as sent, failed, uncertain (or sending), or not yet (pending).
    Suppressed readers and those who left the list, if they have not had the issue, are left
    out. Writes nothing."""
    counts = {b.language: dict.fromkeys(("sent", "pending", "failed", "uncertain"), 0) for b in built.all()}
    ledger = Ledger(store, built.slug) if store is not None else None
    rows = read_audience(subscribers, store if from_store else None, built.config.list_key,
                         default_language=built.language, stats=ReadStats())
    for batch in _batches(rows, 500):
        statuses = ledger.statuses(s.email for s in batch) if ledger is not None else {}
        for s, what in _classify(batch, statuses, store, True, list_key=built.config.list_key):
            if what == "suppressed":
                continue
            key = {"new": "pending", "uncertain": "uncertain", "held": "uncertain"}.get(what, what)
            counts[built.for_language(s.language).language][key] += 1
    return counts


# --- preflight ------------------------------------------------------------------------------


def check_fields(built: Built, subscribers: Path, *, display: str | None = None) -> None:
    """Refuse an issue whose merge fields are not all standard fields or columns of `subscribers`.

    A misspelt `{{ nmae }}` would reach every reader as an empty string; no --force
    makes that right. Raises InputError naming FILE:LINE of each such field in the issue
    (or the template that uses it) and the columns the list has. Reads only the header.
    """
    from newsletter.audience.subscribers import columns_of
    from newsletter.compose.render import default_theme
    from newsletter.paths import display as shown

    csv_name = display or str(subscribers)
    columns = columns_of(subscribers, display=csv_name)
    problems: dict[Problem, None] = {}  # a theme template's field is one problem, whatever the edition
    for b in built.all():  # every edition reaches some reader
        for name in unknown_fields(b.rendered.fields, columns):
            file, line = locate_field(b.issue.path, (built.config.templates_dir, default_theme()), name)
            problems[Problem(shown(file), line, "{{ " + name + " }}",
                             f"neither a standard field ({', '.join(STANDARD_FIELDS)}) nor a column of "
                             f"{csv_name} (its columns: {', '.join(columns)}); not sent: every reader "
                             "would get it empty")] = None
    if problems:
        raise InputError(list(problems))


def _link_fields(built: Built) -> list[tuple[str, str]]:
    """The fields used as whole links in the issue or any of its editions (a reader may get any)."""
    return list(dict.fromkeys(f for b in built.all() if b.rendered is not None for f in link_fields(b.rendered.html)))


# --- recipients ---------------------------------------------------------------------------



class RecipientMaker:
    """Subscriber -> Recipient for one issue: signed link, headers, name fallback per language.

    Also the per-reader link check (`problem`): a subscriber value that becomes a whole link
    (`url: "{{ website }}"`, `[x]({{ website }})`) must pass the rule literal links pass
    (absolute https/http/mailto). A reader whose value does not is not sent at all, in any
    backend, and gets one `failed` line saying which column to fix: dropping just the link
    would send a message that silently differs from the one the editor checked, and the
    reader's other values came from the same suspect row.
    """

    def __init__(self, built: Built, keys: SigningKeys, *, unique_ids: bool = False):
        self.built = built
        self.keys = keys
        self.unique_ids = unique_ids
        self._fallbacks: dict[str, str] = {}
        self.links = _link_fields(built)

    def problem(self, r: Recipient) -> str | None:
        """Why `r` cannot be sent (a value filled into a link is not a URL an email may carry), or None."""
        return link_problem(self.links, r.fields)

    def fallback_name(self, language: str) -> str:
        if language not in self._fallbacks:
            config = self.built.config
            self._fallbacks[language] = i18n.gettext(language, "reader", config.locale_dir, config.default_language)
        return self._fallbacks[language]

    def __call__(self, s: Subscriber) -> Recipient:
        return make_recipient(email=s.email, name=s.name, language=s.language, fields=s.fields,
                              slug=self.built.slug, config=self.built.config, keys=self.keys,
                              fallback_name=self.fallback_name(s.language), unique_id=self.unique_ids)


class Editions:
    """The message each reader gets: the edition in their language (`Built.for_language`: along
    the tag, then the issue itself), each prepared once. Every edition has the issue's slug, so
    the ledger keeps one row per reader per issue whatever the edition: nobody gets two."""

    def __init__(self, built: Built, *, test: bool = False):
        self.built = built
        self.test = test
        self._messages: dict[str, PreparedMessage] = {}
        # readers handed to the backend per edition, the issue's first (only for an issue with editions)
        self.counts: dict[str, int] = dict.fromkeys((b.language for b in built.all()), 0) if built.editions else {}

    def edition(self, language: str) -> Built:
        return self.built.for_language(language)

    def message(self, edition: Built) -> PreparedMessage:
        key = edition.language
        if key not in self._messages:
            self._messages[key] = prepare_message(edition, test=self.test)
        return self._messages[key]

    def submit(self, backend: Backend, todo: list[Recipient]) -> list[Outcome]:
        """`backend.submit(todo)`, one edition at a time: a backend sends the message it was
        opened with, so it is re-opened on the next edition's, with the hooks the send loop gave
        it (a no-op for an issue without editions)."""
        if not self.built.editions:
            return backend.submit(todo)
        groups: dict[str, tuple[Built, list[Recipient]]] = {}
        for r in todo:
            e = self.edition(r.language)
            groups.setdefault(e.language, (e, []))[1].append(r)
        outcomes: list[Outcome] = []
        for edition, group in groups.values():
            message = self.message(edition)
            if backend.message is not message:  # same hooks: the ledger hears of every hand-off
                backend.open(message, backend.hooks)
            self.counts[edition.language] += len(group)
            try:
                outcomes += backend.submit(group)
            except BackendError as e:  # what the earlier editions settled is reported with it
                e.outcomes = outcomes + e.outcomes
                raise
        return outcomes


def link_problem(links: list[tuple[str, str]], values: Mapping[str, str]) -> str | None:
    """The first of `links` ((field, fallback) used as a whole URL) whose value in `values` fails
    the literal-link rule, said as a report line; None if all pass (or are empty)."""
    for name, fallback in links:
        url = field_value(values, name, fallback)
        if url and (why := url_problem(url)) is not None:
            return (f"not sent: the '{name}' value is used as a link and is not an absolute https, http "
                    f"or mailto URL ({_shorten(why)}); fix that column of the subscriber list")
    return None


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- the send ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOptions:
    """How a send runs, decided once: the backend, readers per batch, rate, what to resend.

    `batch_size` 0 takes the backend's own preference (SendGrid: 1,000, a full request),
    else DEFAULT_BATCH. A rate caps it so the send makes about ten small batches a second,
    each waiting its turn, instead of a burst then a pause. After construction
    `batch_size` is the size the send uses.
    """

    backend: Backend
    batch_size: int = 0
    rate: float = 0  # messages per second at most; 0: no limit
    resend_uncertain: bool = False

    def __post_init__(self) -> None:
        size = self.batch_size or self.backend.batch_size or DEFAULT_BATCH
        if self.rate > 0:
            size = max(1, min(size, int(self.rate // 10)))
        object.__setattr__(self, "batch_size", size)

    @classmethod
    def from_config(cls, config: Config, backend: Backend, *, rate: float | None = None,
                    resend_uncertain: bool = False) -> SendOptions:
        """[send] batch_size and rate from newsletter.toml; `rate` (the --rate option) overrides."""
        return cls(backend, batch_size=config.batch_size if config.batch_size_set else 0,
                   rate=config.rate if rate is None else rate, resend_uncertain=resend_uncertain)


def send_issue(built: Built, options: SendOptions, subscribers: Path | None, store: Store, *,
               keys: SigningKeys, total: int = 0, progress: Callable[[SendReport], None] | None = None,
               display: str | None = None, from_store: bool = False) -> SendReport:
    """Send the issue to everyone in `subscribers` who has not had it yet. Resumable.

    The caller holds `store.issue_lock` so two runs never send the same issue at once.
    Returns a report; raises only if the send cannot start (the backend's own errors
    mid-way stop the loop and are reported in `report.stopped`). `total` is what the plan
    said would be sent (for the progress display).
    """
    check_fields(built, subscribers, display=display)  # before anything is written
    backend, rate = options.backend, options.rate
    report = SendReport(total=total)
    ledger = Ledger(store, built.slug, backend.name)
    report.recovered = ledger.recover()
    editions = Editions(built)
    report.editions = editions.counts
    message = editions.message(built)
    maker = RecipientMaker(built, keys)
    rows = read_audience(subscribers, store if from_store else None, built.config.list_key,
                         default_language=built.language, stats=report.stats, display=display or str(subscribers),
                         skip=ledger.sent_among if ledger.resumed() else None)
    reported: set[str] = set()  # outcomes the backend gave through done(), not yet returned to us

    def on_outcome(outcome: Outcome) -> None:  # may be called from a backend's sender thread
        reported.add(outcome.email)
        ledger.record_one(outcome)

    def settle(outcomes: list[Outcome]) -> None:
        fresh = []  # outcomes reported as they came (done) are buffered already; record the rest
        for o in outcomes:
            if o.email in reported:
                reported.discard(o.email)
            else:
                fresh.append(o)
        ledger.record(fresh, flush=True)
        _tally(report, outcomes)
        if progress is not None:
            progress(report)

    try:
        # connects: a wrong host or password stops here, before anyone is marked
        backend.open(message, Hooks(start_handoff=ledger.start_sending, outcome=on_outcome))
        for batch in _batches(rows, options.batch_size):
            statuses = ledger.statuses(s.email for s in batch)
            todo: list[Recipient] = []
            refused: list[Outcome] = []
            for s, what in _classify(batch, statuses, store, options.resend_uncertain, ledger.lock,
                                     built.config.list_key):
                if not _passed_over(report, what):
                    r = maker(s)
                    why = maker.problem(r)
                    if why is None:
                        todo.append(r)
                    else:
                        refused.append(Outcome(r.email, "failed", why, retryable=False))
            if refused:
                settle(refused)
            if not todo:
                continue
            if rate > 0:
                ahead = report.started + (report.attempted + report.in_flight) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            report.in_flight += len(todo)
            try:
                outcomes = editions.submit(backend, todo)  # may return before all of `todo` is settled
            except BackendError as e:
                outcomes = e.outcomes
                report.stopped = str(e)
            report.in_flight -= len(outcomes)
            settle(outcomes)
            if report.stopped:
                break
        if not report.stopped:
            try:
                outcomes = backend.finish()
            except BackendError as e:
                outcomes = e.outcomes
                report.stopped = str(e)
            report.in_flight -= len(outcomes)
            settle(outcomes)
    finally:
        try:
            backend.close()  # first: a backend's sender thread must be done before the ledger is flushed
        finally:
            ledger.flush()
            # rows this run marked but never resolved (backend stopped mid-batch): not known
            report.uncertain += ledger.recover()
            report.already_sent += report.stats.done  # rows the read passed over: `sent` before this run
    return report


def _tally(report: SendReport, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        report.attempted += 1
        if o.status == "sent":
            report.sent += 1
        elif o.status == "failed":
            report.failed += 1
            report.unfixable += not o.retryable
            kinds = report.failure_kinds
            kind = o.detail if o.detail in kinds or len(kinds) < KINDS else OTHER
            kinds[kind] = kinds.get(kind, 0) + 1
            if len(report.failures) < KEEP:
                report.failures.append(o)
        else:
            report.uncertain += 1
            if len(report.uncertain_list) < KEEP:
                report.uncertain_list.append(o)


# --- one test message ------------------------------------------------------------------------


def tested_edition(built: Built, language: str | None) -> Built:
    """The edition a test of `language` shows: what a reader of that language gets. A language
    the issue has no edition for is refused (a test of it would only show the issue itself)."""
    if not language:
        return built
    edition = built.for_language(language)
    wanted = language.replace("_", "-").lower()
    if edition is built and built.language.lower() not in i18n.along(wanted):
        have = ", ".join(b.language for b in built.all())
        raise SendError(f"--language {language}: {built.slug} has no edition in {language} (it has: {have})")
    return edition


def send_test(built: Built, backend: Backend, address: str, *, keys: SigningKeys,
              store: Store | None = None) -> Outcome:
    """One message of `built` (an issue, or the edition `tested_edition` chose) to `address`,
    subject prefixed [TEST]; never recorded in the ledger."""
    try:
        email = normalise_address(address)
    except ValueError as e:
        raise SendError(f"--to {address}: not a valid address: {e}") from None
    if store is not None and store.is_suppressed(email):
        raise SendError(f"--to {email}: this address is on the suppression list; it is never mailed")
    message = prepare_message(built, test=True)
    maker = RecipientMaker(built, keys, unique_ids=True)
    recipient = maker(Subscriber(email=email, name="", language=built.language, fields={}, line=0))
    if (why := maker.problem(recipient)) is not None:
        raise SendError(f"--to {email}: {why}")
    backend.open(message)
    try:
        return backend.send_messages([recipient])[0]
    finally:
        backend.close()


# --- dry run samples ----------------------------------------------------------------------


def write_samples(built: Built, plan: Plan, keys: SigningKeys, folder: Path) -> list[Path]:
    """Write the first readers' messages as .eml files, exactly as they would be sent."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    editions = Editions(built)
    maker = RecipientMaker(built, keys)
    out = []
    for i, s in enumerate(plan.first, 1):
        path = folder / f"{i}-{_safe(s.email)}.eml"
        path.write_bytes(editions.message(editions.edition(s.language)).to_bytes(maker(s)))
        out.append(path)
    return out


def _safe(email: str) -> str:
    from newsletter.deliver.backends.outbox import file_name

    return file_name(email)[:-4]


__all__ = ["Plan", "SendOptions", "SendReport", "make_plan", "send_issue", "send_test", "write_samples", "email_key"]
