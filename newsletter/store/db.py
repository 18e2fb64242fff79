"""What every store shares: how addresses are keyed, timestamps, the row types, and errors.

The rest of the code never sees a connection: it talks to a `Store` (newsletter.store),
and only the modules of this package write SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.errors import NewsletterError

#: Ledger statuses (a row is first `sending`, then one of the others; see ledger.py).
STATUSES = ("sending", "sent", "failed", "uncertain")
#: Why an address is suppressed.
REASONS = ("unsubscribed", "bounced", "complained", "manual", "dropped")
#: The tables `newsletter db copy` moves, in an order that respects nothing but readability
#: (there are no foreign keys between them).
TABLES = ("suppressions", "ledger", "actions", "bounces", "sync_cursors", "subscribers", "memberships",
          "consents", "forgotten")


class DatabaseError(NewsletterError):
    """The state database cannot be opened, read or written (unwritable, unreachable, locked
    too long, a newer schema). The message names the setting, never a password."""


class IssueLocked(DatabaseError):
    """Another `newsletter send` of the same issue holds its lock: says who and since when."""


def now() -> str:
    """A UTC timestamp as stored (text, sortable, microseconds): the same in every backend."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def email_key(email: str) -> str:
    """How addresses are compared in state: case-insensitively, without surrounding space."""
    return email.strip().lower()


@dataclass(frozen=True)
class Row:
    """One ledger row, as `status` shows it."""

    email: str
    status: str
    backend: str
    message_id: str
    remote_id: str
    attempts: int
    last_error: str
    updated_at: str


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    source: str
    detail: str
    created_at: str


@dataclass(frozen=True)
class LockHolder:
    """Who holds an issue's send lock, as recorded when they took it."""

    host: str
    pid: int
    since: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since[:19].replace('T', ' ')} UTC"
