"""The SQLite state file: suppressions, the send ledger, and a log of explicit actions.

One file, shared by `newsletter send` and the web app at the same time, so: WAL (readers
never block the writer), a busy timeout (writers wait their turn instead of failing with
"database is locked"), short transactions, and synchronous=NORMAL: in WAL mode a commit
survives the process being killed without an fsync per commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from newsletter.errors import NewsletterError

BUSY_TIMEOUT_MS = 15_000

SCHEMA = [
    # version 1
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
        status      TEXT NOT NULL,             -- pending | sending | sent | failed | uncertain
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
        action TEXT NOT NULL,                  -- unsubscribe | resubscribe | import ...
        email  TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
]


class DatabaseError(NewsletterError):
    """The state file cannot be opened or written (read-only, disk full, locked too long)."""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def email_key(email: str) -> str:
    """How addresses are compared in state: case-insensitively, without surrounding space."""
    return email.strip().lower()


def connect(path: Path, *, readonly: bool = False, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the state file, migrated to the current schema. A writable
    connection first applies unsubscribes spooled while the file was busy (newsletter.store.spool).
    `busy_timeout_ms`: how long a write waits for another writer (default BUSY_TIMEOUT_MS)."""
    if busy_timeout_ms is None:
        busy_timeout_ms = BUSY_TIMEOUT_MS
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000,
                                   isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if readonly:  # SQLite opens lazily: read now, so an unreadable file fails here, not mid-command
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn)
    except sqlite3.Error as e:
        raise DatabaseError(f"{path}: cannot open the state database: {e}") from None
    except OSError as e:
        raise DatabaseError(f"{path}: cannot create the state database: {e.strerror}") from None
    if not readonly:
        from newsletter.store import spool

        try:
            spool.drain(conn, path)
        except (DatabaseError, OSError):
            pass  # still busy: the spool waits for the next chance, and counts as suppressed meanwhile
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(SCHEMA):
        return
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        for i in range(version, len(SCHEMA)):
            for statement in SCHEMA[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {i + 1}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock up front so we never deadlock on upgrade."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise DatabaseError(f"the state database is busy or unwritable: {e}") from None
    try:
        yield conn
    except sqlite3.OperationalError as e:  # disk full, I/O error, read-only: the user's to fix, no traceback
        _rollback(conn)
        raise DatabaseError(f"cannot write the state database: {e}") from None
    except BaseException:
        _rollback(conn)
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(conn)
            raise DatabaseError(f"cannot write the state database: {e}") from None


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: after SQLITE_FULL or an I/O error SQLite may
    already have rolled it back itself, and a second ROLLBACK would hide the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
