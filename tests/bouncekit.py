"""Shared by the bounce tests: a project that has sent an issue (so the ledger knows its
readers), and the bounce corpus of tests/data/bounces filled in for it."""

from __future__ import annotations

import hashlib
import mailbox
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO, run
from tests.sendkit import SLUG, make_project

CORPUS = REPO / "tests" / "data" / "bounces"
SECRET = {"NEWSLETTER_SECRET": "bounce-test-secret-0123456789abcdef"}
BOUNCES = "bounces@example.org"
SENDER = "newsletter@example.org"
ISSUE = f"issues/{SLUG}.yaml"

#: Each format's failed reader, and what it must be judged as.
EXPECTED = {
    "postfix.eml": ("ada@example.org", "hard", "5.1.1"),
    "exim.eml": ("marie.curie@example.net", "hard", "5.1.1"),
    "exchange.eml": ("ales.b@contoso.example.com", "hard", "5.1.10"),
    "gmail.eml": ("nobody.here@gmail.example", "hard", "5.1.1"),
    "yahoo.eml": ("gone.reader@yahoo.example", "hard", ""),
    "qmail.eml": ("full.box@example.info", "soft", "5.2.2"),
    "rfc3464.eml": ("slow.server@example.edu", "soft", "4.4.1"),
}
AUTO_REPLIES = ("autoreply-vacation.eml", "autoreply-outlook.eml", "autoreply-challenge.eml")
ORDINARY = ("ordinary-reply.eml", "ordinary-newsletter.eml")
#: Readers mailed but never bouncing, and one whose bounce only VERP can name (forwarded mail).
QUIET = ("quiet@example.org", "forwarded@example.org")
CONFIG = {"bounces.address": BOUNCES}


def sent_project(root: Path, settings: Mapping[str, object] = CONFIG) -> Path:
    """A project whose issue went out (outbox) to every reader the corpus names."""
    make_project(root, settings=settings)
    readers = [e for e, _k, _s in EXPECTED.values()] + list(QUIET)
    (root / "subscribers.csv").write_text("email,name,language,city\n" + "".join(f"{e},,en,\n" for e in readers))
    r = run(["send", ISSUE, "--yes"], cwd=root, env=SECRET)
    assert r.returncode == 0, r.stderr
    return root


def return_path(root: Path, email: str) -> str:
    """The VERP envelope sender the outbox wrote for `email`."""
    first = (root / "outbox" / SLUG / f"{email}.eml").read_bytes().split(b"\r\n", 1)[0].decode()
    assert first.startswith("Return-Path: <") and first.endswith(">"), first
    return first[len("Return-Path: <"):-1]


def corpus(name: str, to: str = SENDER) -> bytes:
    raw = (CORPUS / name).read_bytes()
    return raw.replace(b"@@TO@@", to.encode()).replace(b"@@ISSUE@@", SLUG.encode())


def maildir(path: Path, messages: dict[str, bytes], *, seen: tuple[str, ...] = ()) -> dict[str, Path]:
    """A Maildir with one file per message: in new/, or in cur/ flagged seen if named in `seen`."""
    mailbox.Maildir(path, create=True).close()
    out = {}
    for i, (name, raw) in enumerate(messages.items()):
        if name in seen:
            p = path / "cur" / f"1322470{i:03d}.M{i}P1.test:2,S"
        else:
            p = path / "new" / f"1322470{i:03d}.M{i}P1.test"
        p.write_bytes(raw)
        out[name] = p
    return out


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder`."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def state(root: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(root / ".newsletter" / "state.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
