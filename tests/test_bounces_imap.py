"""`newsletter bounces imaps://...` against a real IMAP server (Dovecot, tests/imap_server.py)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bouncekit import AUTO_REPLIES, EXPECTED, ORDINARY, SECRET, corpus, sent_project, state
from tests.conftest import run
from tests.imap_server import DovecotServer


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sent_project(tmp_path_factory.mktemp("sent") / "p")


@pytest.fixture
def proj(sent: Path, tmp_path: Path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(sent, root)
    return root


@pytest.fixture
def imap() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        yield server


def folder(server: DovecotServer, name: str) -> dict[bytes, str]:
    """Message-ID -> flags of every message in `name` (read with EXAMINE: changes nothing)."""
    c = server.client()
    try:
        typ, _ = c.select(name, readonly=True)
        if typ != "OK":
            return {}
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = {}
        for el in data:
            if isinstance(el, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", el[0]).group(1).decode()
                # \Recent is a session mark any SELECT clears (IMAP4rev2 dropped it): not the message's state
                out[el[1].split(b":", 1)[1].strip()] = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
        return out
    finally:
        c.logout()


def test_imap_bounces_move_to_processed_the_rest_stays_unread_and_a_rerun_counts_nothing(
        proj: Path, imap: DovecotServer) -> None:
    names = list(EXPECTED) + list(AUTO_REPLIES) + list(ORDINARY)
    c = imap.client()
    for name in names:
        flags = r"(\Seen)" if name in ("ordinary-newsletter.eml", "qmail.eml") else None
        assert c.append("INBOX", flags, None, corpus(name))[0] == "OK"
    c.logout()
    before = folder(imap, "INBOX")
    assert len(before) == len(names)

    r = run(["bounces", imap.url()], cwd=proj, env={**SECRET, **imap.env})
    assert r.returncode == 0, r.stderr + imap.log()
    assert r.stdout.strip() == ("7 bounces (5 hard, 2 soft), 3 auto-replies ignored, 2 unrecognised left in place,"
                                " 5 addresses newly suppressed")
    after, processed = folder(imap, "INBOX"), folder(imap, "processed")
    assert len(processed) == 7 and len(after) == 5
    for mid, flags in after.items():
        assert flags == before[mid], "left exactly as it was: not marked read, not flagged"
    assert sorted(after.values()) == ["", "", "", "", "\\Seen"], "one was read before, none was marked read by us"
    assert {k for k, in state(proj, "SELECT email FROM suppressions")} == {
        e for e, k, _s in EXPECTED.values() if k == "hard"}

    again = run(["bounces", imap.url()], cwd=proj, env={**SECRET, **imap.env})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 bounces (0 hard, 0 soft), 3 auto-replies ignored, 2 unrecognised")
    assert folder(imap, "INBOX") == after
    assert state(proj, "SELECT count(*) FROM bounces") == [(7,)]


def test_imap_refusals_are_one_line_without_the_password(proj: Path, imap: DovecotServer) -> None:
    wrong = run(["bounces", imap.url()], cwd=proj, env={**imap.env, "NEWSLETTER_IMAP_PASSWORD": "wrong-one"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"{imap.url()}: login refused for bounces"
    missing = run(["bounces", imap.url("NoSuchFolder")], cwd=proj, env=imap.env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith(f"{imap.url('NoSuchFolder')}: cannot open folder NoSuchFolder")
    untrusted = run(["bounces", imap.url()], cwd=proj, env={**imap.env, "SSL_CERT_FILE": "/nonexistent"})
    assert untrusted.returncode == 1 and "TLS failed" in untrusted.stderr
    for r in (wrong, missing, untrusted):
        assert "Traceback" not in r.stderr and imap.env["NEWSLETTER_IMAP_PASSWORD"] not in r.stderr + r.stdout
