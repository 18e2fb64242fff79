"""Issue 10 item 11: a one-click unsubscribe while another process holds the state database's
write lock is spooled durably (202), never lost, and honoured by the next send."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.audience.tokens import make_token
from newsletter.config import Config
from newsletter.store import open_store, spool
from tests.conftest import run
from tests.webserver import ENV, KEYS, request, serve_in_process

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ISSUE = "issues/2011-11-28-free-ales-bialiatski.yaml"
HOLD = 20  # seconds the other process holds the write lock: longer than SQLite's 15 s busy timeout
# one list: an unsubscribe is from everything (several: the last test here, tests/test_lists_web.py)
pytestmark = pytest.mark.config({"web.db_wait_seconds": 1}, one_list=True)

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(database: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the state database's write lock for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(database), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def raw(database: Path) -> sqlite3.Connection:
    """A raw read-only connection: what is on disk, without the store applying the spool."""
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, isolation_level=None)


def rows(config: Config) -> list[tuple[str, str, str]]:
    conn = raw(config.database)
    try:
        return conn.execute("SELECT email, reason, source FROM suppressions ORDER BY email").fetchall()
    finally:
        conn.close()


def outbox_recipients(project: Path) -> list[str]:
    return sorted(message_from_bytes(f.read_bytes(), policy=policy.default)["To"].addresses[0].addr_spec
                  for f in (project / "outbox").rglob("*.eml"))


def test_one_click_during_a_20s_lock_is_spooled_and_the_next_send_honours_it(project: Path, config: Config) -> None:
    open_store(config).close()  # the state file exists, as on a live site
    ada = "/unsubscribe/" + make_token(KEYS, "ada@example.org", config.list_id, "en")
    marie = "/unsubscribe/" + make_token(KEYS, "marie.curie@example.org", config.list_id, "fr")
    with serve_in_process(project, ENV) as served:
        locker = hold_write_lock(config.database, HOLD)
        locked_at = time.monotonic()
        try:
            a = request(served.port, "POST", ada, "List-Unsubscribe=One-Click", FORM)
            b = request(served.port, "POST", marie, "action=unsubscribe", FORM)
            answered = time.monotonic() - locked_at
            assert (a.status, b.status) == (202, 202) and answered < HOLD / 2, (a, b, answered)
            assert a.text == "You have been unsubscribed." and "Votre désinscription est confirmée" in b.text
            assert locker.poll() is None  # still locked: nothing could have been written to the database
            # spooled, durably: in the file before the answer; and counted as suppressed by readers
            assert spool.pending(config.database) == {"ada@example.org", "marie.curie@example.org"}
            conn = raw(config.database)
            try:
                assert conn.execute("SELECT count(*) FROM suppressions").fetchone() == (0,)
            finally:
                conn.close()
            with open_store(config, readonly=True) as store:
                assert store.suppressed_among(["ada@example.org", "Marie.Curie@example.org", "ales@example.org"]) \
                    == {"ada@example.org", "marie.curie@example.org"}
            dry = run(["send", ISSUE, "--dry-run"], project, env=ENV)  # reads while the lock is held
            assert dry.returncode == 0, dry.stderr
            assert re.search(r"to send +2\n +suppressed +2\n", dry.stdout), dry.stdout
            samples = " ".join(p.name for p in (project / "build").rglob("*.eml"))
            assert "ales@example.org" in samples and "ada@" not in samples and "marie" not in samples
        finally:
            assert locker.wait(HOLD + 30) == 0
        assert time.monotonic() - locked_at >= HOLD
        out = served.output()
    assert out.count("unsubscribe spooled, the state database is busy") == 2 and "Traceback" not in out
    assert rows(config) == []  # nobody has had a chance to apply the spool yet
    sent = run(["send", ISSUE, "--backend", "outbox", "--yes"], project, env=ENV)
    assert sent.returncode == 0, sent.stderr
    recipients = outbox_recipients(project)
    assert recipients and "ada@example.org" not in recipients and "marie.curie@example.org" not in recipients
    assert "ales@example.org" in recipients
    assert rows(config) == [("ada@example.org", "unsubscribed", "one-click"),
                            ("marie.curie@example.org", "unsubscribed", "page")]
    assert spool.pending(config.database) == set()


def test_the_spool_is_honoured_before_it_is_applied_and_applied_once(project: Path, config: Config) -> None:
    open_store(config).close()  # the state file exists, as on a live site
    spool.append(config.database, " Ada@Example.org ", "one-click")
    with open_store(config, readonly=True) as store:
        assert store.is_suppressed("ada@example.org") and not store.is_suppressed("ales@example.org")
    # a torn last line (a crash mid-write) is skipped, and the next entry starts on a fresh line
    with spool.spool_path(config.database).open("ab") as f:
        f.write(b'{"email": "torn@exa')
    spool.append(config.database, "marie.curie@example.org", "page")
    assert spool.pending(config.database) == {"ada@example.org", "marie.curie@example.org"}
    # many writers at once: every line whole
    threads = [threading.Thread(target=spool.append, args=(config.database, f"r{i}@example.org", "one-click"))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spool.pending(config.database)) == 22
    with open_store(config) as store:  # a writable store applies and empties the spool as it opens
        assert spool.pending(config.database) == set()
        assert store.count("suppressions") == 22
        spool.append(config.database, "ada@example.org", "one-click")  # again: applying twice changes nothing
        assert store.drain_spool() == 1
        assert store.count("suppressions") == 22
        assert [a[1] for a in store.actions()].count("suppress") == 22


def test_a_spooled_unsubscribe_from_one_list_of_several_leaves_only_that_list(project: Path) -> None:
    """Several lists: an unsubscribe from one list is spooled with its list, applied as leaving that
    list (a membership), and is not a suppression from everything."""
    with open_store(project / ".newsletter" / "state.db") as store:
        assert store.spool_database is not None
        spool.append(store.spool_database, "Ada@Example.org", "one-click", "digest")
        spool.append(store.spool_database, "marie.curie@example.org", "page")
        assert spool.pending(store.spool_database) == {"marie.curie@example.org"}  # from everything only
        assert store.suppressed_among(["ada@example.org", "marie.curie@example.org"]) == {"marie.curie@example.org"}
        assert store.drain_spool() == 2
        assert store.membership("digest", "ada@example.org") == "unsubscribed"
        assert not store.is_suppressed("ada@example.org") and store.is_suppressed("marie.curie@example.org")
        assert spool.pending(store.spool_database) == set() and store.drain_spool() == 0
