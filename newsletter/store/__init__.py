"""All state, behind one interface: the suppression list, the send ledger, the action log.

    store = open_store(config)          # SQLite file or PostgreSQL, per `database`
    with store.issue_lock(slug):        # one sender per issue, across machines
        store.mark_handoff(slug, "smtp", [(key, message_id)])
        ...

Nothing outside this package writes SQL or holds a connection. Two implementations with
identical behaviour (one contract test suite runs against both):

    sqlite.py    the embedded default, a file (.newsletter/state.db): zero set-up
    postgres.py  a server shared by the web app and every sender (psycopg 3, optional)
    sql.py       the statements both share
    bounces.py   bounces, ESP sync cursors, settling uncertain readers, report counts (shared SQL too)
    ledger.py    one issue's ledger for the send loop, buffering outcomes (the kill-safety rule)
    copy.py      `newsletter db copy`: move everything between two stores

Which one: `database` in newsletter.toml (a path, or a postgresql:// URL), overridden by the
environment variable NEWSLETTER_DATABASE. Errors name that setting, never a password.

Adding state (subscribers, lists, consent, bounces...): a migration appended to each
backend's MIGRATIONS, the statements in sql.py (in the backend's module only where the
dialects differ), named operations on `Store`, the table in db.TABLES and sql.COLUMNS so
`newsletter db copy` moves it, and tests in tests/test_store_contract.py, which run against both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from threading import RLock
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from newsletter.store.audience import MEMBERSHIP_STATUSES, ImportCounts, ImportRow, Member, Signup
from newsletter.store.db import (
    REASONS,
    STATUSES,
    TABLES,
    DatabaseError,
    IssueLocked,
    LockHolder,
    Row,
    Suppression,
    email_key,
    now,
)

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store.bounces import Bounce, Recorded

ENV = "NEWSLETTER_DATABASE"
URL_SCHEMES = ("postgresql", "postgres")


class Store(Protocol):
    """The named operations on state. Thread-safe: every operation takes `lock`."""

    name: str  # how the database is shown: a path, or a URL without its password
    kind: str  # "sqlite" | "postgresql"
    lock: RLock

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside happen or none do; nested transactions join the outer one."""
        ...

    def schema_version(self) -> int: ...
    def migrate(self) -> int: ...
    def close(self) -> None: ...

    # the ledger (see ledger.py for the rule that makes a kill at any moment safe)
    def mark_handoff(self, issue: str, backend: str, handoffs: Sequence[tuple[str, str]],
                     outcomes: Sequence[tuple[str, str, str, str]] = ()) -> None: ...
    def start_handoff(self, issue: str, backend: str, handoffs: Sequence[tuple[str, str]],
                      outcomes: Sequence[tuple[str, str, str, str]] = ()) -> Callable[[], None] | None:
        """mark_handoff, perhaps still in flight: None if committed, else a call that waits for it."""
        ...
    def record_outcomes(self, issue: str, backend: str, outcomes: Sequence[tuple[str, str, str, str]]) -> None: ...
    def mark_sent(self, issue: str, email: str, *, backend: str = "", remote_id: str = "") -> None: ...
    def mark_failed(self, issue: str, email: str, error: str, *, backend: str = "") -> None: ...
    def recover(self, issue: str) -> int: ...
    def statuses(self, issue: str, emails: Iterable[str]) -> dict[str, str]: ...
    def sent_among(self, issue: str, keys: Sequence[str]) -> set[str]: ...
    def counts(self, issue: str) -> dict[str, int]: ...
    def rows(self, issue: str, status: str, limit: int | None = None) -> list[Row]: ...
    def record_delivery(self, issue: str, email: str, delivery: str, replaces: Collection[str]) -> bool: ...
    def issue_lock(self, issue: str) -> AbstractContextManager[None]: ...

    # suppressions
    def suppress(self, email: str, reason: str, *, source: str = "", detail: str = "", log: bool = True) -> bool: ...
    def suppress_many(self, rows: Iterable[tuple[str, str, str, str]], *, log: bool = True) -> int: ...
    def resubscribe(self, email: str, *, source: str = "", detail: str = "",
                    only: Collection[str] | None = None) -> bool: ...
    def suppression(self, email: str) -> Suppression | None: ...
    def is_suppressed(self, email: str) -> bool: ...
    def suppressed_among(self, emails: Iterable[str]) -> set[str]: ...
    # SQLite's unsubscribe spool (newsletter/store/spool.py); None / nothing on PostgreSQL
    spool_database: Path | None
    def spooled(self) -> set[str]: ...
    def drain_spool(self) -> int: ...
    def all_suppressions(self) -> Iterator[Suppression]: ...

    # bounces, ESP sync and reports (newsletter/store/bounces.py)
    def record_bounce(self, bounce: Bounce, *, soft_limit: int, soft_issues: int) -> Recorded: ...
    def record_bounces(self, bounces: Iterable[Bounce], *, soft_limit: int, soft_issues: int) -> list[Recorded]: ...
    def known_message(self, message_key: str) -> bool: ...
    def mailed_issues(self, email: str) -> list[str]: ...
    def ledger_issues(self) -> list[str]: ...
    def issue_readers(self, issue: str) -> list[str]: ...
    def soft_bounce_count(self, email: str) -> tuple[int, int]: ...
    def bounces_of(self, email: str) -> Iterator[tuple[str, str, str, str, str]]: ...
    def settle_uncertain(self, rows: Iterable[tuple[str, str, str, str]]) -> int: ...
    def sync_cursor(self, name: str) -> str | None: ...
    def set_sync_cursor(self, name: str, value: str) -> None: ...
    def delivery_counts(self, issue: str) -> dict[str, int]: ...
    def report_counts(self, issue: str) -> dict[str, int]: ...

    # subscribers, lists, consent (audience.py)
    def import_members(self, list_key: str, rows: Sequence[ImportRow], *, source: str,
                       counts: ImportCounts | None = None) -> ImportCounts: ...
    def members(self, list_key: str, statuses: Sequence[str] = ("confirmed",), page: int = 2000
                ) -> Iterator[Member]: ...
    def member_counts(self, list_key: str | None = None) -> dict[str, dict[str, int]]: ...
    def unsubscribed_among(self, list_key: str, emails: Iterable[str]) -> set[str]: ...
    def membership(self, list_key: str, email: str) -> str | None: ...
    def set_membership(self, list_key: str, email: str, status: str, *, source: str = "",
                       detail: str = "") -> bool: ...
    def signup(self, list_key: str, address: str, name: str, language: str, *, form_url: str, wording: str,
               ip_hash: str, forget_hashes: Sequence[str], resend_after: str) -> Signup: ...
    def confirm(self, list_key: str, email: str, stamp: str) -> bool: ...
    def unforget(self, hashes: Sequence[str]) -> int: ...
    def expire_pending(self, before: str) -> int: ...
    def person(self, email: str) -> dict[str, Any]: ...
    def forget(self, email: str, hashes: Sequence[str]) -> int: ...
    def forgotten_among(self, hashes: Sequence[str]) -> set[str]: ...
    def has_forgotten(self) -> bool: ...

    # the action log
    def log_action(self, action: str, email: str = "", detail: str = "") -> None: ...
    def actions(self) -> list[tuple[str, str, str, str]]: ...

    # whole tables (newsletter db copy)
    def count(self, table: str) -> int: ...
    def dump(self, table: str, page: int = 5000) -> Iterator[tuple[Any, ...]]: ...
    def load(self, table: str, rows: Iterable[Sequence[Any]]) -> int: ...
    def optimize(self) -> None: ...


class Target:
    """Where the state lives, and how to name it in a message: the setting it came from and
    the database without a password."""

    def __init__(self, value: str, setting: str, root: Path):
        self.value = value.strip()
        self.setting = setting
        self.is_url = is_url(self.value)
        self.path = None if self.is_url else (root / self.value).resolve()

    @property
    def shown(self) -> str:
        if self.path is not None:
            from newsletter.paths import display

            return display(self.path)
        return redact(self.value)

    def __str__(self) -> str:
        return f"{self.setting} ({self.shown})"


def is_url(value: str) -> bool:
    return "://" in value


def redact(url: str) -> str:
    """The URL without its password (and without a query string, which may carry one)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = ((parts.username + "@") if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return f"{url.split('://', 1)[0]}://…"


def target_of(config: Config | str | Path) -> Target:
    """The database a Config names: NEWSLETTER_DATABASE if set, else its `database` setting.
    A string or path is taken as it is (a path, or a URL), whatever the environment says."""
    from newsletter.paths import display

    if isinstance(config, str | Path):
        return Target(str(config), "database", Path.cwd())
    if os.environ.get(ENV, "").strip():
        return Target(os.environ[ENV], ENV, config.root)
    if config.database_url:
        return Target(config.database_url, f"{display(config.path)}: database", config.root)
    return Target(str(config.database), f"{display(config.path)}: database", config.root)


def store_exists(config: Config | str | Path) -> bool:
    """False only for an SQLite file not created yet (nothing was ever recorded)."""
    t = target_of(config)
    return t.path is None or t.path.exists()


def open_store(config: Config | Target | str | Path, *, readonly: bool = False, migrate: bool = True,
               busy_timeout_ms: int | None = None) -> Store:
    """Open the state `config` names (a Config, a path or a postgresql:// URL), migrated to the
    current schema unless `migrate` is False. `readonly` opens an SQLite file without writing it.

    A writable SQLite store applies the unsubscribe spool as it opens (newsletter.store.spool).
    `busy_timeout_ms`: how long an SQLite write waits for another writer (the web app bounds an
    unsubscribe's wait with it); PostgreSQL writers wait on row locks only and ignore it."""
    t = config if isinstance(config, Target) else target_of(config)
    if t.is_url:
        scheme = t.value.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise DatabaseError(f"{t.setting}: {t.shown}: not a path or a postgresql:// URL")
        try:
            from newsletter.store.postgres import PostgresStore
        except ImportError:
            raise DatabaseError(f"{t.setting} is a PostgreSQL URL, but psycopg is not installed: "
                                "pip install 'newsletter[postgres]'") from None
        try:
            password = urlsplit(t.value).password or ""
        except ValueError:
            password = ""
        return PostgresStore(t.value, name=f"{t.setting} ({t.shown})", password=password, migrate=migrate)
    from newsletter.store.sqlite import SqliteStore

    assert t.path is not None
    return SqliteStore(t.path, name=t.shown, readonly=readonly, migrate=migrate, busy_timeout_ms=busy_timeout_ms)


__all__ = [
    "MEMBERSHIP_STATUSES", "ImportCounts", "ImportRow", "Member", "Signup",
    "ENV", "REASONS", "STATUSES", "TABLES", "DatabaseError", "IssueLocked", "LockHolder", "Row", "Store",
    "Suppression", "Target", "email_key", "now", "open_store", "redact", "store_exists", "target_of",
]
