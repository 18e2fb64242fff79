"""A send through a hostile SMTP server: every fault kind at once, then the accounting.

The storm: 421 / 451 / 452 / 550 at RCPT, 451 / 552 after DATA, drops before, during and
after DATA, stalls past the client's timeout before and after DATA, slow greetings. The
send runs through the library API (so retries can back off in milliseconds, not seconds)
against a real aiosmtpd server on loopback and a real SQLite ledger. Then the server's
own log is compared with the ledger (see accounting.py), the storm stops, and a rerun
must finish the job without sending anyone a second copy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.send import SendOptions, send_issue
from newsletter.store import open_store
from tests.sendkit import SLUG, address, make_project
from tests.torture.accounting import account, ledger_rows, suppress_some
from tests.torture.figures import count, size
from tests.torture.hostile_smtp import DEFAULT_RATES, HostileSMTPServer

pytestmark = pytest.mark.torture

KEYS = SigningKeys(b"torture-signing-key-0123456789abcdef", (), False)
STALL = 0.9  # the server's stalls; the client's timeout is 0.5 s


def _send(root: Path, port: int, *, connections: int = 4) -> object:
    config = load_config(root / "newsletter.toml")
    built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)
    conn = open_store(config.database)
    try:
        backend = get_backend("smtp", config, host="127.0.0.1", port=port, timeout=0.5, retries=6,
                              retry_delay=0.005, connections=connections)
        return send_issue(built, SendOptions(backend, batch_size=200), config.subscribers, conn, keys=KEYS)
    finally:
        conn.close()


def test_smtp_fault_storm_accounting(tmp_path: Path) -> None:
    n = size(1200, 10_000)
    seed = int(os.environ.get("TORTURE_SEED", "7"))
    rates = {**DEFAULT_RATES, "stall_before_data": 0.004, "stall_after_data": 0.004}
    # ~25% of transactions go wrong one way or another
    rates = {k: v * 1.5 for k, v in rates.items()}
    with HostileSMTPServer(rates=rates, seed=seed, stall=STALL, pipelining=True,
                           slow_greeting=0.05, slow_greeting_rate=0.3) as server:
        root = make_project(tmp_path / "p", subscribers=n, smtp_port=server.port)
        # every 37th reader has unsubscribed: they must never get it, whatever goes wrong
        suppressed = suppress_some(root / ".newsletter" / "state.db", (address(i) for i in range(0, n, 37)))
        everyone = [address(i) for i in range(n) if address(i) not in suppressed]
        started = time.monotonic()
        report = _send(root, server.port)
        storm_seconds = time.monotonic() - started
        time.sleep(STALL + 0.3)  # stalled transactions finish (and are logged) before we look
        server.calm()
        faults = dict(server.faults)
        total_faults = sum(v for k, v in faults.items() if k != "slow_accept")
        first = account(everyone, server.counts(), ledger_rows(root / ".newsletter" / "state.db", SLUG),
                        reasons=server.refusals)
        assert not first.problems, first.problems
        assert first.lost == 0 and first.duplicated == 0
        assert total_faults >= size(250, 1000), faults
        # every kind of fault really happened
        for kind, rate in rates.items():
            if rate > 0:
                assert faults.get(kind, 0) > 0, f"no {kind} injected: {faults}"
        assert first.failed >= faults.get("rcpt_550", 0) + faults.get("data_552", 0) - 1
        # uncertain only where the answer to a sent message really went missing
        unanswered = sum(faults.get(k, 0) for k in ("drop_during_data", "drop_after_data", "stall_after_data"))
        assert first.uncertain <= unanswered, (first.as_dict(), faults)
        assert report.sent == first.sent and report.failed == first.failed  # type: ignore[attr-defined]

        # the storm is over: a rerun retries the failed, holds the uncertain, resends nobody
        before = server.counts()
        _send(root, server.port)
        after = server.counts()
        final = account(everyone, after, ledger_rows(root / ".newsletter" / "state.db", SLUG))
        assert not final.problems, final.problems
        again = [e for e in everyone if after[e] > before[e] and before[e] > 0]
        assert not again, f"rerun sent a second copy to {again[:10]}"
        assert final.failed == 0
        assert final.sent + final.uncertain == len(everyone)
        assert final.lost == 0 and final.duplicated == 0

    for kind, v in faults.items():
        count("smtp faults injected", kind, v)
        count("smtp faults survived", kind, v)  # the accounting above held for every one
    count("smtp storm", "recipients", n)
    count("suppressed readers never mailed", "smtp storm", len(suppressed))
    count("smtp storm", "faults total", total_faults)
    count("smtp storm", "seconds", round(storm_seconds))
    for k, v in first.as_dict().items():
        count("smtp accounting after storm", k, v)
    for k, v in final.as_dict().items():
        count("smtp accounting after rerun", k, v)
