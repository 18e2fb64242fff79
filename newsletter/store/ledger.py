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

Cost: in WAL mode with synchronous=NORMAL a commit is a write() into the WAL, with no
fsync (only checkpoints sync), and survives the process being killed. Outcomes are
buffered and written in the same transaction as the next `sending` mark (or at the end of
each batch), so a message costs one small commit -- measured here at 70-130 us including
the (issue, status) index -- and after a kill at most one message per connection is
left `uncertain`. (A power cut may lose the last commits; that is the
trade synchronous=NORMAL makes, and is outside the kill -9 guarantee.)
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import SendError
from newsletter.store.db import email_key, now, transaction

if TYPE_CHECKING:
    from newsletter.deliver.backends.base import Outcome
    from newsletter.deliver.message import Recipient

STATUSES = ("sending", "sent", "failed", "uncertain")


@dataclass(frozen=True)
class Row:
    email: str
    status: str
    backend: str
    message_id: str
    remote_id: str
    attempts: int
    last_error: str
    updated_at: str


class Ledger:
    """The ledger of one issue, safe to use from several sender threads at once."""

    def __init__(self, conn: sqlite3.Connection, issue: str, backend: str = ""):
        self.conn = conn
        self.issue = issue
        self.backend = backend
        #: Held around every use of `conn`: a backend's sender thread marks and records while
        #: the send loop reads (re-entrant, so a caller may hold it across several reads).
        self.lock = threading.RLock()
        self._lock = self.lock
        self._pending: list[tuple[str, str, str, str]] = []  # status, remote_id, error, email

    # --- reading ----------------------------------------------------------------------------

    def statuses(self, emails: Iterable[str]) -> dict[str, str]:
        """email_key -> status for those of `emails` that have a row."""
        keys = [email_key(e) for e in emails]
        found: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                found.update(self.conn.execute(
                    f"SELECT email, status FROM ledger WHERE issue = ? AND email IN ({marks})",
                    (self.issue, *chunk)))
        return found

    def sent_among(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` (email_key()s) that are `sent`: one indexed lookup each."""
        found: set[str] = set()
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    f"SELECT email FROM ledger WHERE issue = ? AND status = 'sent' AND email IN ({marks})",
                    (self.issue, *chunk)).fetchall()
                found.update(r[0] for r in rows)
        return found

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        with self._lock:
            for status, n in self.conn.execute(
                    "SELECT status, count(*) FROM ledger WHERE issue = ? GROUP BY status", (self.issue,)):
                out[status] = n
        return out

    def rows(self, status: str, limit: int | None = None) -> list[Row]:
        sql = ("SELECT email, status, backend, message_id, remote_id, attempts, last_error, updated_at"
               " FROM ledger WHERE issue = ? AND status = ? ORDER BY email")
        params: tuple[object, ...] = (self.issue, status)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._lock:
            return [Row(*r) for r in self.conn.execute(sql, params)]

    # --- writing ----------------------------------------------------------------------------

    def recover(self) -> int:
        """Turn rows left `sending` by a killed run into `uncertain`; returns how many."""
        with self._lock, transaction(self.conn):
            cur = self.conn.execute(
                "UPDATE ledger SET status = 'uncertain', updated_at = ?,"
                " last_error = 'the previous run stopped during the hand-off: it may or may not have been sent'"
                " WHERE issue = ? AND status = 'sending'", (now(), self.issue))
            return cur.rowcount

    def mark_sending(self, recipients: Sequence[Recipient]) -> None:
        """Commit `sending` for these recipients now (with any buffered outcomes): call it
        right before their hand-off becomes irrevocable."""
        stamp = now()
        rows = [(self.issue, email_key(r.email), self.backend, r.message_id, stamp, stamp) for r in recipients]
        with self._lock, transaction(self.conn):
            self._write_pending()
            self.conn.executemany(
                "INSERT INTO ledger (issue, email, status, backend, message_id, attempts, created_at, updated_at)"
                " VALUES (?, ?, 'sending', ?, ?, 1, ?, ?)"
                " ON CONFLICT (issue, email) DO UPDATE SET status = 'sending', backend = excluded.backend,"
                " message_id = excluded.message_id, attempts = attempts + 1, updated_at = excluded.updated_at",
                rows)

    def record(self, outcomes: Iterable[Outcome], *, flush: bool = False) -> None:
        """Buffer backend outcomes; they are committed with the next mark, or now if `flush`."""
        with self._lock:
            for o in outcomes:
                error = "" if o.status == "sent" else o.detail
                self._pending.append((o.status, o.remote_id or "", error, email_key(o.email)))
            if flush and self._pending:
                with transaction(self.conn):
                    self._write_pending()

    def record_one(self, outcome: Outcome) -> None:
        """Buffer one outcome (from a backend thread); committed with the next mark."""
        error = "" if outcome.status == "sent" else outcome.detail
        item = (outcome.status, outcome.remote_id or "", error, email_key(outcome.email))
        with self._lock:
            self._pending.append(item)

    def flush(self) -> None:
        self.record((), flush=True)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        stamp = now()  # when the outcomes are committed: one clock read per commit, not per reader
        self.conn.executemany(
            "INSERT INTO ledger (issue, email, status, backend, remote_id, last_error, attempts,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (issue, email) DO UPDATE SET status = excluded.status, remote_id = excluded.remote_id,"
            " last_error = excluded.last_error, backend = excluded.backend, updated_at = excluded.updated_at",
            [(self.issue, email, status, self.backend, remote, error, stamp, stamp)
             for status, remote, error, email in self._pending])
        self._pending.clear()


@contextmanager
def issue_lock(database: Path, issue: str) -> Iterator[None]:
    """One sender per issue at a time: a second `send` of the same issue would race the first.

    An flock is released by the kernel when its process dies, so a killed run never
    leaves a stale lock behind.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    path = database.parent / f"send-{issue}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise SendError(f"another `newsletter send` of {issue} is running"
                            + (f" (pid {other})" if other else "") + "; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
