"""A send through a hostile SendGrid stand-in: random 429s, 5xx, slow answers, resets, 400s.

The real SendGrid backend posts to tests/sendgrid_server.py's schema-checking server on
loopback (subclassed in hostile_sendgrid.py to misbehave at random). A 400 stops the send
with SendGrid's own words, as it must; the test then reruns, like a user would, until a
run gets through. Afterwards every personalization is accounted for: accepted exactly
once (`sent`), refused with SendGrid's words (`failed`), or `uncertain` (the request may
have been taken; the answer never came). Then the storm stops and a rerun finishes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.send import SendOptions, SendReport, send_issue
from newsletter.store import open_store
from tests.sendkit import SLUG, address, make_project
from tests.torture.accounting import account, ledger_rows, suppress_some
from tests.torture.figures import count, size
from tests.torture.hostile_sendgrid import BAD_REQUEST, HostileSendGridServer

pytestmark = pytest.mark.torture

KEY = "SG.torture-key-" + "k" * 40
KEYS = SigningKeys(b"torture-signing-key-0123456789abcdef", (), False)
TIMEOUT = 0.25
PER_REQUEST = 10


def _send(root: Path, url: str, waits: list[tuple[float, float]]) -> SendReport:
    config = load_config(root / "newsletter.toml")
    config = dataclasses.replace(config, sendgrid={"host": url, "timeout": TIMEOUT})
    built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)

    def sleep(seconds: float) -> None:  # the backend's waits, recorded; slept only briefly
        waits.append((time.time(), seconds))
        time.sleep(min(seconds, 0.005))

    conn = open_store(config.database)
    try:
        backend = get_backend("sendgrid", config, backoff=0.01, max_backoff=0.05, per_request=PER_REQUEST,
                              uncertain_limit=3, sleep=sleep)
        return send_issue(built, SendOptions(backend, batch_size=100), config.subscribers, conn, keys=KEYS)
    finally:
        conn.close()


def test_sendgrid_fault_storm_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", KEY)
    n = size(2000, 10_000)
    seed = int(os.environ.get("TORTURE_SEED", "11"))
    with HostileSendGridServer(KEY, seed=seed, timeout=TIMEOUT, validate=False, record="emails") as server:
        root = make_project(tmp_path / "p", subscribers=n)
        # every 37th reader has unsubscribed: they must never get it, whatever goes wrong
        suppressed = suppress_some(root / ".newsletter" / "state.db", (address(i) for i in range(0, n, 37)))
        everyone = [address(i) for i in range(n) if address(i) not in suppressed]
        server.script_each()  # every kind at least once, then at random
        waits: list[tuple[float, float]] = []
        runs = stops = 0
        stop_reasons: set[str] = set()
        while runs < 200:
            runs += 1
            report = _send(root, server.url, waits)
            if report.stopped is None:
                break
            stops += 1
            stop_reasons.add(report.stopped.split(":")[0])
            # a stop says why, in SendGrid's words when SendGrid refused the request
            assert (BAD_REQUEST in report.stopped or "answered 5" in report.stopped
                    or "unanswered" in report.stopped or "rate-limiting" in report.stopped), report.stopped
        else:
            pytest.fail("200 runs and the storm never let one finish")
        server.calm()
        time.sleep(TIMEOUT * 1.5 + 0.2)  # slow answers in flight finish before we look
        faults = dict(server.faults)
        first = account(everyone, server.count_by_email(), ledger_rows(root / ".newsletter" / "state.db", SLUG))
        assert not first.problems, first.problems
        assert first.lost == 0 and first.duplicated == 0
        rows = ledger_rows(root / ".newsletter" / "state.db", SLUG)
        for e, (status, error) in rows.items():
            if status == "failed":
                assert BAD_REQUEST in error or "SendGrid answered" in error, (e, error)
        # uncertain only where an answer really went missing, never for an answered request
        unanswered = sum(faults.get(k, 0) for k in ("slow_past_timeout_accepted", "slow_past_timeout_not_accepted",
                                                     "reset_after_accept", "reset_without_accept"))
        assert first.uncertain <= PER_REQUEST * unanswered, (first.as_dict(), faults)
        assert sum(faults.values()) >= size(50, 250), faults
        assert all(faults.get(k, 0) > 0 for k in server.rates), faults
        # a 429 is waited out as its X-RateLimit-Reset says (whole epoch seconds: at most ~1.2 s here)
        rate_waits = [w for _, w in waits if w > 0.06]
        assert rate_waits and all(w <= 1.3 for w in rate_waits), rate_waits[:10]

        # the storm is over: failed readers are retried, uncertain ones held, nobody resent
        before = server.count_by_email()
        report = _send(root, server.url, waits)
        assert report.stopped is None
        after = server.count_by_email()
        final = account(everyone, after, ledger_rows(root / ".newsletter" / "state.db", SLUG))
        assert not final.problems, final.problems
        assert not [e for e in everyone if before[e] and after[e] > before[e]], "rerun resent someone"
        assert final.failed == 0 and final.sent + final.uncertain == len(everyone)
        assert final.lost == 0 and final.duplicated == 0

    for kind, v in faults.items():
        count("sendgrid faults injected", kind, v)
        count("sendgrid faults survived", kind, v)
    count("sendgrid storm", "recipients", n)
    count("suppressed readers never mailed", "sendgrid storm", len(suppressed))
    count("sendgrid storm", "runs until one finished", runs)
    count("sendgrid storm", "stops with a clear reason", stops)
    count("sendgrid storm", "requests", len(server.requests))
    for k, v in first.as_dict().items():
        count("sendgrid accounting after storm", k, v)
    for k, v in final.as_dict().items():
        count("sendgrid accounting after rerun", k, v)
