"""Reports tell the truth: counts that are the list's only when the list was read, progress that
says `sent` only for what was sent, each stop once, and failures a rerun cannot fix said so."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from newsletter.commands.send import _Progress
from newsletter.deliver.send import SendReport
from tests.sendgrid_server import SendGridServer, ok, rate_limited, refuse
from tests.sendkit import address
from tests.test_sendgrid_send import ledger, project, send

# 25,000 readers: the documented limits are checked, the (slow) schema pass is not
pytestmark = pytest.mark.sendgrid_server(validate=False, record="emails")


def test_401_at_request_11_of_25000_reports_what_happened_once(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 25_000, batch_size=None)
    sendgrid_server.script(*[ok()] * 10,
                           refuse(401, "The provided authorization grant is invalid, expired, or revoked"))
    code, out, err = send(root)
    assert code == 1
    assert sendgrid_server.accepted_count == 10_000
    # the list was not read to the end: no count of the rows read so far is shown as the list's
    assert "to send" not in out and "12,000 rows" not in out.replace("reading 12,000 rows", "")
    assert "the send stopped after reading 12,000 rows, 48% of the file; the rest was not read" in out
    assert "sent 10,000 · failed 1,000 · uncertain 0" in out
    failed = [line for line in err.splitlines() if line.startswith("failed")]
    assert failed == [f"failed 1,000: the request that stopped the send was refused, nothing in it was sent "
                      f"({address(10_000)}, {address(10_001)}, {address(10_002)} and 997 more)"]
    stops = [line for line in err.splitlines() if line.startswith("stopped:")]
    assert len(stops) == 1 and "401 Unauthorized" in stops[0] and "authorization grant is invalid" in stops[0]
    assert err.count("authorization grant is invalid") == 1, err
    statuses = [s for s, _ in ledger(root).values()]
    assert (statuses.count("sent"), statuses.count("failed")) == (10_000, 1_000)


def test_429_on_every_request_never_claims_a_send(tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 1_500, batch_size=None)
    sendgrid_server.script(*[rate_limited(0.01)] * 11)
    code, out, err = send(root)
    assert code == 1 and sendgrid_server.accepted_count == 0
    assert "sent 0 · failed 1,000" in out
    assert "(0 msg/s)" in out
    assert "sent 1,000" not in out + err
    assert [line for line in err.splitlines() if line.startswith("stopped:")] == \
        ["stopped: SendGrid kept rate-limiting (11 times for one request); stopping; SendGrid: too many requests"]


def test_progress_says_sent_only_for_what_was_sent(capsys: pytest.CaptureFixture[str]) -> None:
    for by_bytes in (True, False):
        progress = _Progress(1000, by_bytes=by_bytes)
        progress.last = -math.inf  # print now, not in 5 s
        report = SendReport(attempted=1000, failed=1000)
        report.stats.bytes_read = 500
        progress(report)
        progress.close()
        line = capsys.readouterr().out
        assert line.startswith("sent 0 · failed 1,000"), line
        assert "sent 1,000" not in line


def test_a_reader_over_sendgrids_personalization_limit_fails_once_and_no_rerun_is_suggested(
        tmp_path: Path, sendgrid_server: SendGridServer) -> None:
    root = project(tmp_path / "p", sendgrid_server, 0, batch_size=None)
    with (root / "subscribers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "language", "city"])
        for i in range(25):
            w.writerow([address(i), f"Reader {i}", "en", "x" * 12_000 if i == 7 else "Minsk"])
    code, out, err = send(root)
    assert code == 1
    assert sendgrid_server.accepted_count == 24 and address(7) not in sendgrid_server.count_by_email()
    failed = [line for line in err.splitlines() if line.startswith("failed")]
    assert failed[0].startswith(f"failed {address(7)}: not sent: ")
    assert "over SendGrid's 10,000-byte limit per reader" in failed[0]
    assert "run the same command again" not in err
    assert "1 failed for a reason a rerun alone will not fix" in err
