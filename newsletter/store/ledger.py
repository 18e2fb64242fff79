"""Who has been sent what: the resumable send record, one row per (issue, recipient).

The rule that makes a kill -9 at any moment safe:

    1. a row is marked `sending` in a COMMITTED write before its hand-off can become
       irrevocable (for SMTP: before the final "." of DATA; for an HTTP API: before the
       request), and only the rows actually being handed off are marked;
    2. `sent` / `failed` are written after the backend answers;
    3. a new run first turns leftover `sending` rows into `uncertain`: the process died
       between 1 and 2, so nobody knows whether the server took the message. They are
       shown by `status` and resent only with --resend-uncertain.

Everything else is decided from these rows, never from a cursor: a rerun re-reads the
subscriber list and skips `sent` rows, so the checkpoint only ever advances after a
hand-off succeeded (listmonk's mistake was advancing it when a batch was fetched).

The same holds when the database goes away instead of the sender (a PostgreSQL restart):
the mark that fails to commit stops the hand-off, the send stops with one line, and the
rerun recovers exactly as after a kill.

Cost: outcomes are buffered and written in the same transaction as the next `sending`
mark (or at the end of each batch), so a message costs one small commit, and after a kill
at most one message per connection is left `uncertain`. With SQLite in WAL mode and
synchronous=NORMAL that commit is a write() into the WAL, no fsync (measured at 70-130 us);
with PostgreSQL it is one round trip and the server's commit, which the SMTP send overlaps
with building its next message (`start_sending`): the mark is sent, the message built, and
the commit waited for before the final ".".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from newsletter.store.db import STATUSES, Row, email_key

if TYPE_CHECKING:
    from newsletter.deliver.backends.base import Outcome
    from newsletter.deliver.message import Recipient
    from newsletter.store import Store

__all__ = ["STATUSES", "Ledger", "Row"]


class Ledger:
    """The ledger of one issue over a Store, safe to use from several sender threads at once."""

    def __init__(self, store: Store, issue: str, backend: str = ""):
        self.store = store
        self.issue = issue
        self.backend = backend
        #: the store's lock: a caller may hold it across several reads
        self.lock: threading.RLock = store.lock
        self._pending: list[tuple[str, str, str, str]] = []  # email, status, remote_id, error
        self._buffer = threading.Lock()

    # --- reading ----------------------------------------------------------------------------

    def statuses(self, emails: Iterable[str]) -> dict[str, str]:
        """email_key -> status for those of `emails` that have a row."""
        return self.store.statuses(self.issue, emails)

    def sent_among(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` (email_key()s) that are `sent`."""
        return self.store.sent_among(self.issue, keys)

    def resumed(self) -> bool:
        """Has anyone had this issue already? Only then is it worth asking, chunk by chunk of
        the list, who has (`sent_among`): a first send would ask a million times for nothing
        (the send loop's own check, `statuses`, decides either way)."""
        return bool(self.store.rows(self.issue, "sent", limit=1))

    def counts(self) -> dict[str, int]:
        return self.store.counts(self.issue)

    def rows(self, status: str, limit: int | None = None) -> list[Row]:
        return self.store.rows(self.issue, status, limit)

    # --- writing ----------------------------------------------------------------------------

    def recover(self) -> int:
        """Turn rows left `sending` by a killed run into `uncertain`; returns how many."""
        return self.store.recover(self.issue)

    def mark_sending(self, recipients: Sequence[Recipient]) -> None:
        """Commit `sending` for these recipients now (with any buffered outcomes): call it
        right before their hand-off becomes irrevocable."""
        committed = self.start_sending(recipients)
        if committed is not None:
            committed()

    def start_sending(self, recipients: Sequence[Recipient]) -> Callable[[], None] | None:
        """`mark_sending` begun: None when it is committed already, else a call that returns once
        it is (and raises if it failed). The hand-off waits for that call; what the sender does
        meanwhile (build its next message) overlaps the database's commit."""
        handoffs = [(email_key(r.email), r.message_id) for r in recipients]
        with self.lock:
            pending = self._take()
            try:
                wait = self.store.start_handoff(self.issue, self.backend, handoffs, pending)
            except BaseException:
                self._put_back(pending)
                raise
        if wait is None:
            return None

        def committed() -> None:
            try:
                wait()
            except BaseException:
                self._put_back(pending)
                raise

        return committed

    def record(self, outcomes: Iterable[Outcome], *, flush: bool = False) -> None:
        """Buffer backend outcomes; they are committed with the next mark, or now if `flush`."""
        items = [_row(o) for o in outcomes]
        with self._buffer:
            self._pending.extend(items)
        if flush:
            self.flush()

    def record_one(self, outcome: Outcome) -> None:
        """Buffer one outcome (from a backend thread); committed with the next mark."""
        item = _row(outcome)
        with self._buffer:
            self._pending.append(item)

    def flush(self) -> None:
        with self.lock:
            pending = self._take()
            if not pending:
                return
            try:
                self.store.record_outcomes(self.issue, self.backend, pending)
            except BaseException:
                self._put_back(pending)
                raise

    def _take(self) -> list[tuple[str, str, str, str]]:
        with self._buffer:
            pending, self._pending = self._pending, []
        return pending

    def _put_back(self, pending: list[tuple[str, str, str, str]]) -> None:
        with self._buffer:
            self._pending[:0] = pending


def _row(o: Outcome) -> tuple[str, str, str, str]:
    return (email_key(o.email), o.status, o.remote_id or "", "" if o.status == "sent" else o.detail)
