"""Bounces: what the mail servers sent back, and the rule that turns them into suppressions.

A hard bounce (permanent, 5.x.x) suppresses the address at once, keeping the status code,
the server's diagnostic and the issue as evidence. A soft bounce (temporary, 4.x.x, a full
mailbox) is only counted: a full mailbox empties, a greylisting server accepts the retry.
The address is suppressed once it has soft-bounced `soft_limit` times across at least
`soft_issues` different issues, so one bad day at a provider never removes anyone.

Each bounce message is recorded under its key (Message-ID, else a hash of its bytes) once
per address: a rerun over the same mailbox, or a crash between recording and moving the
message, counts nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.store.db import email_key, now, transaction

KINDS = ("hard", "soft")
SOURCE = "bounce"

#: Ledger delivery values a bounce may overwrite: a delivery status only moves forward
#: (the webhook's ranking: "" < deferred < delivered < blocked/dropped/soft-bounced < bounced).
_BEFORE = {"hard": ("", "deferred", "delivered", "blocked", "dropped", "soft-bounced"),
           "soft": ("", "deferred", "delivered")}
_DELIVERY = {"hard": "bounced", "soft": "soft-bounced"}


@dataclass(frozen=True)
class Bounce:
    message_key: str
    email: str
    issue: str
    kind: str  # hard | soft
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Recorded:
    new: bool  # False: this message was already counted for this address
    suppressed: bool  # the address was newly suppressed by this bounce


def known_message(conn: sqlite3.Connection, message_key: str) -> bool:
    """Whether a bounce message with this key has already been counted."""
    return conn.execute("SELECT 1 FROM bounces WHERE message_key = ? LIMIT 1", (message_key,)).fetchone() is not None


def mailed_issues(conn: sqlite3.Connection, email: str) -> list[str]:
    """The issues this address has a ledger row for, most recently touched first: a DSN
    naming an address never mailed has none, and must not suppress anyone."""
    rows = conn.execute("SELECT issue FROM ledger WHERE email = ? ORDER BY updated_at DESC", (email_key(email),))
    return [r[0] for r in rows]


def ledger_issues(conn: sqlite3.Connection) -> list[str]:
    """Every issue the ledger knows (VERP tokens are matched against these)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT issue FROM ledger")]


def issue_readers(conn: sqlite3.Connection, issue: str) -> list[str]:
    """Every address the ledger has for `issue`."""
    return [r[0] for r in conn.execute("SELECT email FROM ledger WHERE issue = ?", (issue,))]


def soft_bounce_count(conn: sqlite3.Connection, email: str) -> tuple[int, int]:
    """(soft bounces, different issues they came from) recorded for `email`."""
    n, issues = conn.execute("SELECT count(*), count(DISTINCT issue) FROM bounces WHERE email = ? AND kind = 'soft'",
                             (email_key(email),)).fetchone()
    return n, issues


def record_bounces(conn: sqlite3.Connection, bounces: Iterable[Bounce], *, soft_limit: int,
                   soft_issues: int) -> list[Recorded]:
    """Record bounces in one transaction: count them, mark the ledger's delivery column,
    and suppress (as `bounced`) where the rule says so. Idempotent per (message, address)."""
    out: list[Recorded] = []
    stamp = now()
    with transaction(conn):
        for b in bounces:
            if b.kind not in KINDS:
                raise ValueError(f"unknown bounce kind {b.kind!r}")
            key = email_key(b.email)
            cur = conn.execute(
                "INSERT INTO bounces (message_key, email, issue, kind, status, diagnostic, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_key, email) DO NOTHING",
                (b.message_key, key, b.issue, b.kind, b.status, b.diagnostic, stamp))
            if not cur.rowcount:
                out.append(Recorded(new=False, suppressed=False))
                continue
            if b.issue:
                before = _BEFORE[b.kind]
                conn.execute(
                    f"UPDATE ledger SET delivery = ?, updated_at = ? WHERE issue = ? AND email = ?"
                    f" AND delivery IN ({','.join('?' * len(before))})",
                    (_DELIVERY[b.kind], stamp, b.issue, key, *before))
            evidence = " ".join(x for x in (b.status, b.diagnostic) if x) or "no diagnostic given"
            detail = ""
            if b.kind == "hard":
                detail = f"{evidence} (issue {b.issue})" if b.issue else evidence
            else:
                n, issues = conn.execute(
                    "SELECT count(*), count(DISTINCT issue) FROM bounces WHERE email = ? AND kind = 'soft'",
                    (key,)).fetchone()
                if n >= soft_limit and issues >= soft_issues:
                    detail = f"{n} soft bounces across {issues} issues; last: {evidence}" + (
                        f" (issue {b.issue})" if b.issue else "")
            suppressed = False
            if detail:
                cur = conn.execute(
                    "INSERT INTO suppressions (email, reason, source, detail, created_at)"
                    " VALUES (?, 'bounced', ?, ?, ?) ON CONFLICT(email) DO NOTHING",
                    (key, SOURCE, detail[:1000], stamp))
                if cur.rowcount:
                    suppressed = True
                    conn.execute("INSERT INTO actions (at, action, email, detail) VALUES (?, 'suppress', ?, ?)",
                                 (stamp, key, f"bounced via {SOURCE}: {detail[:1000]}"))
            out.append(Recorded(new=True, suppressed=suppressed))
    return out


def bounce_counts(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    """{'hard': n, 'soft': n}: different addresses that bounced for `issue`, by kind."""
    out = dict.fromkeys(KINDS, 0)
    for kind, n in conn.execute("SELECT kind, count(DISTINCT email) FROM bounces WHERE issue = ? GROUP BY kind",
                                (issue,)):
        out[kind] = n
    return out


def delivery_counts(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    """The ledger's delivery column for `issue`, counted (empty values left out)."""
    return dict(conn.execute("SELECT delivery, count(*) FROM ledger WHERE issue = ? AND delivery != ''"
                             " GROUP BY delivery", (issue,)).fetchall())


def sync_cursor(conn: sqlite3.Connection, name: str) -> str | None:
    """Where the last sync of an ESP list stopped (e.g. the newest `created` time seen)."""
    row = conn.execute("SELECT value FROM sync_cursors WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def set_sync_cursor(conn: sqlite3.Connection, name: str, value: str) -> None:
    with transaction(conn):
        conn.execute("INSERT INTO sync_cursors (name, value, updated_at) VALUES (?, ?, ?)"
                     " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                     (name, value, now()))


def settle_uncertain(conn: sqlite3.Connection, rows: Iterable[tuple[str, str, str, str]]) -> int:
    """Settle `uncertain` ledger rows from an ESP's word: (issue, email, sent|failed, why).
    Only `uncertain` rows change: a reader already sent or failed keeps its record."""
    rows = [(status, why if status == "failed" else "", why, now(), issue, email_key(email))
            for issue, email, status, why in rows if status in ("sent", "failed")]
    if not rows:
        return 0
    n = 0
    with transaction(conn):
        for status, error, _why, stamp, issue, email in rows:
            n += conn.execute("UPDATE ledger SET status = ?, last_error = ?, updated_at = ?"
                              " WHERE issue = ? AND email = ? AND status = 'uncertain'",
                              (status, error, stamp, issue, email)).rowcount
    return n


def report_counts(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    """What `newsletter report ISSUE` shows: the ledger's send and delivery statuses for the issue,
    and the unsubscribes and complaints attributed to it.

    An unsubscribe or complaint is attributed to the last issue sent to that reader before it
    happened (the ledger row's created_at: when its hand-off began)."""
    out = {"sent": 0, "failed": 0, "uncertain": 0, "sending": 0}
    for status, n in conn.execute("SELECT status, count(*) FROM ledger WHERE issue = ? GROUP BY status", (issue,)):
        out[status] = n
    delivery = delivery_counts(conn, issue)
    out["delivered"] = delivery.get("delivered", 0)
    out["deferred"] = delivery.get("deferred", 0)
    out["dropped"] = delivery.get("dropped", 0)
    out["hard_bounces"] = delivery.get("bounced", 0)
    out["soft_bounces"] = delivery.get("soft-bounced", 0) + delivery.get("blocked", 0)
    out["unsubscribes"] = out["complaints"] = 0
    rows = conn.execute(
        "SELECT s.reason, count(*) FROM suppressions s"
        " JOIN ledger l ON l.email = s.email AND l.issue = ? AND l.status = 'sent' AND l.created_at <= s.created_at"
        " WHERE s.reason IN ('unsubscribed', 'complained') AND NOT EXISTS ("
        "   SELECT 1 FROM ledger l2 WHERE l2.email = s.email AND l2.status = 'sent'"
        "   AND l2.created_at > l.created_at AND l2.created_at <= s.created_at)"
        " GROUP BY s.reason", (issue,))
    for reason, n in rows:
        out["unsubscribes" if reason == "unsubscribed" else "complaints"] = n
    return out


def report_issues(conn: sqlite3.Connection) -> list[str]:
    """Every issue in the ledger, oldest send first."""
    return [r[0] for r in conn.execute("SELECT issue FROM ledger GROUP BY issue ORDER BY min(created_at), issue")]
