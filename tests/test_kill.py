"""kill -9 a real `newsletter send` at random moments, rerun it, and count what arrived.

The promise: after any number of kills and reruns, every reader has received the issue
exactly once, except readers the ledger lists as `uncertain` (their hand-off was cut
mid-way: 0 or 1 copies), and nobody is skipped. A slow SMTP server makes the kills land
mid-transaction, where the interesting races are. Run with the ledger in SQLite and in a
real PostgreSQL server (tests/pg.py).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsletter.store import open_store
from tests.sendkit import SLUG, address, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml

N = 2000
KILLS = 5
ENV = {"NEWSLETTER_SECRET": "kill-test-secret-0123456789abcdef"}


def _start(root: Path, database: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes", *extra],
        cwd=root, env={**os.environ, **ENV, "NEWSLETTER_DATABASE": database},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _ledger(database: str) -> dict[str, str]:
    with open_store(database) as store:
        return store.statuses(SLUG, (address(i) for i in range(N)))


@pytest.mark.slow
def test_sigkill_at_random_moments_never_skips_or_doubles(tmp_path: Path, target: str) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 1_000_000_007))
    rng = random.Random(seed)
    print(f"KILL_SEED={seed}")  # shown on failure: rerun the same kill moments with it
    with SMTPServer(delay=0.001, pipelining=True) as server:
        # two connections in parallel: kills then land with two hand-offs in flight
        root = make_project(tmp_path / "p", subscribers=N, smtp_port=server.port)
        edit_toml(root / "newsletter.toml", {"smtp.connections": 2})
        kills_mid_send = 0
        for k in range(KILLS):
            before = len(server.deliveries)
            if before >= N - 50:
                break
            # aim somewhere in what is left; the first kill may land before anything is sent
            aim = before + (rng.randint(0, 30) if k == 0 else rng.randint(20, (N - before) // 2))
            proc = _start(root, target)
            deadline = time.monotonic() + 60
            while len(server.deliveries) < aim and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.random() * 0.004)  # land in a different phase of the transaction each time
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"send ended before the kill (rc {proc.returncode}): {err.decode()[-2000:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.communicate()
            kills_mid_send += 0 < len(server.deliveries) < N
        assert kills_mid_send >= 3, "the kills should land while mail is flowing"

        final = _start(root, target)
        out, err = final.communicate(timeout=120)
        ledger = _ledger(target)
        uncertain = {e for e, s in ledger.items() if s == "uncertain"}
        counts = server.counts()
        assert final.returncode == (1 if uncertain else 0), err.decode()[-2000:]

        everyone = [address(i) for i in range(N)]
        doubled = [e for e in everyone if counts[e] > 1]
        skipped = [e for e in everyone if counts[e] == 0 and e not in uncertain]
        assert not doubled, f"sent twice: {doubled[:10]}"
        assert not skipped, f"skipped: {skipped[:10]}"
        assert all(ledger[e] == "sent" for e in everyone if e not in uncertain)
        assert set(counts) <= set(everyone)
            # the uncertain window is one message per connection per kill, not a batch
        assert len(uncertain) <= 2 * KILLS, uncertain
        print(f"{kills_mid_send} kills mid-send, {len(uncertain)} uncertain, {sum(counts.values())} delivered")
        if uncertain:
            assert "uncertain" in err.decode()

            # the explicit flag resends exactly those, and then everyone has the issue
            again = _start(root, target, "--resend-uncertain")
            _, err2 = again.communicate(timeout=60)
            assert again.returncode == 0, err2.decode()[-2000:]
            after = server.counts()
            assert all(after[e] >= 1 for e in everyone)
            assert {e for e in everyone if after[e] != counts[e]} == uncertain
            assert set(_ledger(target).values()) == {"sent"}
