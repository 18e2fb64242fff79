"""`newsletter send --backend sendgrid` end to end: a real process, the real SendGrid backend,
a real SQLite ledger, and the schema-validating SendGrid stand-in on loopback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import NEWSLETTER, run
from tests.sendgrid_server import API_KEY, SendGridServer, ok, refuse, slow
from tests.sendkit import SLUG, address, make_project
from tests.tomledit import edit_toml, read_toml

ENV = {"SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SECRET": "e2e-signing-key-" + "x" * 24}
ISSUE = f"issues/{SLUG}.yaml"


def project(root: Path, server: SendGridServer, subscribers: int, *, batch_size: int | None = 1000,
            timeout: int = 10) -> Path:
    """batch_size None: no [send] batch_size at all (the backend's own choice)."""
    make_project(root, subscribers=subscribers, settings={"sendgrid.host": server.url, "sendgrid.timeout": timeout})
    assert "batch_size" not in read_toml(root / "newsletter.toml")["send"]  # the example leaves it to the backend
    if batch_size:
        edit_toml(root / "newsletter.toml", {"send.batch_size": batch_size})
    return root


def send(root: Path, *extra: str) -> tuple[int, str, str]:
    r = run(["send", ISSUE, "--backend", "sendgrid", "--yes", *extra], cwd=root, env=ENV)
    return r.returncode, r.stdout, r.stderr


def ledger(root: Path) -> dict[str, tuple[str, str]]:
    """email -> (status, last_error), read straight from the SQLite file."""
    with sqlite3.connect(root / ".newsletter" / "state.db") as conn:
        return {e: (s, err or "") for e, s, err in
                conn.execute("SELECT email, status, last_error FROM ledger WHERE issue = ?", (SLUG,))}


def test_2500_readers_in_3_requests_each_exactly_once_and_a_rerun_sends_nothing(
        tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 2500)
    code, out, err = send(root)
    assert code == 0, out + err
    assert [r.personalizations for r in sendgrid_server.requests] == [1000, 1000, 500]
    assert all(r.status == 202 for r in sendgrid_server.requests)  # every request passed the published schema
    everyone = {address(i) for i in range(2500)}
    assert sendgrid_server.count_by_email() == {e: 1 for e in everyone}
    rows = ledger(root)
    assert set(rows) == everyone and {s for s, _ in rows.values()} == {"sent"}
    got = sendgrid_server.render(address(42))
    assert got["subject"] == "Brèves de campagne: Reader 42"
    assert "Dear Reader 42 from Minsk" in got["text"] and "Dear Reader 42 from Minsk" in got["html"]
    assert got["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got["headers"]["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    assert got["custom_args"]["newsletter_issue"] == SLUG

    code, out, err = send(root)  # resumable: nothing left to send
    assert code == 0, out + err
    assert len(sendgrid_server.requests) == 3 and "nothing to send" in out


def test_without_a_batch_size_each_request_is_filled_to_1000(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    """[send] batch_size not set: the SendGrid backend's own batch, one full request each
    (half the round trips of the general default of 500)."""
    root = project(tmp_path / "p", sendgrid_server, 2100, batch_size=None)
    code, out, err = send(root)
    assert code == 0, out + err
    assert [r.personalizations for r in sendgrid_server.requests] == [1000, 1000, 100]
    assert sendgrid_server.count_by_email() == {address(i): 1 for i in range(2100)}


def test_a_400_stops_the_send_with_sendgrids_words_and_a_rerun_finishes(tmp_path: Path,
                                                                       sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 30, batch_size=10)
    sendgrid_server.script(refuse(400, "The from email does not contain a valid address.", "from.email"))
    code, out, err = send(root)
    assert code == 1
    assert "SendGrid: from.email: The from email does not contain a valid address." in out + err
    assert "Traceback" not in out + err
    assert sendgrid_server.accepted_count == 0 and len(sendgrid_server.requests) == 1  # stopped: no further requests
    rows = ledger(root)
    assert {s for s, _ in rows.values()} == {"failed"} and len(rows) == 10
    assert all("from.email" in e for _, e in rows.values())

    code, out, err = send(root)
    assert code == 0, out + err
    assert sendgrid_server.count_by_email() == {address(i): 1 for i in range(30)}


def test_a_read_timeout_leaves_its_readers_uncertain_and_they_are_resent_only_on_request(
        tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 30, batch_size=10, timeout=1)
    sendgrid_server.script(slow(2.5))  # the first request is accepted, its answer comes too late
    code, out, err = send(root)
    assert code == 1, out + err
    rows = ledger(root)
    first = {address(i) for i in range(10)}
    assert {e for e, (s, _) in rows.items() if s == "uncertain"} == first
    assert {e for e, (s, _) in rows.items() if s == "sent"} == {address(i) for i in range(10, 30)}
    assert sendgrid_server.count_by_email() == {address(i): 1 for i in range(30)}  # nobody twice

    code, out, err = send(root)  # a plain rerun holds them back
    assert code == 1 and len(sendgrid_server.requests) == 3
    code, out, err = send(root, "--resend-uncertain")  # the user's explicit choice
    assert code == 0, out + err
    assert sendgrid_server.count_by_email() == {address(i): 2 if i < 10 else 1 for i in range(30)}


def test_one_test_message_with_to_goes_through_sendgrid_and_is_not_recorded(tmp_path: Path,
                                                                           sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 5)
    r = run(["send", ISSUE, "--backend", "sendgrid", "--to", "Editor@Example.org"], cwd=root, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(sendgrid_server.count_by_email()) == ["Editor@example.org"]  # domain normalised, local part kept
    got = sendgrid_server.render("editor@example.org")
    assert got["subject"].startswith("[TEST] Brèves de campagne")
    db = root / ".newsletter" / "state.db"
    assert not db.exists() or ledger(root) == {}


@pytest.mark.torture
def test_killed_while_a_request_is_in_flight_then_rerun_skips_nobody_and_sends_nobody_twice(
        tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 30, batch_size=10)
    sendgrid_server.script(ok(), slow(60))  # the 2nd request is accepted; its answer never comes in time
    proc = subprocess.Popen([*NEWSLETTER, "send", ISSUE, "--backend", "sendgrid", "--yes"], cwd=root,
                            env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(sendgrid_server.requests) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert len(sendgrid_server.requests) == 2, "the send never reached its second request"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    code, out, err = send(root)  # the rerun: sends the rest, holds the in-flight batch back
    assert code == 1, out + err
    rows = ledger(root)
    in_flight = {address(i) for i in range(10, 20)}
    assert {e for e, (s, _) in rows.items() if s == "uncertain"} == in_flight
    assert {e for e, (s, _) in rows.items() if s == "sent"} == {address(i) for i in range(30)} - in_flight
    assert sendgrid_server.count_by_email() == {address(i): 1 for i in range(30)}  # none skipped, none twice
