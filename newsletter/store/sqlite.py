"""The embedded default: one SQLite file (.newsletter/state.db), zero set-up.

Shared by `newsletter send` and the web app at the same time, so: WAL (readers never block
the writer), a busy timeout (writers wait their turn instead of failing with "database is
locked"), short `BEGIN IMMEDIATE` transactions (take the write lock up front, so a read
never has to be upgraded and deadlock), and synchronous=NORMAL: in WAL mode a commit is a
write() into the WAL with no fsync, and survives the process being killed (a power cut may
lose the last commits; that is the trade, and it is outside the kill -9 guarantee).

The schema version is SQLite's own `user_version`; migrations run inside one BEGIN
IMMEDIATE, so two processes starting at once apply them once.

The per-issue send lock is an flock on `send-<issue>.lock` beside the database (the kernel
drops it when the holder dies), and who holds it since when is a row in `send_locks`, so a
second sender can say.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newsletter.paths import display
from newsletter.store.audience import AUDIENCE_SCHEMA
from newsletter.store.bounces import SQLITE_MIGRATION
from newsletter.store.db import DatabaseError, IssueLocked, LockHolder, now
from newsletter.store.sql import SqlStore

BUSY_TIMEOUT_MS = 15_000

MIGRATIONS = [
    # 1
    """
    CREATE TABLE suppressions (
        email      TEXT PRIMARY KEY,           -- email_key(): trimmed, lower-cased
        reason     TEXT NOT NULL,              -- unsubscribed | bounced | complained | manual | dropped
        source     TEXT NOT NULL DEFAULT '',   -- one-click | page | cli | import | sendgrid-webhook ...
        detail     TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE ledger (
        issue       TEXT NOT NULL,
        email       TEXT NOT NULL,             -- email_key()
        status      TEXT NOT NULL,             -- sending | sent | failed | uncertain
        backend     TEXT NOT NULL DEFAULT '',
        message_id  TEXT NOT NULL DEFAULT '',
        remote_id   TEXT NOT NULL DEFAULT '',
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT NOT NULL DEFAULT '',
        delivery    TEXT NOT NULL DEFAULT '',  -- from ESP events: delivered | deferred | bounced
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (issue, email)
    ) WITHOUT ROWID;
    CREATE INDEX ledger_status ON ledger (issue, status);
    CREATE TABLE actions (
        id     INTEGER PRIMARY KEY,
        at     TEXT NOT NULL,
        action TEXT NOT NULL,                  -- suppress | resubscribe | import ...
        email  TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: who holds each issue's send lock, and since when
    """
    CREATE TABLE send_locks (
        issue   TEXT PRIMARY KEY,
        host    TEXT NOT NULL,
        pid     INTEGER NOT NULL,
        since   TEXT NOT NULL
    );
    """,
    # 2: bounces (`newsletter bounces`) and ESP sync cursors (`suppressions sync`)
    SQLITE_MIGRATION,
    # 4: subscribers, list memberships, consent records, forgotten people (audience.py)
    AUDIENCE_SCHEMA.format(C=""),
]


class SqliteStore(SqlStore):
    """The state in one SQLite file."""

    errors = (sqlite3.Error,)
    kind = "sqlite"

    def __init__(self, path: Path, *, name: str, readonly: bool = False, migrate: bool = True,
                 busy_timeout_ms: int | None = None):
        self.path = path
        self.spool_database = path
        if busy_timeout_ms is None:
            busy_timeout_ms = BUSY_TIMEOUT_MS  # read at call time: the torture suite shortens it
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000,
                                       isolation_level=None, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as e:
            raise DatabaseError(f"{name}: cannot open the state database: {e}") from None
        except OSError as e:
            raise DatabaseError(f"{name}: cannot create the state database: {e.strerror}") from None
        super().__init__(conn, name)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # SQLite opens lazily: read now, so an unreadable file fails here, not mid-command
            version = self.schema_version()
            if not readonly:
                _use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
            _check_version(name, version)
            if migrate and not readonly and version < len(MIGRATIONS):
                self.migrate()
        except sqlite3.Error as e:
            conn.close()
            raise DatabaseError(f"{name}: cannot open the state database: {e}") from None
        except DatabaseError:
            conn.close()
            raise
        if not readonly:
            try:
                self.drain_spool()
            except (DatabaseError, OSError):
                pass  # still busy: the spool waits for the next chance, and counts as suppressed meanwhile

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        # after SQLITE_FULL or an I/O error SQLite may have rolled back already; a second
        # ROLLBACK would hide the real error
        if self._conn.in_transaction:
            super()._rollback()

    def _in(self, column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def _fail(self, doing: str, e: BaseException) -> DatabaseError:
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e) and doing == "write":
            return DatabaseError(f"{self.name}: the state database is busy or unwritable: {e}")
        return super()._fail(doing, e)

    # --- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._reading():
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version it was at."""
        with self.transaction():
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])  # another process may have won
            _check_version(self.name, version)
            for i in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {i + 1}")
        return version

    # --- the per-issue send lock ----------------------------------------------------------------

    @contextmanager
    def issue_lock(self, issue: str) -> Iterator[None]:
        """One sender per issue at a time; raises IssueLocked naming the holder.

        Who holds it is decided by the kernel: an flock on a file beside the database
        (released when its process dies, so a killed run never leaves a stale lock, whatever
        its pid or host name was). Who that is, and since when, is a row in `send_locks`."""
        lock_path = self.path.parent / f"send-{issue}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DatabaseError(f"{display(lock_path)}: cannot create the send lock: {e.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with self._reading():
                    row = self._x("SELECT host, pid, since FROM send_locks WHERE issue = ?", (issue,)).fetchone()
                holder = f" ({LockHolder(*row)})" if row else ""
                raise IssueLocked(f"another `newsletter send` of {issue} is running{holder}; "
                                  "wait for it to finish") from None
            me = LockHolder(socket.gethostname(), os.getpid(), now())
            with self.transaction():
                self._x("INSERT INTO send_locks (issue, host, pid, since) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (issue) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
                        " since = excluded.since", (issue, me.host, me.pid, me.since))
            try:
                yield
            finally:
                try:
                    with self.transaction():
                        self._x("DELETE FROM send_locks WHERE issue = ? AND host = ? AND pid = ?",
                                (issue, me.host, me.pid))
                except DatabaseError:
                    pass  # informational only: the flock is the lock
        finally:
            os.close(fd)

    def checkpoint(self) -> None:
        """Fold the WAL back into the file (after a bulk load, so the copy is one file)."""
        with self._reading():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (once per file; later opens find it set). Switching needs a moment alone
    with the file and SQLite does not wait for it (the busy timeout does not apply), so two
    processes creating the file at once would see "database is locked": retry within the
    busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _check_version(name: str, version: int) -> None:
    if version > len(MIGRATIONS):
        raise DatabaseError(f"{name}: the state database has schema version {version}, newer than this "
                            f"newsletter knows ({len(MIGRATIONS)}): upgrade newsletter to use it")
