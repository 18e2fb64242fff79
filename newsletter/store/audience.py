"""Subscribers in the store: people, their list memberships, consent records, forgotten people.

    subscribers   one row per person (email_key): address as given, name, language, merge fields
    memberships   (list, email) -> pending | confirmed | unsubscribed, with when a confirmation
                  message was last sent (the per-address rate limit, shared by every `serve`)
    consents      how each membership was asked for: through which form or import, when it was
                  requested and confirmed, the form's wording version, a keyed hash of the client IP
    forgotten     keyed hashes of erased addresses (`subscribers forget`): no import or form adds
                  them again without a new confirmation

Every statement is written once here, in the SQL SQLite and PostgreSQL share; SqlStore
mixes this in, so both stores run it (and the contract suite checks both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from newsletter.store.db import email_key, now

MEMBERSHIP_STATUSES = ("pending", "confirmed", "unsubscribed")

#: table -> (columns in copy order, primary key columns): merged into sql.COLUMNS
AUDIENCE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "subscribers": (("email", "address", "name", "language", "fields", "created_at", "updated_at"), ("email",)),
    "memberships": (("list", "email", "status", "source", "confirm_sent_at", "created_at", "updated_at"),
                    ("list", "email")),
    "consents": (("list", "email", "requested_at", "method", "form_url", "wording", "ip_hash", "confirmed_at"),
                 ("list", "email", "requested_at")),
    "forgotten": (("hash", "at"), ("hash",)),
}

#: the schema, in the dialect both share (PostgreSQL adds COLLATE "C" to its text keys)
AUDIENCE_SCHEMA = """
CREATE TABLE subscribers (
    email      TEXT{C} PRIMARY KEY,       -- email_key()
    address    TEXT NOT NULL,             -- as normalised from the source (case of the local part kept)
    name       TEXT NOT NULL DEFAULT '',
    language   TEXT NOT NULL DEFAULT '',
    fields     TEXT NOT NULL DEFAULT '{{}}',  -- merge fields, JSON with sorted keys
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE memberships (
    list            TEXT{C} NOT NULL,     -- the [lists.<id>] key
    email           TEXT{C} NOT NULL,
    status          TEXT{C} NOT NULL,     -- pending | confirmed | unsubscribed
    source          TEXT NOT NULL DEFAULT '',  -- import | form | cli | page | one-click
    confirm_sent_at TEXT{C} NOT NULL DEFAULT '',
    created_at      TEXT{C} NOT NULL,
    updated_at      TEXT{C} NOT NULL,
    PRIMARY KEY (list, email)
);
CREATE INDEX memberships_status ON memberships (list, status, email);
CREATE INDEX memberships_email ON memberships (email);
CREATE TABLE consents (
    list         TEXT{C} NOT NULL,
    email        TEXT{C} NOT NULL,
    requested_at TEXT{C} NOT NULL,
    method       TEXT NOT NULL,           -- form | import
    form_url     TEXT NOT NULL DEFAULT '', -- the form's URL, or the imported file's name
    wording      TEXT NOT NULL DEFAULT '', -- the form's wording version
    ip_hash      TEXT NOT NULL DEFAULT '', -- keyed hash of the client address (never the address)
    confirmed_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (list, email, requested_at)
);
CREATE TABLE forgotten (
    hash TEXT{C} PRIMARY KEY,             -- keyed hash of an erased email_key()
    at   TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Member:
    """A person on a list, as a send or an export reads them."""

    email: str  # the address as stored (normalised)
    name: str
    language: str
    fields: dict[str, str]
    status: str = "confirmed"


@dataclass
class ImportCounts:
    """What `subscribers import` did, row by row (an import of the same file twice: all unchanged)."""

    added: int = 0  # new to the list
    updated: int = 0  # already on it: name, language or fields changed
    unchanged: int = 0
    unsubscribed: int = 0  # left the list before: not re-subscribed
    suppressed: int = 0  # on the suppression list: not added
    forgotten: int = 0  # erased on request: not added without a new confirmation
    confirmed_pending: int = 0  # of `updated`: pending signups the import confirmed


@dataclass(frozen=True)
class ImportRow:
    address: str
    name: str
    language: str
    fields: dict[str, str] = field(default_factory=dict)
    forget_hashes: tuple[str, ...] = ()  # the address's keyed hashes under every key (see audience.privacy)


@dataclass(frozen=True)
class Signup:
    """What a signup form POST found and did (never shown to the visitor: the page is the same)."""

    status: str  # the membership's status after: pending | confirmed | unsubscribed
    new: bool  # a new pending membership was created
    send_confirmation: bool  # this request may send the confirmation message (rate limit per address)
    suppressed: bool = False
    forgotten: bool = False
    stamp: str = ""  # when the confirmation was claimed: the confirm token carries it


def _fields_json(fields: dict[str, str]) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class AudienceSql:
    """The subscriber operations of `Store`, over SqlStore's plumbing (`_x`, `_many`, `_among`,
    `transaction`, `_reading`, `_log`)."""

    # provided by SqlStore
    _x: Any
    _many: Any
    _among: Any
    transaction: Any
    _reading: Any
    _log: Any
    chunk: int

    # --- import -------------------------------------------------------------------------------

    def import_members(self, list_key: str, rows: Sequence[ImportRow], *, source: str,
                       counts: ImportCounts | None = None) -> ImportCounts:
        """Add or update one chunk of people on `list_key`, in one transaction.

        Never re-subscribes: an `unsubscribed` membership, a suppressed address and a forgotten
        one are counted and left alone. A pending signup the organisation imports is confirmed
        (the file is the organisation's own consent record). Nothing changes for a row equal to
        what is stored, so importing the same file twice writes nothing the second time."""
        counts = counts if counts is not None else ImportCounts()
        if not rows:
            return counts
        stamp = now()
        keys = [email_key(r.address) for r in rows]
        with self.transaction():
            people = {r[0]: r[1:] for r in self._among(
                "SELECT email, name, language, fields FROM subscribers WHERE 1 = 1", (), "email", keys)}
            # by address alone, the list filtered here: given `list = ? AND email IN (...)`, SQLite's
            # planner (no statistics) scans the list's whole status index, and the import slows as the
            # list grows (148 s instead of 30 s for 1,000,000 rows: bench/lists.py)
            status = {r[0]: r[2] for r in self._among(
                "SELECT email, list, status FROM memberships WHERE 1 = 1", (), "email", keys) if r[1] == list_key}
            suppressed = {r[0] for r in self._among("SELECT email FROM suppressions WHERE 1 = 1", (), "email", keys)}
            hashes = [h for r in rows for h in r.forget_hashes]
            gone = {r[0] for r in self._among("SELECT hash FROM forgotten WHERE 1 = 1", (), "hash", hashes)} \
                if hashes else set()
            upsert_people: list[tuple[Any, ...]] = []
            new_members: list[tuple[Any, ...]] = []
            confirm: list[tuple[Any, ...]] = []
            consents: list[tuple[Any, ...]] = []
            for key, r in zip(keys, rows, strict=True):
                st = status.get(key)
                if st == "unsubscribed":
                    counts.unsubscribed += 1
                    continue
                if key in suppressed:
                    counts.suppressed += 1
                    continue
                if st is None and gone.intersection(r.forget_hashes):
                    counts.forgotten += 1
                    continue
                fields = _fields_json(r.fields)
                before = people.get(key)
                changed = before is None or tuple(before) != (r.name, r.language, fields)
                if changed:
                    upsert_people.append((key, r.address, r.name, r.language, fields, stamp, stamp))
                if st is None:
                    new_members.append((list_key, key, "confirmed", source, stamp, stamp))
                    consents.append((list_key, key, stamp, "import", source, "", "", stamp))
                    counts.added += 1
                elif st == "pending":
                    confirm.append((stamp, list_key, key))
                    consents.append((list_key, key, stamp, "import", source, "", "", stamp))
                    counts.confirmed_pending += 1
                    counts.updated += 1
                elif changed:
                    counts.updated += 1
                else:
                    counts.unchanged += 1
            if upsert_people:
                self._many("INSERT INTO subscribers (email, address, name, language, fields, created_at, updated_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET"
                           " address = excluded.address, name = excluded.name, language = excluded.language,"
                           " fields = excluded.fields, updated_at = excluded.updated_at", upsert_people)
            if new_members:
                self._many("INSERT INTO memberships (list, email, status, source, created_at, updated_at)"
                           " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (list, email) DO NOTHING", new_members)
            if confirm:
                self._many("UPDATE memberships SET status = 'confirmed', updated_at = ?"
                           " WHERE list = ? AND email = ? AND status = 'pending'", confirm)
            if consents:
                self._many("INSERT INTO consents (list, email, requested_at, method, form_url, wording, ip_hash,"
                           " confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", consents)
        return counts

    # --- reading a list -----------------------------------------------------------------------

    def members(self, list_key: str, statuses: Sequence[str] = ("confirmed",), page: int = 2000) -> Iterator[Member]:
        """The people of a list with one of `statuses`, by address, a page per query (keyset
        pagination: no cursor stays open, memory stays flat at a million members)."""
        wanted = [s for s in statuses if s in MEMBERSHIP_STATUSES]
        marks = ", ".join("?" * len(wanted))
        after = ""
        while True:
            with self._reading():
                rows = self._x(
                    "SELECT m.email, s.address, s.name, s.language, s.fields, m.status FROM memberships m"
                    " JOIN subscribers s ON s.email = m.email"
                    f" WHERE m.list = ? AND m.status IN ({marks}) AND m.email > ? ORDER BY m.email LIMIT ?",
                    (list_key, *wanted, after, page)).fetchall()
            for r in rows:
                yield Member(email=r[1], name=r[2], language=r[3], fields=json.loads(r[4] or "{}"), status=r[5])
            if len(rows) < page:
                return
            after = rows[-1][0]

    def member_counts(self, list_key: str | None = None) -> dict[str, dict[str, int]]:
        """list -> status -> count (every list, or one)."""
        with self._reading():
            if list_key is None:
                rows = self._x("SELECT list, status, count(*) FROM memberships GROUP BY list, status").fetchall()
            else:
                rows = self._x("SELECT list, status, count(*) FROM memberships WHERE list = ? GROUP BY list, status",
                               (list_key,)).fetchall()
        out: dict[str, dict[str, int]] = {}
        for lst, st, n in rows:
            out.setdefault(lst, dict.fromkeys(MEMBERSHIP_STATUSES, 0))[st] = int(n)
        return out

    def unsubscribed_among(self, list_key: str, emails: Iterable[str]) -> set[str]:
        """Which of `emails` (by email_key) left `list_key`: a CSV source never brings them back."""
        keys = [email_key(e) for e in emails]
        with self._reading():
            return {r[0] for r in self._among(
                "SELECT email FROM memberships WHERE list = ? AND status = 'unsubscribed'", (list_key,), "email", keys)}

    def membership(self, list_key: str, email: str) -> str | None:
        with self._reading():
            row = self._x("SELECT status FROM memberships WHERE list = ? AND email = ?",
                          (list_key, email_key(email))).fetchone()
        return row[0] if row else None

    # --- one person's membership --------------------------------------------------------------

    def set_membership(self, list_key: str, email: str, status: str, *, source: str = "", detail: str = "") -> bool:
        """Put `email` on `list_key` with `status` (unsubscribe from one list, or come back to it:
        explicit, logged). A person the store does not know yet is recorded with their address
        only. Returns True if something changed."""
        if status not in MEMBERSHIP_STATUSES:
            raise ValueError(f"unknown membership status {status!r}")
        key = email_key(email)
        stamp = now()
        with self.transaction():
            self._x("INSERT INTO subscribers (email, address, created_at, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (email) DO NOTHING", (key, email.strip(), stamp, stamp))
            cur = self._x("INSERT INTO memberships (list, email, status, source, created_at, updated_at)"
                          " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (list, email) DO UPDATE SET status = excluded.status,"
                          " source = excluded.source, updated_at = excluded.updated_at"
                          " WHERE memberships.status <> excluded.status", (list_key, key, status, source, stamp, stamp))
            changed = bool(cur.rowcount)
            if changed:
                action = {"unsubscribed": "unsubscribe-list", "confirmed": "resubscribe-list"}.get(status, "pending")
                self._log(stamp, action, key, f"{list_key} via {source}: {detail}".strip(": "))
        return changed

    # --- the signup form ----------------------------------------------------------------------

    def signup(self, list_key: str, address: str, name: str, language: str, *, form_url: str, wording: str,
               ip_hash: str, forget_hashes: Sequence[str], resend_after: str) -> Signup:
        """Record a signup form POST in one transaction: a pending membership with its consent
        record (requested now, not confirmed yet) unless the address is on the list already,
        and whether this request may send the confirmation message: only if none was sent
        since `resend_after` (a timestamp), decided by one conditional UPDATE, so of 200
        concurrent POSTs of one address exactly one wins, whichever `serve` process they reach.

        A confirmed member and a suppressed address get no message. Someone who unsubscribed
        stays unsubscribed until they confirm again (then they get one). `Signup.stamp` is the
        confirmation's time: the confirm token carries it, and only that token confirms."""
        key = email_key(address)
        stamp = now()
        with self.transaction():
            if self._x("SELECT 1 FROM suppressions WHERE email = ?", (key,)).fetchone() is not None:
                return Signup(status="", new=False, send_confirmation=False, suppressed=True)
            row = self._x("SELECT status FROM memberships WHERE list = ? AND email = ?", (list_key, key)).fetchone()
            if row is not None and row[0] == "confirmed":
                return Signup(status="confirmed", new=False, send_confirmation=False)
            forgotten = bool(forget_hashes) and self._x(
                "SELECT 1 FROM forgotten WHERE hash IN (" + ", ".join("?" * len(forget_hashes)) + ")",
                tuple(forget_hashes)).fetchone() is not None
            self._x("INSERT INTO subscribers (email, address, name, language, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING",
                    (key, address, name, language, stamp, stamp))
            new = bool(self._x("INSERT INTO memberships (list, email, status, source, created_at, updated_at)"
                               " VALUES (?, ?, 'pending', 'form', ?, ?) ON CONFLICT (list, email) DO NOTHING",
                               (list_key, key, stamp, stamp)).rowcount)
            claimed = bool(self._x("UPDATE memberships SET confirm_sent_at = ? WHERE list = ? AND email = ?"
                                   " AND status IN ('pending', 'unsubscribed') AND confirm_sent_at < ?",
                                   (stamp, list_key, key, resend_after)).rowcount)
            if new or claimed:  # a consent record per request that can be confirmed
                self._x("INSERT INTO consents (list, email, requested_at, method, form_url, wording, ip_hash)"
                        " VALUES (?, ?, ?, 'form', ?, ?, ?) ON CONFLICT DO NOTHING",
                        (list_key, key, stamp, form_url, wording, ip_hash))
            return Signup(status="pending" if row is None else row[0], new=new, send_confirmation=claimed,
                          forgotten=forgotten, stamp=stamp)

    def confirm(self, list_key: str, email: str, stamp: str) -> bool:
        """The confirm button of the message sent at `stamp`: pending (or unsubscribed, signing
        up again) -> confirmed, and that request's consent record gets its confirmation time.
        Only the latest message's link works, and not once the person unsubscribed after it was
        sent; a replayed link changes nothing. Returns True if this call confirmed."""
        key = email_key(email)
        at = now()
        with self.transaction():
            cur = self._x("UPDATE memberships SET status = 'confirmed', source = 'form', updated_at = ?"
                          " WHERE list = ? AND email = ? AND status IN ('pending', 'unsubscribed')"
                          " AND confirm_sent_at = ? AND (status = 'pending' OR updated_at <= ?)",
                          (at, list_key, key, stamp, stamp))
            if not cur.rowcount:
                return False
            self._x("UPDATE consents SET confirmed_at = ? WHERE list = ? AND email = ? AND requested_at = ?",
                    (at, list_key, key, stamp))
            self._log(at, "confirm", key, f"{list_key} via form")
        return True

    def unforget(self, hashes: Sequence[str]) -> int:
        """A forgotten person confirmed a new signup: their keyed hashes are lifted."""
        if not hashes:
            return 0
        with self.transaction():
            cur = self._x("DELETE FROM forgotten WHERE hash IN (" + ", ".join("?" * len(hashes)) + ")", tuple(hashes))
            return int(cur.rowcount)

    def expire_pending(self, before: str) -> int:
        """Forget signups never confirmed since `before`: their pending memberships and consent
        records, and the person if they are on no other list. Returns how many."""
        with self.transaction():
            keys = [r[0] for r in self._x("SELECT email FROM memberships WHERE status = 'pending' AND created_at < ?",
                                          (before,)).fetchall()]
            self._x("DELETE FROM consents WHERE confirmed_at = '' AND method = 'form' AND requested_at < ?"
                    " AND EXISTS (SELECT 1 FROM memberships m WHERE m.list = consents.list AND m.email = consents.email"
                    " AND m.status = 'pending')", (before,))
            self._x("DELETE FROM memberships WHERE status = 'pending' AND created_at < ?", (before,))
            if keys:
                self._log(now(), "expire-pending", "", f"{len(keys)} unconfirmed signups older than {before}")
            for i in range(0, len(keys), self.chunk):
                self._x("DELETE FROM subscribers WHERE email IN (" + ", ".join("?" * len(keys[i:i + self.chunk]))
                        + ") AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.email = subscribers.email)",
                        tuple(keys[i:i + self.chunk]))
        return len(keys)

    # --- a person's data (GDPR articles 15 and 17) --------------------------------------------

    def person(self, email: str) -> dict[str, Any]:
        """Everything stored about `email`: the person, memberships, consents, sends, suppression, actions."""
        key = email_key(email)
        with self._reading():
            p = self._x("SELECT address, name, language, fields, created_at, updated_at FROM subscribers"
                        " WHERE email = ?", (key,)).fetchone()
            memberships = self._x("SELECT list, status, source, created_at, updated_at FROM memberships"
                                  " WHERE email = ? ORDER BY list", (key,)).fetchall()
            consents = self._x("SELECT list, requested_at, method, form_url, wording, ip_hash, confirmed_at"
                               " FROM consents WHERE email = ? ORDER BY requested_at", (key,)).fetchall()
            sends = self._x("SELECT issue, status, backend, message_id, updated_at, delivery FROM ledger"
                            " WHERE email = ? ORDER BY created_at", (key,)).fetchall()
            supp = self._x("SELECT reason, source, detail, created_at FROM suppressions WHERE email = ?",
                           (key,)).fetchone()
            actions = self._x("SELECT at, action, detail FROM actions WHERE email = ? ORDER BY id", (key,)).fetchall()
        return {
            "email": key,
            "person": None if p is None else {"address": p[0], "name": p[1], "language": p[2],
                                              "fields": json.loads(p[3] or "{}"), "created_at": p[4],
                                              "updated_at": p[5]},
            "memberships": [dict(zip(("list", "status", "source", "created_at", "updated_at"), r, strict=True))
                            for r in memberships],
            "consents": [dict(zip(("list", "requested_at", "method", "form_url", "wording", "ip_hash", "confirmed_at"),
                                  r, strict=True)) for r in consents],
            "sends": [dict(zip(("issue", "status", "backend", "message_id", "updated_at", "delivery"), r, strict=True))
                      for r in sends],
            "suppression": None if supp is None else dict(zip(("reason", "source", "detail", "created_at"), supp,
                                                              strict=True)),
            "actions": [dict(zip(("at", "action", "detail"), r, strict=True)) for r in actions],
        }

    def forget(self, email: str, hashes: Sequence[str]) -> int:
        """Erase everything about `email` in one transaction and keep only its keyed `hashes`, so
        no import or form mails it again without a new confirmation. The action is logged
        without the address. Returns how many rows were erased."""
        key = email_key(email)
        stamp = now()
        n = 0
        with self.transaction():
            for sql in ("DELETE FROM consents WHERE email = ?", "DELETE FROM memberships WHERE email = ?",
                        "DELETE FROM subscribers WHERE email = ?", "DELETE FROM ledger WHERE email = ?",
                        "DELETE FROM suppressions WHERE email = ?", "DELETE FROM actions WHERE email = ?"):
                n += int(self._x(sql, (key,)).rowcount or 0)
            for h in hashes:
                self._x("INSERT INTO forgotten (hash, at) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING", (h, stamp))
            self._log(stamp, "forget", "", f"{n} rows erased; keyed hash kept")
        return n

    def forgotten_among(self, hashes: Sequence[str]) -> set[str]:
        with self._reading():
            return {r[0] for r in self._among("SELECT hash FROM forgotten WHERE 1 = 1", (), "hash", list(hashes))}

    def has_forgotten(self) -> bool:
        with self._reading():
            return self._x("SELECT 1 FROM forgotten LIMIT 1").fetchone() is not None
