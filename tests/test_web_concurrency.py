"""500 one-click unsubscribes from parallel clients while `newsletter send` is writing its
ledger to the same state (an SQLite file, or a real PostgreSQL server): three real processes
(an aiosmtpd sink, `newsletter serve`, `newsletter send --backend smtp`), and this test as
the crowd of mail clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from newsletter.store import open_store, store_exists
from tests.conftest import single_list
from tests.ports import free_port
from tests.sendkit import SLUG, address, make_project
from tests.webserver import Answer, one_click, serve_in_process

SECRET = "concurrency-test-signing-key-0123456789"
READERS = 2000
POSTS = 500
CLIENTS = 24
RATE = 300  # messages/s: the send lasts ~7 s, longer than the burst of unsubscribes


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on {port}") from None
            time.sleep(0.05)


def ledger_sent(database: str) -> int:
    if not store_exists(database):
        return 0  # not created yet
    with open_store(database, readonly=True) as store:
        return store.counts(SLUG)["sent"]


@pytest.mark.slow
def test_500_one_click_posts_while_a_send_runs(tmp_path: Path, target: str) -> None:
    smtp_port = free_port()
    project = make_project(tmp_path / "project", subscribers=READERS, smtp_port=smtp_port)
    single_list(project)  # one list: a one-click is from everything
    config = load_config(project / "newsletter.toml")
    env = {**os.environ, "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": "", "NEWSLETTER_DATABASE": target}
    keys = SigningKeys(SECRET.encode(), (), False)
    # the last readers of the list: the send has not reached them when the burst starts
    targets = [address(i) for i in range(READERS - POSTS, READERS)]
    links = {e: f"/unsubscribe/{make_token(keys, e, config.list_id, 'en')}" for e in targets}

    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                             "-l", f"127.0.0.1:{smtp_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    send_log = tmp_path / "send.log"
    send = None
    try:
        wait_for_port(smtp_port, sink)
        with serve_in_process(project, {"NEWSLETTER_SECRET": SECRET, "NEWSLETTER_DATABASE": target}) as served, \
                send_log.open("w") as out:
            send = subprocess.Popen([sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml",
                                     "--backend", "smtp", "--yes", "--rate", str(RATE)],
                                    cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while ledger_sent(target) == 0:  # the send is handing messages off
                assert send.poll() is None, send_log.read_text()
                assert time.monotonic() < deadline, "the send never started"
                time.sleep(0.05)

            def post(email: str) -> tuple[str, int | str]:
                try:
                    a: Answer = one_click(served.port, links[email])
                    return email, a.status
                except OSError as e:  # a refused or reset connection is a failure too
                    return email, f"{type(e).__name__}: {e}"

            started = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                results = list(pool.map(post, targets))
            elapsed = time.perf_counter() - started
            send_was_running = send.poll() is None
            sent_at_end_of_burst = ledger_sent(target)
            send_rc = send.wait(120)
            serve_output = served.output()
    finally:
        if send is not None and send.poll() is None:
            send.kill()
            send.wait()
        sink.terminate()
        sink.wait(10)

    statuses = [s for _, s in results]
    print(f"\n{POSTS} one-click POSTs from {CLIENTS} clients in {elapsed:.2f}s = {POSTS / elapsed:.0f}/s "
          f"while sending (send had handed off {sent_at_end_of_burst} of {READERS} at the end of the burst)")
    assert send_was_running, "the burst must overlap the send"
    assert [s for s in statuses if s != 200] == []  # no 5xx, no 4xx, no dropped connections
    send_output = send_log.read_text()
    assert send_rc == 0, send_output
    for output in (send_output, serve_output):
        assert "locked" not in output.lower() and "Traceback" not in output

    with open_store(target) as store:
        recorded = {s.email for s in store.all_suppressions() if s.source == "one-click"}
        assert recorded == set(targets)  # every one recorded
        everyone = [address(i) for i in range(READERS)]
        sent = {e for e, status in store.statuses(SLUG, everyone).items() if status == "sent"}
    if sent_at_end_of_burst <= READERS - POSTS - config.batch_size:
        # all 500 were suppressed before the send's batch reached them: none may have been mailed
        assert sent.isdisjoint(targets)
    assert set(everyone) - sent <= set(targets)  # only unsubscribed readers were skipped
