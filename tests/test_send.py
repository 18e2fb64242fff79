"""`newsletter send` and `newsletter status` as a user runs them: real processes, real files."""

from __future__ import annotations

import os
import sqlite3
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.deliver.backends.base import Outcome
from newsletter.deliver.message import Recipient
from newsletter.store import open_store
from newsletter.store.ledger import Ledger
from tests.conftest import run
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer

SECRET = {"NEWSLETTER_SECRET": "send-test-secret-0123456789abcdef"}
NO_SECRET = {"NEWSLETTER_SECRET": ""}
ISSUE = f"issues/{SLUG}.yaml"

CSV = """\
email,name,language,city
ada@example.org,Ada Lovelace,en,London
marie@example.org,Marie Curie,fr,Paris
not-an-address,Broken,en,
ADA@example.org,Ada twice,en,
ales@example.org,Aleś Bialiacki,en,Minsk
@missing.example.org,,en,
gone@example.org,Unsubscribed,en,
sent@example.org,Already,en,
"""


def ledger_rows(root: Path) -> list[tuple]:
    path = root / ".newsletter" / "state.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM ledger ORDER BY issue, email").fetchall()
    finally:
        conn.close()


def _state_with_history(root: Path) -> None:
    """gone@ is suppressed; sent@ already has the issue."""
    conn = open_store(root / ".newsletter" / "state.db")
    conn.suppress("gone@example.org", "unsubscribed", source="test")
    ledger = Ledger(conn, SLUG, "smtp")
    r = Recipient("sent@example.org", None, {}, "<x@example.org>", "<https://x>")
    ledger.mark_sending([r])
    ledger.record([Outcome("sent@example.org", "sent", "250 ok")], flush=True)
    conn.close()


@pytest.fixture
def proj(tmp_path: Path, smtp_server: SMTPServer) -> Path:
    root = make_project(tmp_path / "p", smtp_port=smtp_server.port)
    (root / "subscribers.csv").write_text(CSV)
    return root


def test_dry_run_tells_the_truth_sends_nothing_records_nothing(proj: Path, smtp_server: SMTPServer) -> None:
    _state_with_history(proj)
    before = ledger_rows(proj)
    r = run(["send", ISSUE, "--dry-run", "--backend", "smtp"], cwd=proj, env=NO_SECRET)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "to send 3 suppressed 1 invalid 2 (lines 4, 7) duplicates 1 (line 5) already sent 1" in out
    assert "subscribers.csv:4: email: 'not-an-address': An email address must have an @-sign." in r.stderr
    assert "development key" in r.stderr
    assert "nothing sent, nothing recorded" in out
    assert smtp_server.deliveries == [] and not smtp_server.sessions, "the server was not even contacted"
    assert ledger_rows(proj) == before
    samples = sorted((proj / "build" / SLUG / "samples").glob("*.eml"))
    assert [p.name for p in samples] == ["1-ada@example.org.eml", "2-marie@example.org.eml",
                                         "3-ales@example.org.eml"]
    msg = message_from_bytes(samples[2].read_bytes(), policy=policy.default)
    assert msg["To"].addresses[0].display_name == "Aleś Bialiacki"
    assert "List-Unsubscribe" in msg


def test_dry_run_without_any_state_creates_none(proj: Path) -> None:
    (proj / "other.csv").write_text("email,city\nsolo@example.org,Minsk\n")
    r = run(["send", ISSUE, "--dry-run", "--subscribers", "other.csv"], cwd=proj)
    assert r.returncode == 0, r.stderr
    assert "other.csv: 1 row\n" in r.stdout and "to send" in r.stdout
    assert not (proj / ".newsletter").exists()
    assert not (proj / "outbox").exists()


def test_a_real_send_without_the_signing_key_is_refused(proj: Path, smtp_server: SMTPServer) -> None:
    r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=proj, env=NO_SECRET)
    assert r.returncode == 1
    assert "refusing to send via smtp: NEWSLETTER_SECRET is not set" in r.stderr
    assert "Traceback" not in r.stderr
    assert smtp_server.deliveries == [] and ledger_rows(proj) == []


def test_confirmation_then_send_then_rerun_sends_nothing_more(proj: Path, smtp_server: SMTPServer) -> None:
    _state_with_history(proj)
    no = run(["send", ISSUE, "--backend", "smtp"], cwd=proj, env=SECRET, input="n\n")
    assert no.returncode == 1
    assert "Send to 3 subscribers via smtp? [y/N]" in no.stdout
    assert smtp_server.deliveries == []
    yes = run(["send", ISSUE, "--backend", "smtp"], cwd=proj, env=SECRET, input="y\n")
    assert yes.returncode == 0, yes.stderr
    assert "sent 3 · failed 0 · uncertain 0 · suppressed 1 · already sent 1" in yes.stdout
    assert "\r" not in yes.stdout and "\x1b" not in yes.stdout, "plain lines when piped"
    assert smtp_server.counts() == {"ada@example.org": 1, "marie@example.org": 1, "ales@example.org": 1}
    again = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=proj, env=SECRET)
    assert again.returncode == 0 and "nothing to send" in again.stdout
    assert len(smtp_server.deliveries) == 3
    status = run(["status", ISSUE], cwd=proj)
    assert status.returncode == 0, status.stderr
    assert "sent 4 · pending 0 · failed 0 · uncertain 0" in status.stdout
    assert "1 on the list are suppressed" in status.stdout


def test_test_message_goes_to_one_address_and_is_not_recorded(proj: Path, smtp_server: SMTPServer) -> None:
    r = run(["send", ISSUE, "--backend", "smtp", "--to", "Editor@Example.org"], cwd=proj, env=SECRET)
    assert r.returncode == 0, r.stderr
    assert "test message sent to Editor@example.org via smtp" in r.stdout
    (msg,) = smtp_server.messages("editor@example.org")
    assert msg["Subject"].startswith("[TEST] Brèves de campagne")
    assert len(smtp_server.deliveries) == 1
    assert ledger_rows(proj) == []
    refused = run(["send", ISSUE, "--backend", "smtp", "--to", "nope"], cwd=proj, env=SECRET)
    assert refused.returncode == 1 and "--to nope: not a valid address" in refused.stderr


def test_test_message_to_a_suppressed_address_is_refused(proj: Path, smtp_server: SMTPServer) -> None:
    _state_with_history(proj)
    r = run(["send", ISSUE, "--backend", "smtp", "--to", "gone@example.org"], cwd=proj, env=SECRET)
    assert r.returncode == 1 and "suppression list" in r.stderr
    assert smtp_server.deliveries == []


def test_a_refused_reader_makes_the_exit_status_1_and_status_shows_why(tmp_path: Path) -> None:
    with SMTPServer(rcpt_replies={"marie.curie@example.org": ["550 5.1.1 mailbox unavailable"]},
                    drop_after_data={"ales@example.org": 1}) as server:
        root = make_project(tmp_path / "p", smtp_port=server.port)
        r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert r.returncode == 1
        assert "sent 2 · failed 1 · uncertain 1" in r.stdout
        assert "failed marie.curie@example.org: 550 5.1.1 mailbox unavailable" in r.stderr
        assert "uncertain ales@example.org: connection lost after the message was sent" in r.stderr
        assert server.counts() == {"ada@example.org": 1, "ales@example.org": 1, "no-name@example.org": 1}
        status = run(["status", ISSUE], cwd=root)
        assert "sent 2 · pending 0 · failed 1 · uncertain 1" in status.stdout
        assert "uncertain ales@example.org:" in status.stdout
        assert "failed marie.curie@example.org: 550 5.1.1 mailbox unavailable" in status.stdout
        # a rerun retries the failed one (the server now accepts) and holds the uncertain one back
        rerun = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=root, env=SECRET)
        assert rerun.returncode == 1
        assert "sent 1 · failed 0 · uncertain 0" in rerun.stdout
        assert "1 uncertain: their hand-off was cut" in rerun.stderr and f"status {ISSUE} --uncertain" in rerun.stderr
        assert server.counts()["marie.curie@example.org"] == 1 and server.counts()["ales@example.org"] == 1


def test_bad_subscriber_file_is_one_clear_line_and_nothing_is_sent(proj: Path, smtp_server: SMTPServer) -> None:
    (proj / "subscribers.csv").write_text("name,city\nAda,London\n")
    r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=proj, env=SECRET)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("subscribers.csv:1: no 'email' column")
    assert "Traceback" not in r.stderr and smtp_server.deliveries == []


def test_a_second_send_of_the_same_issue_waits_its_turn(proj: Path, smtp_server: SMTPServer) -> None:
    with open_store(proj / ".newsletter" / "state.db") as store, store.issue_lock(SLUG):
        r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=proj, env=SECRET)
    assert r.returncode == 1 and f"another `newsletter send` of {SLUG} is running (pid {os.getpid()} on " in r.stderr
    assert " since " in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert smtp_server.deliveries == []


def test_outbox_default_with_only_the_example_config(project: Path) -> None:
    """The example newsletter.toml, the example CSV, the real theme: no account, no network."""
    issue = "issues/2011-11-28-free-ales-bialiatski.yaml"
    r = run(["send", issue, "--yes"], cwd=project, env=NO_SECRET)
    assert r.returncode == 0, r.stderr
    assert "sent 4 · failed 0" in r.stdout and "development key" in r.stderr
    files = sorted((project / "outbox" / "2011-11-28-free-ales-bialiatski").glob("*.eml"))
    assert [f.name for f in files] == ["ada@example.org.eml", "ales@example.org.eml",
                                       "marie.curie@example.org.eml", "no-name@example.org.eml"]
    for f in files:
        msg = message_from_bytes(f.read_bytes(), policy=policy.default)
        link = str(msg["List-Unsubscribe"]).split(">")[0].lstrip("<")
        html = msg.get_body(("html",)).get_content()
        assert f'href="{link}"' in html, "the footer's unsubscribe link is the header's"
        assert "{{" not in html
    again = run(["send", issue, "--yes"], cwd=project, env=NO_SECRET)
    assert again.returncode == 0 and "already sent 4" in " ".join(again.stdout.split())


def test_progress_bar_with_rate_and_eta_on_a_terminal(tmp_path: Path) -> None:
    import pty
    import subprocess
    import sys

    root = make_project(tmp_path / "p", subscribers=300)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "send", ISSUE, "--yes"], cwd=root,
                            stdout=slave, stderr=subprocess.PIPE, env={**os.environ, **NO_SECRET})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal is gone: the process closed it
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    # --yes: no counting pass first, so the bar follows the bytes of the list read
    assert "sending" in out and "msg/s" in out and "100%" in out and "sent 300," in out
    assert "sent 300 · failed 0" in out


def test_yes_sends_in_one_read_and_prints_the_same_table_after(proj: Path, smtp_server: SMTPServer) -> None:
    """--yes skips the counting pass (a million addresses validated twice was a fifth of a big
    send); the table the plan would have shown is printed from what the send itself counted."""
    _state_with_history(proj)
    r = run(["send", ISSUE, "--backend", "smtp", "--yes"], cwd=proj, env=SECRET)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "to send 3 suppressed 1 invalid 2 (lines 4, 7) duplicates 1 (line 5) already sent 1" in out
    assert "subscribers.csv:4: email: 'not-an-address': An email address must have an @-sign." in r.stderr
    assert "sent 3 · failed 0 · uncertain 0 · suppressed 1 · already sent 1" in out
    assert smtp_server.counts() == {"ada@example.org": 1, "marie@example.org": 1, "ales@example.org": 1}
