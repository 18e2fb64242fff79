"""The send loop: subscribers -> suppressions -> ledger -> backend. Also the dry run and --to.

    plan = make_plan(built, csv, store)                    # counts; writes nothing
    report = send_issue(built, backend, csv, store, keys)  # resumable, kill-safe

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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.subscribers import Done, ReadStats, Rejected, Subscriber, normalise_address, read_subscribers
from newsletter.compose import i18n
from newsletter.compose.build import Built
from newsletter.deliver.backends.base import Backend, Outcome
from newsletter.deliver.message import PreparedMessage, Recipient, make_recipient, prepare_message
from newsletter.errors import BackendError, SendError
from newsletter.store import Store, email_key
from newsletter.store.ledger import Ledger

KEEP = 200  # failures / uncertain addresses kept in a report for display


@dataclass
class Plan:
    """What a send would do now, from the CSV, the suppression list and the ledger."""

    subscribers: str
    stats: ReadStats = field(default_factory=ReadStats)
    to_send: int = 0
    retrying_failed: int = 0  # part of to_send: failed before, tried again
    resending_uncertain: int = 0  # part of to_send: only with --resend-uncertain
    suppressed: int = 0
    already_sent: int = 0
    uncertain_held: int = 0  # uncertain (or left `sending`) and not resent without the flag
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
        elapsed = time.monotonic() - self.started
        return self.attempted / elapsed if elapsed > 0 else 0.0


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
              resend_uncertain: bool, lock: AbstractContextManager[object] | None = None
              ) -> Iterator[tuple[Subscriber, str]]:
    """(subscriber, what to do): 'sent', 'suppressed', 'held', 'failed', 'uncertain' or 'new'."""
    unsent = [s for s in batch if statuses.get(s.key) != "sent"]
    suppressed: set[str] = set()
    if store is not None and unsent:
        with lock or nullcontext():  # a backend's sender thread may be using the store
            suppressed = store.suppressed_among(s.email for s in unsent)
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


def make_plan(built: Built, subscribers: Path, store: Store | None, *,
              resend_uncertain: bool = False, samples: int = 0, display: str | None = None) -> Plan:
    """Count who would be sent to (per edition too), without writing anything. `store` None: no state yet."""
    plan = Plan(subscribers=display or str(subscribers))
    if built.editions:
        plan.editions = dict.fromkeys((b.language for b in built.all()), 0)
    ledger = Ledger(store, built.slug) if store is not None else None
    rows = read_subscribers(subscribers, default_language=built.language, stats=plan.stats,
                            display=plan.subscribers, skip=ledger.sent_among if ledger is not None else None)
    for batch in _batches(rows, 500):
        statuses = ledger.statuses(s.email for s in batch) if ledger is not None else {}
        for s, what in _classify(batch, statuses, store, resend_uncertain):
            if not _passed_over(plan, what):
                plan.to_send += 1
                plan.retrying_failed += what == "failed"
                plan.resending_uncertain += what == "uncertain"
                if built.editions:
                    plan.editions[built.for_language(s.language).language] += 1
                if len(plan.first) < samples:
                    plan.first.append(s)
    plan.already_sent += plan.stats.done
    return plan


def edition_counts(built: Built, subscribers: Path, store: Store | None) -> dict[str, dict[str, int]]:
    """For `status` of an issue with editions: per edition's language, how many of the readers
    now on the list the ledger has as sent, failed, uncertain (or sending), or not yet (pending).
    Suppressed readers who have not had the issue are left out. Writes nothing."""
    counts = {b.language: dict.fromkeys(("sent", "pending", "failed", "uncertain"), 0) for b in built.all()}
    ledger = Ledger(store, built.slug) if store is not None else None
    for batch in _batches(read_subscribers(subscribers, default_language=built.language), 500):
        statuses = ledger.statuses(s.email for s in batch) if ledger is not None else {}
        for s, what in _classify(batch, statuses, store, True):
            if what == "suppressed":
                continue
            key = {"new": "pending", "uncertain": "uncertain", "held": "uncertain"}.get(what, what)
            counts[built.for_language(s.language).language][key] += 1
    return counts


# --- recipients ---------------------------------------------------------------------------



class RecipientMaker:
    """Subscriber -> Recipient for one issue: signed link, headers, name fallback per language."""

    def __init__(self, built: Built, keys: SigningKeys, *, unique_ids: bool = False):
        self.built = built
        self.keys = keys
        self.unique_ids = unique_ids
        self._fallbacks: dict[str, str] = {}

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
        opened with, so it is re-opened on the next edition's (a no-op for an issue without)."""
        if not self.built.editions:
            return backend.submit(todo)
        groups: dict[str, tuple[Built, list[Recipient]]] = {}
        for r in todo:
            e = self.edition(r.language)
            groups.setdefault(e.language, (e, []))[1].append(r)
        outcomes: list[Outcome] = []
        for edition, group in groups.values():
            message = self.message(edition)
            if backend.message is not message:
                backend.open(message)
            self.counts[edition.language] += len(group)
            try:
                outcomes += backend.submit(group)
            except BackendError as e:  # what the earlier editions settled is reported with it
                e.outcomes = outcomes + list(getattr(e, "outcomes", []) or [])  # type: ignore[attr-defined]
                raise
        return outcomes


# --- the send ------------------------------------------------------------------------------


def send_issue(built: Built, backend: Backend, subscribers: Path, store: Store, *,
               keys: SigningKeys, resend_uncertain: bool = False, rate: float = 0, batch_size: int = 500,
               total: int = 0, progress: Callable[[SendReport], None] | None = None,
               display: str | None = None) -> SendReport:
    """Send the issue to everyone in `subscribers` who has not had it yet. Resumable.

    The caller holds `store.issue_lock` so two runs never send the same issue at once.
    Returns a report; raises only if the send cannot start (the backend's own errors
    mid-way stop the loop and are reported in `report.stopped`).
    """
    report = SendReport(total=total)
    ledger = Ledger(store, built.slug, backend.name)
    report.recovered = ledger.recover()
    editions = Editions(built)
    report.editions = editions.counts
    message = editions.message(built)
    maker = RecipientMaker(built, keys)
    if rate > 0:  # about ten small batches a second, each waiting for its turn: no bursts
        batch_size = max(1, min(batch_size, int(rate // 10)))
    rows = read_subscribers(subscribers, default_language=built.language, stats=report.stats,
                            display=display or str(subscribers), skip=ledger.sent_among)
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

    if backend.reports_handoff:
        backend.on_handoff = ledger.mark_sending
        backend.on_outcome = on_outcome
    try:
        backend.open(message)  # connects: a wrong host or password stops here, before anyone is marked
        for batch in _batches(rows, batch_size):
            statuses = ledger.statuses(s.email for s in batch)
            todo: list[Recipient] = []
            for s, what in _classify(batch, statuses, store, resend_uncertain, ledger.lock):
                if not _passed_over(report, what):
                    todo.append(maker(s))
            if not todo:
                continue
            if rate > 0:
                ahead = report.started + (report.attempted + report.in_flight) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if not backend.reports_handoff:
                ledger.mark_sending(todo)
            report.in_flight += len(todo)
            try:
                outcomes = editions.submit(backend, todo)  # may return before all of `todo` is settled
            except BackendError as e:
                outcomes = list(getattr(e, "outcomes", []) or [])
                report.stopped = str(e)
            report.in_flight -= len(outcomes)
            settle(outcomes)
            if report.stopped:
                break
        if not report.stopped:
            try:
                outcomes = backend.finish()
            except BackendError as e:
                outcomes = list(getattr(e, "outcomes", []) or [])
                report.stopped = str(e)
            report.in_flight -= len(outcomes)
            settle(outcomes)
    finally:
        try:
            backend.close()  # first: a backend's sender thread must be done before its hooks go
        finally:
            backend.on_handoff = backend.on_outcome = None
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
            if len(report.failures) < KEEP:
                report.failures.append(o)
        else:
            report.uncertain += 1
            if len(report.uncertain_list) < KEEP:
                report.uncertain_list.append(o)


# --- one test message ------------------------------------------------------------------------


def send_test(built: Built, backend: Backend, address: str, *, keys: SigningKeys,
              store: Store | None = None) -> Outcome:
    """One message to `address`, subject prefixed [TEST]; never recorded in the ledger."""
    try:
        email = normalise_address(address)
    except ValueError as e:
        raise SendError(f"--to {address}: not a valid address: {e}") from None
    if store is not None and store.is_suppressed(email):
        raise SendError(f"--to {email}: this address is on the suppression list; it is never mailed")
    message = prepare_message(built, test=True)
    maker = RecipientMaker(built, keys, unique_ids=True)
    recipient = maker(Subscriber(email=email, name="", language=built.language, fields={}, line=0))
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


__all__ = ["Plan", "SendReport", "make_plan", "send_issue", "send_test", "write_samples", "email_key"]
