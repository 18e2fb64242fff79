"""`newsletter bounces imaps://...` against a real IMAP server (Dovecot, tests/imap_server.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bouncekit import AUTO_REPLIES, EXPECTED, ORDINARY, SECRET, corpus, state
from tests.conftest import run
from tests.imap_server import DovecotServer


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
        mailed: Path, imap: DovecotServer) -> None:
    names = list(EXPECTED) + list(AUTO_REPLIES) + list(ORDINARY)
    c = imap.client()
    for name in names:
        flags = r"(\Seen)" if name in ("ordinary-newsletter.eml", "qmail.eml") else None
        assert c.append("INBOX", flags, None, corpus(name))[0] == "OK"
    c.logout()
    before = folder(imap, "INBOX")
    assert len(before) == len(names)

    r = run(["bounces", imap.url()], cwd=mailed, env={**SECRET, **imap.env})
    assert r.returncode == 0, r.stderr + imap.log()
    assert r.stdout.strip() == ("7 bounces (5 hard, 2 soft), 3 auto-replies ignored, 2 unrecognised left in place,"
                                " 5 addresses newly suppressed")
    after, processed = folder(imap, "INBOX"), folder(imap, "processed")
    assert len(processed) == 7 and len(after) == 5
    for mid, flags in after.items():
        assert flags == before[mid], "left exactly as it was: not marked read, not flagged"
    assert sorted(after.values()) == ["", "", "", "", "\\Seen"], "one was read before, none was marked read by us"
    assert {k for k, in state(mailed, "SELECT email FROM suppressions")} == {
        e for e, k, _s in EXPECTED.values() if k == "hard"}

    again = run(["bounces", imap.url()], cwd=mailed, env={**SECRET, **imap.env})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 bounces (0 hard, 0 soft), 3 auto-replies ignored, 2 unrecognised")
    assert folder(imap, "INBOX") == after
    assert state(mailed, "SELECT count(*) FROM bounces") == [(7,)]


def test_imap_refusals_are_one_line_without_the_password(mailed: Path, imap: DovecotServer) -> None:
    wrong = run(["bounces", imap.url()], cwd=mailed, env={**imap.env, "NEWSLETTER_IMAP_PASSWORD": "wrong-one"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"{imap.url()}: login refused for bounces"
    missing = run(["bounces", imap.url("NoSuchFolder")], cwd=mailed, env=imap.env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith(f"{imap.url('NoSuchFolder')}: cannot open folder NoSuchFolder")
    untrusted = run(["bounces", imap.url()], cwd=mailed, env={**imap.env, "SSL_CERT_FILE": "/nonexistent"})
    assert untrusted.returncode == 1 and "TLS failed" in untrusted.stderr
    for r in (wrong, missing, untrusted):
        assert "Traceback" not in r.stderr and imap.env["NEWSLETTER_IMAP_PASSWORD"] not in r.stderr + r.stdout


def test_an_imap_folder_deleted_mid_run_stops_with_one_line_keeping_what_was_counted(
        mailed: Path, imap: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.audience.bounces import scan
    from newsletter.audience.mailboxes import ImapSource, MailboxError
    from newsletter.audience.secrets import signing_keys
    from newsletter.store import open_store

    c = imap.client()
    assert c.create("Bounces")[0] == "OK"
    for name in ("postfix.eml", "exim.eml", "gmail.eml"):
        assert c.append("Bounces", None, None, corpus(name))[0] == "OK"

    class Vanishing(ImapSource):
        """The real IMAP source; after the first message another client deletes the folder."""

        def items(self):  # type: ignore[no-untyped-def]
            for n, item in enumerate(super().items()):
                yield item
                if n == 0:
                    assert c.delete("Bounces")[0] == "OK"

    for k, v in imap.env.items():  # the source reads the password and the CA file from the environment
        monkeypatch.setenv(k, v)
    source = Vanishing(imap.url("Bounces"))
    store = open_store(mailed / ".newsletter" / "state.db")
    try:
        with pytest.raises(MailboxError) as e:
            scan(source, store, keys=signing_keys(allow_development=True), bounce_address=None,
                 soft_limit=3, soft_issues=2, batch=1)
        assert str(e.value).startswith(f"{imap.url('Bounces')}: ") and "\n" not in str(e.value)
    finally:
        store.close()
        source.close()
        c.logout()
    # the first bounce was recorded and moved; the second recorded, then its move failed: a bounce is
    # recorded before it is moved, so a rerun over a folder that came back counts it as already counted
    assert len(state(mailed, "SELECT * FROM bounces")) == 2
