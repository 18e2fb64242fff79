"""Addresses that must never be mailed again: unsubscribed, bounced, complained, removed.

Every send path asks `is_suppressed`/`suppressed_among` right before handing a message
off. Resubscribing is explicit and logged in the `actions` table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from newsletter.store import spool
from newsletter.store.db import email_key, now, transaction

REASONS = ("unsubscribed", "bounced", "complained", "manual", "dropped")


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    source: str
    detail: str
    created_at: str


def suppress(conn: sqlite3.Connection, email: str, reason: str, *, source: str = "", detail: str = "",
             log: bool = True) -> bool:
    """Suppress `email` (idempotent). Returns True if it was not suppressed before."""
    return suppress_many(conn, [(email, reason, source, detail)], log=log) == 1


def suppress_many(conn: sqlite3.Connection, rows: Iterable[tuple[str, str, str, str]], *, log: bool = True) -> int:
    """Suppress many addresses in one transaction; returns how many were new."""
    new = 0
    stamp = now()
    with transaction(conn):
        for email, reason, source, detail in rows:
            if reason not in REASONS:
                raise ValueError(f"unknown suppression reason {reason!r}")
            cur = conn.execute(
                "INSERT INTO suppressions (email, reason, source, detail, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(email) DO NOTHING",
                (email_key(email), reason, source, detail, stamp),
            )
            if cur.rowcount:
                new += 1
                if log:
                    conn.execute("INSERT INTO actions (at, action, email, detail) VALUES (?, 'suppress', ?, ?)",
                                 (stamp, email_key(email), f"{reason} via {source}: {detail}".strip(": ")))
    return new


def resubscribe(conn: sqlite3.Connection, email: str, *, source: str = "", detail: str = "") -> bool:
    """Lift a suppression (explicit, logged). Returns True if there was one."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM suppressions WHERE email = ?", (email_key(email),))
        if cur.rowcount:
            conn.execute("INSERT INTO actions (at, action, email, detail) VALUES (?, 'resubscribe', ?, ?)",
                         (now(), email_key(email), f"via {source}: {detail}".strip(": ")))
        return bool(cur.rowcount)


def is_suppressed(conn: sqlite3.Connection, email: str) -> bool:
    """Suppressed in the database, or unsubscribed into the spool and not yet applied."""
    if email_key(email) in spool.pending_for(conn):
        return True
    return conn.execute("SELECT 1 FROM suppressions WHERE email = ?", (email_key(email),)).fetchone() is not None


def suppressed_among(conn: sqlite3.Connection, emails: Iterable[str]) -> set[str]:
    """Which of `emails` (by email_key) are suppressed; one query per 500 addresses. Unsubscribes
    still waiting in the spool (newsletter.store.spool) count: they are never mailed either."""
    keys = [email_key(e) for e in emails]
    spooled = spool.pending_for(conn)
    found: set[str] = {k for k in keys if k in spooled}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT email FROM suppressions WHERE email IN ({marks})", chunk))
    return found


def all_suppressions(conn: sqlite3.Connection) -> Iterator[Suppression]:
    for row in conn.execute("SELECT email, reason, source, detail, created_at FROM suppressions ORDER BY email"):
        yield Suppression(*row)
