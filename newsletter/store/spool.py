"""Unsubscribes the web app could not write to the state database in time, kept durably until
they can be.

A reader who unsubscribes while a send (or anything else) holds the database's write lock must
not be lost, nor kept waiting until the mail provider gives up: after a bounded wait the web app
appends the address to an append-only spool file next to the state database, fsyncs it, and
answers 202. Every later chance applies the spool to the suppression list and empties it:
the next web request, every writable SQLite store as it opens (`open_store`: so `send` before it
reads suppressions, and the suppression commands). Until then the store's `is_suppressed` /
`suppressed_among` (newsletter.store.sql) read the spool too, so a spooled reader is never
mailed, even by a send that cannot drain it.

SQLite only: SQLite has one write lock for the whole file, which a send may hold for a moment
the web app cannot wait out. PostgreSQL locks rows, so an unsubscribe never waits for a send
there; its stores have no spool (`spool_database` is None).

One JSON object per line. Writers take an exclusive `flock` on the spool for one `write` +
`fsync`; a drain reads under the lock, applies without it (the database may make it wait), then
removes exactly the lines it applied. Applying twice changes nothing (suppressions are "insert
if absent"), so a crash between applying and emptying is harmless. A line torn by a crash mid-
write is skipped; the next append starts on a fresh line.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.store.db import email_key, now

if TYPE_CHECKING:
    from newsletter.store import Store

SUFFIX = ".unsubscribe-spool"


def spool_path(database: Path) -> Path:
    """The spool of `database`: same folder, same name plus SUFFIX."""
    return database.with_name(database.name + SUFFIX)


@contextmanager
def _locked(path: Path, flags: int) -> Iterator[int]:
    """The spool open and exclusively locked; reopened if a drain replaced the file meanwhile."""
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # also releases the lock


def append(database: Path, email: str, source: str, list_key: str | None = None) -> None:
    """Record an unsubscribe durably (on disk when this returns): from everything, or with
    `list_key` from that one list (a project with several lists). Raises OSError if it cannot."""
    path = spool_path(database)
    existed = path.exists()
    item = {"email": email_key(email), "source": source, "at": now()}
    if list_key is not None:
        item["list"] = list_key
    line = json.dumps(item, ensure_ascii=False) + "\n"
    with _locked(path, os.O_RDWR | os.O_CREAT | os.O_APPEND) as fd:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a crash: start a fresh one
            line = "\n" + line
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    if not existed:  # the new file's name must survive a crash too
        _fsync_dir(path.parent)


def _parse(data: bytes) -> list[tuple[str, str, str, str | None]]:
    """(email, source, at, list key or None) of every complete, well-formed line."""
    entries = []
    for raw in data.split(b"\n"):
        try:
            item = json.loads(raw)
            email, source, at = str(item["email"]), str(item.get("source", "")), str(item.get("at", ""))
            list_key = str(item["list"]) if item.get("list") else None
        except (ValueError, TypeError, KeyError):
            continue  # empty or torn
        if "@" in email:
            entries.append((email, source, at, list_key))
    return entries


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size == 0:
            return b""
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def pending(database: Path) -> set[str]:
    """Addresses (email keys) spooled from everything and not yet applied. Cheap when there are none.
    (An unsubscribe from one list of several is applied at the next chance but not counted here.)"""
    return {email for email, _, _, list_key in _parse(_read(spool_path(database))) if list_key is None}


def drain(store: Store, database: Path) -> int:
    """Apply the spool of `database` to `store`'s suppression list (one transaction), then remove
    what was applied. Returns how many entries were applied. Raises DatabaseError (spool
    untouched) when the database stays busy."""
    path = spool_path(database)
    data = _read(path)
    if not data:
        return 0
    entries = _parse(data)
    if entries:
        with store.transaction():
            store.suppress_many([(email, "unsubscribed", source, f"spooled at {at}: the database was busy")
                                 for email, source, at, list_key in entries if list_key is None])
            for email, source, at, list_key in entries:
                if list_key is not None:
                    store.set_membership(list_key, email, "unsubscribed", source=source,
                                         detail=f"spooled at {at}: the database was busy")
    with _locked(path, os.O_RDWR | os.O_CREAT) as fd:
        current = os.pread(fd, os.fstat(fd).st_size, 0)
        if not current.startswith(data):  # another drain got here first and already removed these
            data = b""
        rest = current[len(data):]
        if not rest:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        else:  # appended meanwhile: keep exactly those, replacing the file atomically
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(rest)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)  # appenders waiting on the old file's lock notice and reopen
            _fsync_dir(path.parent)
    return len(entries)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
