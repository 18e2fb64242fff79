"""The SQL both stores share: every statement of the suppression list, the ledger and the
action log, written once in the dialect SQLite and PostgreSQL have in common (upserts with
ON CONFLICT, row values). What differs -- connecting, placeholders, `IN` lists, migrations,
the per-issue lock, bulk loading -- is left to sqlite.py and postgres.py.

One connection per store, used by one thread at a time: `lock` (re-entrant) is held around
every operation and across a whole `transaction()`, so a backend's sender thread, the send
loop and the web app's worker threads take turns in Python rather than in the database.
Transactions nest by joining the outer one (no savepoints), so an operation that is a
transaction on its own (`suppress`) can also be one step of a bigger one (a webhook batch),
and then either all of the batch is written or none of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newsletter.store import spool
from newsletter.store.audience import AUDIENCE_COLUMNS, AudienceSql
from newsletter.store.bounces import COLUMNS as BOUNCE_COLUMNS
from newsletter.store.bounces import BounceOps
from newsletter.store.db import REASONS, STATUSES, DatabaseError, Row, Suppression, email_key, now

#: table -> (columns in copy order, primary key columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "suppressions": (("email", "reason", "source", "detail", "created_at"), ("email",)),
    "ledger": (("issue", "email", "status", "backend", "message_id", "remote_id", "attempts", "last_error",
                "delivery", "created_at", "updated_at"), ("issue", "email")),
    "actions": (("id", "at", "action", "email", "detail"), ("id",)),
    **BOUNCE_COLUMNS,
    **AUDIENCE_COLUMNS,  # subscribers, memberships, consents, forgotten (audience.py)
}

HANDOFF_LOST = "the previous run stopped during the hand-off: it may or may not have been sent"

_UPSERT_OUTCOME = (
    "INSERT INTO ledger (issue, email, status, backend, remote_id, last_error, attempts, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
    " ON CONFLICT (issue, email) DO UPDATE SET status = excluded.status, remote_id = excluded.remote_id,"
    " last_error = excluded.last_error, backend = excluded.backend, updated_at = excluded.updated_at")
_UPSERT_SENDING = (
    "INSERT INTO ledger (issue, email, status, backend, message_id, attempts, created_at, updated_at)"
    " VALUES (?, ?, 'sending', ?, ?, 1, ?, ?)"
    " ON CONFLICT (issue, email) DO UPDATE SET status = 'sending', backend = excluded.backend,"
    " message_id = excluded.message_id, attempts = ledger.attempts + 1, updated_at = excluded.updated_at")

#: (email_key, status, remote_id, error): a backend's answer for one reader, as the ledger keeps it
OutcomeRow = tuple[str, str, str, str]


class SqlStore(BounceOps, AudienceSql):
    """The operations of `newsletter.store.Store` over one DB-API connection."""

    #: what the backend's driver raises; turned into DatabaseError naming `self.name`
    errors: tuple[type[BaseException], ...] = ()
    kind = ""
    #: SQLite only: the file whose unsubscribe spool (newsletter.store.spool) this store honours
    #: and applies. None where writers never wait long enough to need one (PostgreSQL).
    spool_database: Path | None = None

    def __init__(self, conn: Any, name: str):
        self._conn = conn
        #: how the database is shown in messages: a path, or a URL without its password
        self.name = name
        self.lock = threading.RLock()
        self._depth = 0
        self.closed = False  # by close(): operations fail from then on (no reconnecting)

    # --- plumbing the backends fill in ------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), params)

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _in(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        """`column IN (...)` for up to `chunk` values, as SQL and parameters."""
        raise NotImplementedError

    chunk = 500

    def _fail(self, doing: str, e: BaseException) -> DatabaseError:
        return DatabaseError(f"{self.name}: cannot {doing} the state database: {_first_line(e)}")

    def _ready(self) -> None:
        """Called before each operation outside a transaction (PostgreSQL reconnects here)."""

    def _rollback(self) -> None:
        try:
            self._x("ROLLBACK")
        except self.errors:
            pass

    # --- transactions -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen or none do. Nested calls join the outermost transaction."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._ready()
            try:
                self._begin()
            except self.errors as e:
                raise self._fail("write", e) from None
            self._depth = 1
            try:
                yield
            except self.errors as e:  # disk full, I/O error, server gone: the user's to fix, no traceback
                self._rollback()
                raise self._fail("write", e) from None
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    self._x("COMMIT")
                except self.errors as e:
                    self._rollback()
                    raise self._fail("write", e) from None
            finally:
                self._depth = 0

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self.lock:
            if not self._depth:
                self._ready()
            try:
                yield
            except self.errors as e:
                raise self._fail("read", e) from None

    def _among(self, sql: str, params: Sequence[Any], column: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of `sql ... AND column IN keys`, a chunk of keys per query."""
        for i in range(0, len(keys), self.chunk):
            fragment, extra = self._in(column, keys[i:i + self.chunk])
            yield from self._x(f"{sql} AND {fragment}", [*params, *extra]).fetchall()

    # --- the ledger ---------------------------------------------------------------------------

    def mark_handoff(self, issue: str, backend: str, handoffs: Sequence[tuple[str, str]],
                     outcomes: Sequence[OutcomeRow] = ()) -> None:
        """Commit `sending` for `handoffs` ((email_key, message_id)), with earlier `outcomes`, in
        one transaction: the caller is about to make their hand-off irrevocable."""
        stamp = now()
        with self.transaction():
            self._write_outcomes(issue, backend, outcomes, stamp)
            if handoffs:
                self._many(_UPSERT_SENDING, [(issue, key, backend, mid, stamp, stamp) for key, mid in handoffs])

    def start_handoff(self, issue: str, backend: str, handoffs: Sequence[tuple[str, str]],
                      outcomes: Sequence[OutcomeRow] = ()) -> Callable[[], None] | None:
        """`mark_handoff` begun; returns None when it is committed already (here: always), or a
        call that waits for the commit (a database elsewhere, PostgreSQL)."""
        self.mark_handoff(issue, backend, handoffs, outcomes)
        return None

    def record_outcomes(self, issue: str, backend: str, outcomes: Sequence[OutcomeRow]) -> None:
        """Commit backend answers: `sent` or `failed` (or `uncertain`) with the remote id / error."""
        if outcomes:
            with self.transaction():
                self._write_outcomes(issue, backend, outcomes, now())

    def mark_sent(self, issue: str, email: str, *, backend: str = "", remote_id: str = "") -> None:
        self.record_outcomes(issue, backend, [(email_key(email), "sent", remote_id, "")])

    def mark_failed(self, issue: str, email: str, error: str, *, backend: str = "") -> None:
        self.record_outcomes(issue, backend, [(email_key(email), "failed", "", error)])

    def _write_outcomes(self, issue: str, backend: str, outcomes: Sequence[OutcomeRow], stamp: str) -> None:
        if outcomes:
            self._many(_UPSERT_OUTCOME, [(issue, key, status, backend, remote, error, stamp, stamp)
                                         for key, status, remote, error in outcomes])

    def recover(self, issue: str) -> int:
        """Turn rows left `sending` by a killed run into `uncertain`; returns how many."""
        with self.transaction():
            cur = self._x("UPDATE ledger SET status = 'uncertain', updated_at = ?, last_error = ?"
                          " WHERE issue = ? AND status = 'sending'", (now(), HANDOFF_LOST, issue))
            return int(cur.rowcount)

    def statuses(self, issue: str, emails: Iterable[str]) -> dict[str, str]:
        """email_key -> status for those of `emails` that have a row."""
        keys = [email_key(e) for e in emails]
        with self._reading():
            return dict(self._among("SELECT email, status FROM ledger WHERE issue = ?", (issue,), "email", keys))

    def sent_among(self, issue: str, keys: Sequence[str]) -> set[str]:
        """Those of `keys` (email_key()s) that are `sent`. Looked up by the primary key (issue,
        email) and filtered here: with `AND status = 'sent'` in the query, PostgreSQL's planner,
        without statistics on a ledger that grows under the send, read the (issue, status)
        index instead, every sent row once per batch (a 200,000 send: 73 s of 89)."""
        return {key for key, status in self.statuses(issue, keys).items() if status == "sent"}

    def counts(self, issue: str) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        with self._reading():
            for status, n in self._x("SELECT status, count(*) FROM ledger WHERE issue = ? GROUP BY status",
                                     (issue,)).fetchall():
                out[status] = int(n)
        return out

    def rows(self, issue: str, status: str, limit: int | None = None) -> list[Row]:
        sql = ("SELECT email, status, backend, message_id, remote_id, attempts, last_error, updated_at"
               " FROM ledger WHERE issue = ? AND status = ? ORDER BY email")
        params: list[Any] = [issue, status]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reading():
            return [Row(*r) for r in self._x(sql, params).fetchall()]

    def record_delivery(self, issue: str, email: str, delivery: str, replaces: Collection[str]) -> bool:
        """Set the ledger row's delivery status (from an ESP event) if its current one is in
        `replaces` (so a late event never moves it backwards). True if it changed."""
        if not replaces:
            return False
        fragment, extra = self._in("delivery", sorted(replaces))
        with self.transaction():
            cur = self._x("UPDATE ledger SET delivery = ?, updated_at = ?"
                          f" WHERE issue = ? AND email = ? AND {fragment}",
                          [delivery, now(), issue, email_key(email), *extra])
            return bool(cur.rowcount)

    # --- suppressions ---------------------------------------------------------------------------

    def suppress(self, email: str, reason: str, *, source: str = "", detail: str = "", log: bool = True) -> bool:
        """Suppress `email` (idempotent). Returns True if it was not suppressed before."""
        return self.suppress_many([(email, reason, source, detail)], log=log) == 1

    def suppress_many(self, rows: Iterable[tuple[str, str, str, str]], *, log: bool = True) -> int:
        """Suppress many (email, reason, source, detail) in one transaction; returns how many
        were new. An address already suppressed keeps its first reason."""
        new = 0
        stamp = now()
        with self.transaction():
            for email, reason, source, detail in rows:
                if reason not in REASONS:
                    raise ValueError(f"unknown suppression reason {reason!r}")
                key = email_key(email)
                cur = self._x("INSERT INTO suppressions (email, reason, source, detail, created_at)"
                              " VALUES (?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
                              (key, reason, source, detail, stamp))
                if cur.rowcount:
                    new += 1
                    if log:
                        self._log(stamp, "suppress", key, f"{reason} via {source}: {detail}".strip(": "))
        return new

    def resubscribe(self, email: str, *, source: str = "", detail: str = "",
                    only: Collection[str] | None = None) -> bool:
        """Lift a suppression (explicit, logged). Returns True if there was one and it was lifted;
        with `only`, a suppression of another reason is left alone (and False returned)."""
        key = email_key(email)
        with self.transaction():
            row = self._x("SELECT reason FROM suppressions WHERE email = ?", (key,)).fetchone()
            if row is None or (only is not None and row[0] not in only):
                return False
            self._x("DELETE FROM suppressions WHERE email = ?", (key,))
            self._log(now(), "resubscribe", key, f"via {source}: {detail}".strip(": "))
            return True

    def suppression(self, email: str) -> Suppression | None:
        """The suppression of `email`, if any."""
        with self._reading():
            row = self._x("SELECT email, reason, source, detail, created_at FROM suppressions WHERE email = ?",
                          (email_key(email),)).fetchone()
        return Suppression(*row) if row else None

    def is_suppressed(self, email: str) -> bool:
        """Suppressed in the database, or unsubscribed into the spool and not yet applied."""
        return email_key(email) in self.spooled() or self.suppression(email) is not None

    def suppressed_among(self, emails: Iterable[str]) -> set[str]:
        """Which of `emails` (by email_key) are suppressed. Unsubscribes still waiting in the
        spool count: every caller (send, dry run, status) must never mail them either."""
        keys = [email_key(e) for e in emails]
        spooled = self.spooled()
        found = {k for k in keys if k in spooled}
        with self._reading():
            found.update(r[0] for r in self._among("SELECT email FROM suppressions WHERE 1 = 1", (), "email", keys))
        return found

    def spooled(self) -> set[str]:
        """Addresses (email keys) in the unsubscribe spool, not yet applied (none without a spool)."""
        return spool.pending(self.spool_database) if self.spool_database is not None else set()

    def drain_spool(self) -> int:
        """Apply the unsubscribe spool and empty it; how many entries were applied. Raises
        DatabaseError (spool untouched) when the database stays busy."""
        if self.spool_database is None:
            return 0
        with self.lock:
            return spool.drain(self, self.spool_database)

    def all_suppressions(self) -> Iterator[Suppression]:
        """Every suppression by address, read a page at a time (memory stays flat)."""
        for row in self.dump("suppressions"):
            yield Suppression(*row)

    # --- the action log -----------------------------------------------------------------------

    def log_action(self, action: str, email: str = "", detail: str = "") -> None:
        """Record an explicit action (import, resubscribe, ...) in the log."""
        with self.transaction():
            self._log(now(), action, email_key(email), detail)

    def _log(self, stamp: str, action: str, key: str, detail: str) -> None:
        self._x("INSERT INTO actions (at, action, email, detail) VALUES (?, ?, ?, ?)", (stamp, action, key, detail))

    def actions(self) -> list[tuple[str, str, str, str]]:
        """(at, action, email, detail) in the order they happened."""
        with self._reading():
            return [tuple(r) for r in self._x("SELECT at, action, email, detail FROM actions ORDER BY id").fetchall()]

    # --- whole tables, for `newsletter db copy` ----------------------------------------------

    def count(self, table: str) -> int:
        _columns(table)
        with self._reading():
            return int(self._x(f"SELECT count(*) FROM {table}").fetchone()[0])

    def dump(self, table: str, page: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Every row of `table` in primary-key order, a page per query (keyset pagination, so no
        cursor stays open between pages and memory stays flat)."""
        columns, key = _columns(table)
        cols = ", ".join(columns)
        order = ", ".join(key)
        after: list[Any] | None = None
        where = f"({order}) > ({', '.join('?' * len(key))})"
        index = [columns.index(k) for k in key]
        while True:
            with self._reading():
                if after is None:
                    rows = self._x(f"SELECT {cols} FROM {table} ORDER BY {order} LIMIT ?", (page,)).fetchall()
                else:
                    rows = self._x(f"SELECT {cols} FROM {table} WHERE {where} ORDER BY {order} LIMIT ?",
                                   (*after, page)).fetchall()
            yield from (tuple(r) for r in rows)
            if len(rows) < page:
                return
            after = [rows[-1][i] for i in index]

    def load(self, table: str, rows: Iterable[Sequence[Any]]) -> int:
        """Insert `rows` (in dump()'s column order) into `table` inside the caller's transaction."""
        columns, _ = _columns(table)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        n = 0
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 5000:
                self._many(sql, batch)
                n += len(batch)
                batch = []
        if batch:
            self._many(sql, batch)
            n += len(batch)
        return n

    def optimize(self) -> None:
        """Refresh the planner's statistics after a bulk load (what the database's own
        maintenance would do a little later: SQLite's `PRAGMA optimize`, PostgreSQL's VACUUM)."""
        with self._reading():
            self._x("PRAGMA optimize")

    def close(self) -> None:
        with self.lock:
            self.closed = True
            try:
                self._conn.close()
            except self.errors:
                pass

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _columns(table: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if table not in COLUMNS:
        raise ValueError(f"unknown table {table!r}")
    return COLUMNS[table]


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].strip()
