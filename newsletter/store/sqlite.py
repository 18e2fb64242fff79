"""The embedded default: one SQLite file (.newsletter/state.db), zero set-up.

Shared by `newsletter send` and the web app at the same time, so: WAL (readers never block
the writer), a busy timeout (writers wait their turn instead of failing with "database is
locked"), short `BEGIN IMMEDIATE` transactions (take the write lock up front, so a read
never has to be upgraded and deadlock), and synchronous=NORMAL: in WAL mode a commit is a
write() into the WAL with no fsync, and survives the process being killed (a power cut may
lose the last commits; that is the trade, and it is outside the kill -9 guarantee).

The schema version is SQLite's own `user_version`; migrations run inside one BEGIN
IMMEDIATE, so two processes starting at once apply them once.

The per-issue send lock is a row in `send_locks` (host, pid, process start time, since),
written in a transaction: a second sender reads who holds it. A row whose process is gone
(a killed run) is stale and taken over -- the holder's liveness is checked on this machine,
which is where an SQLite file's users are.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    # 2: the per-issue send lock moves from a lock file into the database
    """
    CREATE TABLE send_locks (
        issue   TEXT PRIMARY KEY,
        host    TEXT NOT NULL,
        pid     INTEGER NOT NULL,
        started TEXT NOT NULL DEFAULT '',      -- the holder's process start time (pid reuse)
        since   TEXT NOT NULL
    );
    """,
]


class SqliteStore(SqlStore):
    """The state in one SQLite file."""

    errors = (sqlite3.Error,)
    kind = "sqlite"

    def __init__(self, path: Path, *, name: str, readonly: bool = False, migrate: bool = True):
        self.path = path
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as e:
            raise DatabaseError(f"{name}: cannot open the state database: {e}") from None
        except OSError as e:
            raise DatabaseError(f"{name}: cannot create the state database: {e.strerror}") from None
        super().__init__(conn, name)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # SQLite opens lazily: read now, so an unreadable file fails here, not mid-command
            version = self.schema_version()
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
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
        """One sender per issue at a time; raises IssueLocked naming the holder."""
        me = LockHolder(socket.gethostname(), os.getpid(), now())
        started = _process_start(me.pid)
        with self.transaction():
            row = self._x("SELECT host, pid, started, since FROM send_locks WHERE issue = ?", (issue,)).fetchone()
            if row is not None:
                host, pid, their_start, since = row
                if host != me.host or _alive(pid, their_start):
                    raise IssueLocked(_locked_message(issue, LockHolder(host, pid, since)))
            self._x("INSERT INTO send_locks (issue, host, pid, started, since) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (issue) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
                    " started = excluded.started, since = excluded.since",
                    (issue, me.host, me.pid, started, me.since))
        try:
            yield
        finally:
            try:
                with self.transaction():
                    self._x("DELETE FROM send_locks WHERE issue = ? AND host = ? AND pid = ?",
                            (issue, me.host, me.pid))
            except DatabaseError:
                pass  # left behind, it is stale as soon as this process ends

    def checkpoint(self) -> None:
        """Fold the WAL back into the file (after a bulk load, so the copy is one file)."""
        with self._reading():
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _check_version(name: str, version: int) -> None:
    if version > len(MIGRATIONS):
        raise DatabaseError(f"{name}: the state database has schema version {version}, newer than this "
                            f"newsletter knows ({len(MIGRATIONS)}): upgrade newsletter to use it")


def _locked_message(issue: str, holder: LockHolder) -> str:
    return (f"another `newsletter send` of {issue} is running ({holder}); wait for it to finish")


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _process_start(pid) in ("", started)
