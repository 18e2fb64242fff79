"""`newsletter bounces SOURCE` over Maildir and mbox, as a user runs it: real processes, a real
state file, the corpus of tests/data/bounces (one bounce per server format, auto-replies and
ordinary mail that must be left alone)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from newsletter.audience.bounces import MAX_SCAN, classify, scan
from newsletter.audience.mailboxes import MailboxError, MaildirSource
from newsletter.audience.secrets import signing_keys
from newsletter.store import open_store
from tests.bouncekit import (
    AUTO_REPLIES,
    BOUNCES,
    CONFIG,
    EXPECTED,
    ORDINARY,
    SECRET,
    SENDER,
    corpus,
    maildir,
    return_path,
    sent_project,
    snapshot,
    state,
)
from tests.conftest import run
from tests.sendkit import SLUG

ALL = {**{n: corpus(n) for n in EXPECTED}, **{n: corpus(n) for n in AUTO_REPLIES + ORDINARY}}


def suppressed(root: Path) -> dict[str, tuple[str, str, str]]:
    return {e: (r, s, d) for e, r, s, d in state(root, "SELECT email, reason, source, detail FROM suppressions")}


def test_every_format_is_judged_right_from_the_corpus() -> None:
    for name, (email, kind, status) in EXPECTED.items():
        f = classify(corpus(name), bounce_address=BOUNCES)
        assert f.kind == "bounce", name
        assert [(x.email, x.kind, x.status) for x in f.failures] == [(email, kind, status)], name
        assert f.failures[0].diagnostic, f"{name}: the server's words are kept as evidence"
        assert f.issue_hint == SLUG, name
    for name in AUTO_REPLIES:
        assert classify(corpus(name), bounce_address=BOUNCES).kind == "auto-reply", name
    for name in ORDINARY:
        assert classify(corpus(name), bounce_address=BOUNCES).kind == "other", name


def test_maildir_hard_suppressed_soft_counted_the_rest_untouched_and_a_rerun_counts_nothing(mailed: Path) -> None:
    box = mailed / "Maildir"
    files = maildir(box, ALL, seen=("ordinary-reply.eml", "exim.eml"))
    left_alone = {n: files[n].read_bytes() for n in AUTO_REPLIES + ORDINARY}
    r = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("7 bounces (5 hard, 2 soft), 3 auto-replies ignored, 2 unrecognised left in place,"
                                " 5 addresses newly suppressed")
    assert "Traceback" not in r.stderr
    sup = suppressed(mailed)
    hard = {e for e, k, _s in EXPECTED.values() if k == "hard"}
    assert set(sup) == hard, "hard bounces suppressed at once, soft ones only counted"
    reason, source, detail = sup["ada@example.org"]
    assert (reason, source) == ("bounced", "bounce")
    assert "5.1.1" in detail and "User unknown" in detail and f"(issue {SLUG})" in detail
    # auto-replies and ordinary mail: the very same files, same names, same flags, same bytes
    for name, data in left_alone.items():
        assert files[name].exists(), name
        assert files[name].read_bytes() == data
    # bounces moved to the processed folder, keeping their folder (new/cur) and flags
    assert (box / ".processed" / "cur" / files["exim.eml"].name).exists()
    assert (box / ".processed" / "new" / files["postfix.eml"].name).exists()
    assert not files["postfix.eml"].exists()
    # the ledger's delivery column, and `status`
    delivery = dict(state(mailed, "SELECT email, delivery FROM ledger WHERE delivery != ''"))
    assert delivery == {e: ("bounced" if k == "hard" else "soft-bounced") for e, k, _s in EXPECTED.values()}
    st = run(["status", f"issues/{SLUG}.yaml"], cwd=mailed, env=SECRET)
    assert "delivery: bounced 5 · soft-bounced 2" in st.stdout, st.stdout
    # twice: nothing new (the bounces are in processed, the rest is what it was)
    before = snapshot(box)
    again = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 bounces (0 hard, 0 soft), 3 auto-replies ignored, 2 unrecognised")
    assert snapshot(box) == before
    assert state(mailed, "SELECT count(*) FROM bounces") == [(7,)]


def test_a_bounce_recorded_but_not_moved_is_not_counted_again(mailed: Path) -> None:
    """A run killed between recording and moving: the next run moves it, counts nothing."""
    box = mailed / "Maildir"
    files = maildir(box, {"postfix.eml": corpus("postfix.eml")})
    assert run(["bounces", "Maildir"], cwd=mailed, env=SECRET).returncode == 0
    moved = box / ".processed" / "new" / files["postfix.eml"].name
    shutil.move(moved, files["postfix.eml"])  # as if the move had not happened
    r = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert r.stdout.startswith("0 bounces (0 hard, 0 soft)") and "1 already counted" in r.stdout, r.stdout
    assert moved.exists() and not files["postfix.eml"].exists()
    assert state(mailed, "SELECT count(*) FROM bounces") == [(1,)]


def test_mbox_is_only_read_and_remembers_what_it_counted(mailed: Path) -> None:
    box = mailed / "bounces.mbox"
    with box.open("wb") as f:
        for raw in ALL.values():
            f.write(b"From MAILER-DAEMON Thu Nov 28 10:02:11 2011\n" + raw.replace(b"\r\n", b"\n") + b"\n")
    digest = hashlib.sha256(box.read_bytes()).hexdigest()
    r = run(["bounces", "bounces.mbox"], cwd=mailed, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("7 bounces (5 hard, 2 soft), 3 auto-replies ignored, 2 unrecognised")
    again = run(["bounces", "bounces.mbox"], cwd=mailed, env=SECRET)
    assert again.stdout.strip() == ("0 bounces (0 hard, 0 soft), 3 auto-replies ignored, 2 unrecognised left in"
                                    " place, 0 addresses newly suppressed, 7 already counted")
    assert hashlib.sha256(box.read_bytes()).hexdigest() == digest, "the mbox file is never written"
    assert state(mailed, "SELECT count(*) FROM bounces") == [(7,)]


def test_verp_names_the_reader_even_when_the_dsn_names_another_address(mailed: Path) -> None:
    """Mail forwarded from forwarded@ to ada@elsewhere bounces naming ada@: VERP knows better."""
    verp = return_path(mailed, "forwarded@example.org")
    assert verp.startswith("bounces+") and verp.endswith("@example.org") and len(verp.split("@")[0]) <= 64
    maildir(mailed / "Maildir", {"postfix.eml": corpus("postfix.eml", to=verp)})
    r = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 bounces (1 hard, 0 soft)"), r.stdout
    assert set(suppressed(mailed)) == {"forwarded@example.org"}
    assert state(mailed, "SELECT email, issue, kind, status FROM bounces") == [
        ("forwarded@example.org", SLUG, "hard", "5.1.1")]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_format_with_verp(mailed: Path, name: str) -> None:
    email, kind, _status = EXPECTED[name]
    maildir(mailed / "Maildir", {name: corpus(name, to=return_path(mailed, email))})
    r = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert state(mailed, "SELECT email, kind FROM bounces") == [(email, kind)]


def test_a_verp_token_signed_with_another_key_matches_nobody(mailed: Path) -> None:
    verp = return_path(mailed, "quiet@example.org")
    maildir(mailed / "Maildir", {"postfix.eml": corpus("postfix.eml", to=verp)})
    r = run(["bounces", "Maildir"], cwd=mailed, env={"NEWSLETTER_SECRET": "another-secret-0123456789abcdef"})
    assert r.returncode == 0
    assert "matches no reader this list mailed" in r.stderr
    assert suppressed(mailed) == {}


def test_bad_input_each_a_clear_line_nothing_suppressed_wrongly_nothing_deleted(mailed: Path) -> None:
    big = corpus("ordinary-newsletter.eml") + b"x" * (20 << 20)
    big_bounce = corpus("postfix.eml") + (b"Z" * 76 + b"\n") * ((20 << 20) // 77)
    odd = b"From: \xff\xfe Mail Delivery <x@y.org>\nSubject: a detector trips on this\n\nbody\n"
    msgs = {"odd.eml": odd, **{n: corpus(n) for n in ("bad-truncated.eml", "bad-never-mailed.eml",
                                                       "bad-forged-verp.eml")},
            "big.eml": big, "big-bounce.eml": big_bounce}
    files = maildir(mailed / "Maildir", msgs)
    r = run(["bounces", "Maildir"], cwd=mailed, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()

    def line_for(name: str) -> str:
        (found,) = [x for x in lines if x.startswith(f"Maildir:new/{files[name].name}: ")]
        return found

    assert "truncated" in line_for("bad-truncated.eml")
    assert "stranger@example.org, whom this list never mailed: nothing suppressed" in line_for("bad-never-mailed.eml")
    assert "matches no reader this list mailed: forged or foreign" in line_for("bad-forged-verp.eml")
    assert "20.0 MB message: only its first 1 MB was read" in line_for("big.eml")
    assert r.stdout.startswith("1 bounces (1 hard, 0 soft)"), "the big bounce is still recognised from its start"
    assert "20.0 MB message" in line_for("big-bounce.eml") and len(big_bounce) > 20_000_000
    assert set(suppressed(mailed)) == {"ada@example.org"}
    for name in ("odd.eml", "bad-truncated.eml", "bad-never-mailed.eml", "bad-forged-verp.eml", "big.eml"):
        assert files[name].read_bytes() == msgs[name], f"{name} left exactly as it was"


def test_missing_or_wrong_sources_are_one_line_exit_1(mailed: Path) -> None:
    (mailed / "notmail").mkdir()
    (mailed / "notmbox.txt").write_text("hello\n")
    for source, words in [("nowhere", "nowhere: no such Maildir folder or mbox file"),
                          ("notmail", "notmail: not a Maildir (it has no cur/ and new/ folders)"),
                          ("notmbox.txt", "notmbox.txt: not an mbox file"),
                          ("pop3://x@y/INBOX", "pop3://x@y/INBOX: only imaps:// URLs are read"),
                          ("imaps://bounces@127.0.0.1:1/INBOX",
                           "imaps://bounces@127.0.0.1:1/INBOX: NEWSLETTER_IMAP_PASSWORD is not set")]:
        r = run(["bounces", source], cwd=mailed, env={**SECRET, "NEWSLETTER_IMAP_PASSWORD": ""})
        assert r.returncode == 1, source
        assert r.stderr.startswith(words) and r.stderr.count("\n") == 1, (source, r.stderr)
        assert "Traceback" not in r.stderr


def test_a_maildir_that_disappears_mid_run_stops_with_one_line_keeping_what_was_counted(mailed: Path) -> None:
    box = mailed / "Maildir"
    names = ["postfix.eml", "exim.eml", "gmail.eml"]
    maildir(box, {n: corpus(n) for n in names})
    taken = mailed / "taken-away"

    class Vanishing(MaildirSource):
        """The real Maildir source; after two messages another program moves the folder away."""

        def items(self):  # type: ignore[no-untyped-def]
            for n, item in enumerate(super().items()):
                yield item
                if n == 1:
                    shutil.move(box, taken)

    store = open_store(mailed / ".newsletter" / "state.db")
    try:
        with pytest.raises(MailboxError, match="the Maildir disappeared during the run"):
            scan(Vanishing(box, "Maildir"), store, keys=signing_keys(allow_development=True), bounce_address=None,
                 soft_limit=3, soft_issues=2, batch=1)
    finally:
        store.close()
    assert len(list(taken.rglob("*.test"))) == 3, "nothing deleted"
    assert len(state(mailed, "SELECT * FROM bounces")) in (1, 2), "what was counted before stays counted"


def test_soft_limit_comes_from_the_config(tmp_path: Path) -> None:
    root = sent_project(tmp_path / "p", {**CONFIG, "bounces.soft_limit": 1, "bounces.soft_issues": 1})
    maildir(root / "Maildir", {"qmail.eml": corpus("qmail.eml")})
    r = run(["bounces", "Maildir"], cwd=root, env=SECRET)
    assert r.stdout.startswith("1 bounces (0 hard, 1 soft)") and "1 addresses newly suppressed" in r.stdout
    assert "full.box@example.info" in suppressed(root)


def test_outbox_and_smtp_carry_the_verp_envelope_sender(tmp_path: Path) -> None:
    from tests.sendkit import make_project
    from tests.smtp_server import SMTPServer

    with SMTPServer() as server:
        root = make_project(tmp_path / "p", smtp_port=server.port, settings=CONFIG)
        r = run(["send", f"issues/{SLUG}.yaml", "--yes", "--backend", "smtp"], cwd=root, env=SECRET)
        assert r.returncode == 0, r.stderr
        senders = {d.rcpt: d.mail_from for d in server.deliveries}
    assert len(senders) == 4 and len(set(senders.values())) == 4, "one envelope sender per reader"
    assert all(s.startswith("bounces+") and s.endswith("@example.org") for s in senders.values())
    # the same address the outbox would write: the token depends on issue, reader and key only
    root2 = make_project(tmp_path / "q", settings=CONFIG)
    assert run(["send", f"issues/{SLUG}.yaml", "--yes"], cwd=root2, env=SECRET).returncode == 0
    assert return_path(root2, "ada@example.org") == senders["ada@example.org"]
    # without [bounces]: the sender's address, as before
    root3 = make_project(tmp_path / "r")
    assert run(["send", f"issues/{SLUG}.yaml", "--yes"], cwd=root3, env=SECRET).returncode == 0
    assert not (root3 / "outbox" / SLUG / "ada@example.org.eml").read_bytes().startswith(b"Return-Path:")
    assert SENDER in (root3 / "outbox" / SLUG / "ada@example.org.eml").read_text()


def test_max_scan_is_what_the_big_message_test_assumes() -> None:
    assert MAX_SCAN == 1 << 20
