"""`newsletter suppressions sync` and the sync before every SendGrid send, against the SendGrid
stand-in's suppression endpoints (paging, time filters, auth errors) on loopback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.conftest import run
from tests.sendgrid_server import API_KEY, SendGridServer, rate_limited
from tests.sendkit import SLUG, make_project

ENV = {"SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SECRET": "sync-signing-key-" + "x" * 24}


def project(root: Path, sg: SendGridServer, **sendgrid: object) -> Path:
    """The send tests' project with [sendgrid] pointed at `sg`, plus any other [sendgrid] keys."""
    return make_project(root, settings={"sendgrid.host": sg.url} | {f"sendgrid.{k}": v for k, v in sendgrid.items()})


def suppressions(root: Path) -> dict[str, tuple[str, str, str]]:
    with sqlite3.connect(root / ".newsletter" / "state.db") as conn:
        return {e: (r, s, d) for e, r, s, d in conn.execute("SELECT email, reason, source, detail FROM suppressions")}


def test_sync_reads_every_list_page_by_page_then_only_what_is_new(tmp_path: Path,
                                                                  sendgrid_server: SendGridServer) -> None:
    now = int(time.time())
    sendgrid_server.add_suppressions("bounces", [{"created": now - 86400 * 30 + i * 60, "email": f"b{i}@example.org",
                                                  "reason": "550 5.1.1 user unknown", "status": "5.1.1"}
                                                 for i in range(1234)])
    sendgrid_server.add_suppressions("blocks", [{"created": now - 500, "email": "blocked@example.org",
                                                 "reason": "554 IP blocklisted", "status": "5.7.1"}])
    sendgrid_server.add_suppressions("spam_reports", [{"created": now - 400, "email": "SPAM@Example.org",
                                                       "ip": "192.0.2.1"}])
    sendgrid_server.add_suppressions("invalid_emails", [{"created": now - 300, "email": "bad@example", "reason":
                                                         "Mail domain mentioned in email address is unknown"}])
    sendgrid_server.add_suppressions("unsubscribes", [{"created": now - 200, "email": "gone@example.org"}])
    root = project(tmp_path / "p", sendgrid_server)
    r = run(["suppressions", "sync"], cwd=root, env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("SendGrid suppressions read: bounces 1,234, blocks 1, spam reports 1, invalid emails 1,"
                                " unsubscribes 1; 1,238 newly suppressed")
    got = suppressions(root)
    assert got["b7@example.org"] == ("bounced", "sendgrid-sync", "SendGrid bounce: 5.1.1 550 5.1.1 user unknown")
    assert got["blocked@example.org"][0] == "dropped"
    assert got["spam@example.org"][0] == "complained"
    assert got["bad@example"][:2] == ("bounced", "sendgrid-sync"), "kept as SendGrid has it, even if malformed"
    assert got["gone@example.org"] == ("unsubscribed", "sendgrid-sync", "SendGrid global unsubscribe")
    bounce_pages = [p for name, p in sendgrid_server.suppression_requests if name == "bounces"]
    assert [p["offset"] for p in bounce_pages] == [0, 500, 1000] and all(p["limit"] == 500 for p in bounce_pages)
    assert all("start_time" not in p for p in bounce_pages), "the first sync reads everything"

    sendgrid_server.suppression_requests.clear()
    sendgrid_server.add_suppressions("bounces", [{"created": now - 10, "email": "late@example.org", "reason": "550",
                                                  "status": ""}])
    again = run(["suppressions", "sync"], cwd=root, env=ENV)
    assert again.returncode == 0, again.stderr
    assert "1 newly suppressed" in again.stdout and "late@example.org" in suppressions(root)
    (first,) = [p for name, p in sendgrid_server.suppression_requests if name == "bounces"]
    newest = now - 86400 * 30 + 1233 * 60
    assert first["start_time"] == newest - 3600, "only what is new (with an hour of overlap), one page"


def test_auth_errors_are_one_line_and_never_show_the_key(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server)
    wrong = run(["suppressions", "sync"], cwd=root, env={**ENV, "SENDGRID_API_KEY": "SG.wrong-key"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == (f"SendGrid at {sendgrid_server.url} refused the API key in SENDGRID_API_KEY (401: "
                                    "The provided authorization grant is invalid, expired, or revoked); it needs "
                                    "suppression read access")
    missing = run(["suppressions", "sync"], cwd=root, env={**ENV, "SENDGRID_API_KEY": ""})
    assert missing.returncode == 1 and missing.stderr.strip().startswith("SENDGRID_API_KEY is not set")
    sendgrid_server.scopes.discard("spam_reports")
    scoped = run(["suppressions", "sync"], cwd=root, env=ENV)
    assert scoped.returncode == 1 and "(403: access forbidden)" in scoped.stderr
    for r in (wrong, missing, scoped):
        assert "Traceback" not in r.stderr and "SG.wrong-key" not in r.stderr and API_KEY not in r.stderr + r.stdout


def test_rate_limits_are_waited_out(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    sendgrid_server.add_suppressions("bounces", [{"created": 1_700_000_000, "email": "b@example.org", "reason": "",
                                                  "status": ""}])
    sendgrid_server.suppression_faults[:] = [rate_limited(reset_in=0.5), rate_limited(reset_in=0.5)]
    root = project(tmp_path / "p", sendgrid_server)
    r = run(["suppressions", "sync"], cwd=root, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "b@example.org" in suppressions(root) and not sendgrid_server.suppression_faults


def test_a_sendgrid_send_syncs_first_and_never_mails_who_sendgrid_knows_is_gone(
        tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    sendgrid_server.add_suppressions("bounces", [{"created": 1_700_000_000, "email": "marie.curie@example.org",
                                                  "reason": "550 5.1.1", "status": "5.1.1"}])
    root = project(tmp_path / "p", sendgrid_server)
    r = run(["send", f"issues/{SLUG}.yaml", "--backend", "sendgrid", "--yes"], cwd=root, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "synced from SendGrid: 1 newly suppressed" in r.stdout
    mailed = set(sendgrid_server.count_by_email())
    assert "marie.curie@example.org" not in mailed and "ada@example.org" in mailed


def test_the_sync_before_a_send_can_be_turned_off(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    sendgrid_server.add_suppressions("bounces", [{"created": 1_700_000_000, "email": "marie.curie@example.org",
                                                  "reason": "550 5.1.1", "status": "5.1.1"}])
    root = project(tmp_path / "p", sendgrid_server, sync_suppressions=False)
    r = run(["send", f"issues/{SLUG}.yaml", "--backend", "sendgrid", "--yes"], cwd=root, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "synced" not in r.stdout and sendgrid_server.suppression_requests == []
    assert "marie.curie@example.org" in set(sendgrid_server.count_by_email())
