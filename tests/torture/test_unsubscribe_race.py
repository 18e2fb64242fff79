"""Readers unsubscribe (one-click, through the real web app) while a real `newsletter send` runs.

The promise: an unsubscribed reader is never mailed again. A send reads the suppression
list per batch, right before the hand-off, so a reader who unsubscribes before their
batch is reached must get nothing; one whose batch was already on its way may still get
this one issue, never a later one. Here readers are unsubscribed well ahead of the send's
progress (more than two batches ahead), in bursts, while it runs; then a rerun (and a
send of the next issue) must not mail any of them.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from tests.sendkit import SLUG, address, make_project
from tests.torture.figures import count, size
from tests.torture.hostile_smtp import HostileSMTPServer
from tests.webserver import one_click, serve_in_thread

pytestmark = pytest.mark.torture

SECRET = "torture-race-signing-key-0123456789"
BATCH = 50


def _reached(server: HostileSMTPServer) -> int:
    """How far down the list the send has got: the highest reader number delivered so far."""
    with server.lock:
        return max((int(d.rcpt[6:12]) for d in server.deliveries[-20:]), default=0)


def test_unsubscribes_during_a_send_are_honoured(tmp_path: Path) -> None:
    n = size(1000, 10_000)
    rng = random.Random(int(os.environ.get("TORTURE_SEED", "5")))
    with HostileSMTPServer(rates={}, pipelining=True, delay=0.002) as server:
        root = make_project(tmp_path / "p", subscribers=n, smtp_port=server.port, settings={"send.batch_size": BATCH})
        config = load_config(root / "newsletter.toml")
        keys = SigningKeys(SECRET.encode(), (), False)
        gone: set[str] = set()
        with serve_in_thread(config, keys) as port:
            proc = subprocess.Popen([sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend",
                                     "smtp", "--yes"], cwd=root, env={**os.environ, "NEWSLETTER_SECRET": SECRET},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                done = _reached(server)
                ahead = done + 3 * BATCH
                if ahead < n - 1:
                    for i in rng.sample(range(ahead, n), min(3, n - ahead)):
                        email = address(i)
                        answer = one_click(port, f"/unsubscribe/{make_token(keys, email, config.list_id)}")
                        # 202: the state file stayed busy past [web] db_wait_seconds, so the unsubscribe
                        # went to the durable spool, which the send counts as suppressed all the same
                        assert answer.status in (200, 202), answer.status
                        if _reached(server) <= done + BATCH:  # still two batches ahead when it landed
                            gone.add(email)
                time.sleep(0.02)
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()[-2000:]
        counts = server.counts()
        mailed = sorted(e for e in gone if counts[e])
        assert gone and not mailed, f"unsubscribed mid-send and still mailed: {mailed[:10]}"
        # everyone else got it exactly once
        assert all(counts[address(i)] == 1 for i in range(n) if address(i) not in gone)
        # and a rerun mails none of them
        r = subprocess.run([sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend", "smtp",
                            "--yes"], cwd=root, env={**os.environ, "NEWSLETTER_SECRET": SECRET}, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert server.counts() == counts
    count("suppressed readers never mailed", "unsubscribed mid-send via one-click", len(gone))
