"""An answered unsubscribe is never lost: `newsletter serve` is SIGKILLed in the middle of a
stream of one-click POSTs; every POST that got its 200 must be in the state file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from tests.conftest import single_list
from tests.ports import free_port
from tests.sendkit import make_project
from tests.webserver import one_click

pytestmark = pytest.mark.torture

SECRET = "kill-test-signing-key-0123456789abcdef"


def test_every_answered_unsubscribe_survives_a_sigkill(tmp_path: Path) -> None:
    after = 0.3 + 0.7 * (os.getpid() % 10) / 10  # a different moment from run to run
    project = make_project(tmp_path / "project")
    single_list(project)  # one list: every answered unsubscribe is a suppression
    config = load_config(project / "newsletter.toml")
    keys = SigningKeys(SECRET.encode(), (), False)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "newsletter", "serve", "--port", str(port)], cwd=project,
                            env={**os.environ, "NEWSLETTER_SECRET": SECRET}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    answered: list[str] = []
    failed = 0
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(1_000_000))

    def client() -> None:
        nonlocal failed
        while not stop.is_set():
            with lock:
                email = f"reader{next(counter)}@example.org"
            try:
                a = one_click(port, f"/unsubscribe/{make_token(keys, email, config.list_id)}")
            except OSError:
                with lock:
                    failed += 1
                if proc.poll() is not None:
                    return
                time.sleep(0.02)  # not up yet
                continue
            if a.status == 200:
                with lock:
                    answered.append(email)

    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(client)
            deadline = time.monotonic() + 20
            while len(answered) < 20:  # the server is up and answering
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.01)
            time.sleep(after)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            time.sleep(0.2)
            stop.set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    conn = sqlite3.connect(config.database)
    try:
        recorded = {e for (e,) in conn.execute("SELECT email FROM suppressions")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    print(f"\nkilled after {len(answered)} answered unsubscribes; {len(recorded)} recorded; "
          f"{failed} requests cut off")
    assert len(answered) > 20
    assert set(answered) <= recorded  # answered -> recorded, whatever the moment of the kill
