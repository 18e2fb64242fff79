"""The ledger's disk fills up, goes read-only, or stays locked by another writer.

Each time the send must stop cleanly — exit 1, a clear message naming the state
database, no traceback — without anyone sent but unrecorded (a reader the server has
must be in the ledger as `sent`, `sending` or `uncertain`, or the rerun could mail them
twice). After the fault is removed, a rerun finishes, and the final accounting against
the SMTP server's log shows nobody lost or duplicated.

Disk full and read-only use a real, size-capped tmpfs (we run as root, so `chmod` would
not stop a write); where mounting is not allowed, those tests fall back to
RLIMIT_FSIZE for disk full and skip read-only. The lock is held by a separate process.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import build_issue
from newsletter.config import load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.send import SendOptions, send_issue
from newsletter.errors import NewsletterError
from newsletter.store import open_store
from newsletter.store import sqlite as sqlite_store
from newsletter.store.sqlite import BUSY_TIMEOUT_MS
from tests.sendgrid_server import SendGridServer
from tests.sendkit import SLUG, address, make_project, write_subscribers
from tests.torture.accounting import account, ledger_rows
from tests.torture.figures import count, size
from tests.torture.hostile_smtp import HostileSMTPServer

pytestmark = pytest.mark.torture

ENV = {"NEWSLETTER_SECRET": "torture-db-signing-key-0123456789"}


@contextmanager
def tmpfs(where: Path, size_kb: int) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): disk-full and read-only need one")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True, capture_output=True)


def _project(tmp_path: Path, port: int, n: int, database: Path) -> Path:
    return make_project(tmp_path / "p", subscribers=n, smtp_port=port, settings={"database": str(database)})


def _send(root: Path, *, preexec: object = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend", "smtp",
                           "--yes"], cwd=root, env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=300, preexec_fn=preexec)  # type: ignore[arg-type]


def _clean_stop(r: subprocess.CompletedProcess[str], *words: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    message = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    assert any(w in r.stderr for w in words), r.stderr[-1500:]
    return message


def _recorded_if_delivered(server: HostileSMTPServer, database: Path) -> None:
    """Whoever the server has is in the ledger (sent / sending / uncertain): a rerun cannot double them."""
    rows = ledger_rows(database, SLUG)
    unrecorded = [e for e in server.counts() if rows.get(e, ("",))[0] not in ("sent", "sending", "uncertain")]
    assert not unrecorded, f"delivered but not in the ledger: {unrecorded[:10]}"


def _finish_and_account(root: Path, server: HostileSMTPServer, database: Path, n: int, label: str) -> None:
    r = _send(root)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    a = account([address(i) for i in range(n)], server.counts(), ledger_rows(database, SLUG))
    assert r.returncode == (1 if a.uncertain else 0), r.stderr[-2000:]
    assert not a.problems, a.problems
    assert a.lost == 0 and a.duplicated == 0 and a.failed == 0 and a.sent + a.uncertain == n
    assert a.uncertain <= 2, a.as_dict()  # at most the message in flight when the fault hit
    for k, v in a.as_dict().items():
        count(f"db fault accounting ({label})", k, v)


def test_ledger_disk_full_then_rerun(tmp_path: Path) -> None:
    n = size(1000, 10_000)
    with HostileSMTPServer(rates={}, pipelining=True) as server, tmpfs(tmp_path / "small", 192) as disk:
        database = disk / "state.db"
        root = _project(tmp_path, server.port, n, database)
        started = time.monotonic()
        r = _send(root)
        message = _clean_stop(r, "full")
        # stops at once: not after the SMTP timeout (30 s) waiting on a connection left mid-DATA
        assert time.monotonic() - started < 25
        got = len(server.deliveries)
        assert 0 < got < n, got
        count("db fault deliveries before the disk filled", "disk full (tmpfs)", got)
        _recorded_if_delivered(server, database)
        # still full: a second run stops as cleanly, and doubles nobody
        r = _send(root)
        _clean_stop(r, "full")
        _recorded_if_delivered(server, database)
        remount(disk, "size=64m")
        _finish_and_account(root, server, database, n, "disk full")
    count("db faults survived", "disk full (tmpfs)")
    count("db fault messages", message[:90])


def test_ledger_file_size_limit_then_rerun(tmp_path: Path) -> None:
    """Disk full without mounting anything: RLIMIT_FSIZE caps what the send may write."""
    n = size(1000, 10_000)

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, 160 * 1024))

    with HostileSMTPServer(rates={}, pipelining=True) as server:
        database = tmp_path / "state" / "state.db"
        root = _project(tmp_path, server.port, n, database)
        r = _send(root, preexec=cap)
        message = _clean_stop(r, "state database", "full", "disk")
        assert 0 < len(server.deliveries) < n
        _recorded_if_delivered(server, database)
        _finish_and_account(root, server, database, n, "file size limit")
    count("db faults survived", "file size limit (RLIMIT_FSIZE)")
    count("db fault messages", message[:90])


def test_ledger_read_only_then_rerun(tmp_path: Path) -> None:
    n = size(600, 5000)
    with HostileSMTPServer(rates={}, pipelining=True) as server, tmpfs(tmp_path / "ro", 64 * 1024) as disk:
        database = disk / "state.db"
        root = _project(tmp_path, server.port, n, database)
        write_subscribers(root / "subscribers.csv", n // 2)  # the first half goes out normally
        assert _send(root).returncode == 0
        assert len(server.deliveries) == n // 2
        write_subscribers(root / "subscribers.csv", n)
        remount(disk, "ro")
        r = _send(root)
        message = _clean_stop(r, "state database", "read-only", "readonly")
        assert len(server.deliveries) == n // 2, "mail went out that the ledger could not record"
        for command in (["status"], ["send", "--dry-run"]):  # they only read: report, or say why they cannot
            other = subprocess.run([sys.executable, "-m", "newsletter", command[0], f"issues/{SLUG}.yaml",
                                    *command[1:]], cwd=root, capture_output=True, text=True, timeout=120)
            assert "Traceback" not in other.stderr, (command, other.stderr[-2000:])
        remount(disk, "rw")
        _finish_and_account(root, server, database, n, "read-only")
    count("db faults survived", "read-only ledger (ro mount)")
    count("db fault messages", message[:90])


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("ROLLBACK")
""")


def _locker(database: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(database), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_ledger_locked_longer_than_busy_timeout_mid_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the write lock past the busy timeout (shortened to 0.3 s here) mid-send."""
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 300)
    n = size(1500, 10_000)
    with HostileSMTPServer(rates={}, pipelining=True, delay=0.0005) as server:
        database = tmp_path / "state" / "state.db"
        root = _project(tmp_path, server.port, n, database)
        config = load_config(root / "newsletter.toml")
        built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)
        keys = SigningKeys(ENV["NEWSLETTER_SECRET"].encode(), (), False)
        errors: list[BaseException] = []

        def run() -> None:
            conn = open_store(database)
            try:
                send_issue(built, SendOptions(get_backend("smtp", config), batch_size=100), config.subscribers, conn,
                           keys=keys)
            except BaseException as e:  # noqa: BLE001 - the test inspects it
                errors.append(e)
            finally:
                conn.close()

        sender = threading.Thread(target=run)
        sender.start()
        while len(server.deliveries) < n // 3 and sender.is_alive():
            time.sleep(0.001)
        locker = _locker(database, 3.0)
        sender.join(60)
        locker.wait(10)
        assert not sender.is_alive()
        assert errors and isinstance(errors[0], NewsletterError), errors
        message = str(errors[0])
        assert "state database" in message and "locked" in message, message
        assert len(server.deliveries) < n
        _recorded_if_delivered(server, database)
        monkeypatch.undo()
        _finish_and_account(root, server, database, n, "locked")
    count("db faults survived", "locked by another writer (mid-send)")
    count("db fault messages", message[:90])


@pytest.mark.skipif(os.environ.get("NEWSLETTER_TORTURE_SCALE", "small") != "full",
                    reason="waits out the real 15 s busy timeout: full scale only")
def test_ledger_locked_longer_than_real_busy_timeout_cli(tmp_path: Path) -> None:
    n = 500
    with HostileSMTPServer(rates={}, pipelining=True) as server:
        database = tmp_path / "state" / "state.db"
        root = _project(tmp_path, server.port, n, database)
        open_store(database).close()
        locker = _locker(database, BUSY_TIMEOUT_MS / 1000 + 3)
        r = _send(root)
        locker.wait(30)
        message = _clean_stop(r, "state database")
        assert len(server.deliveries) == 0
        _finish_and_account(root, server, database, n, "locked (cli)")
    count("db faults survived", "locked by another writer (CLI, real 15 s timeout)")
    count("db fault messages", message[:90])



def test_ledger_disk_full_during_a_sendgrid_send_then_rerun(tmp_path: Path) -> None:
    """The same through SendGrid, whose requests go out from a sender thread: the failure must
    still stop the send cleanly, with every request SendGrid accepted in the ledger."""
    n, batch = size(1000, 10_000), 20
    key = "SG.torture-db-" + "d" * 40
    env = {**ENV, "SENDGRID_API_KEY": key}
    with SendGridServer(key, validate=False, record="emails") as server, tmpfs(tmp_path / "small", 192) as disk:
        database = disk / "state.db"
        root = make_project(tmp_path / "p", subscribers=n, settings={
            "database": str(database), "sendgrid.host": server.url, "send.batch_size": batch})

        def send() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend",
                                   "sendgrid", "--yes"], cwd=root, env={**os.environ, **env}, capture_output=True,
                                  text=True, timeout=300)

        r = send()
        message = _clean_stop(r, "full")
        got = server.count_by_email()
        assert 0 < len(got) < n, len(got)
        rows = ledger_rows(database, SLUG)
        unrecorded = [e for e in got if rows.get(e, ("",))[0] not in ("sent", "sending", "uncertain")]
        assert not unrecorded, f"accepted by SendGrid but not in the ledger: {unrecorded[:10]}"
        remount(disk, "size=64m")
        r = send()
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        a = account([address(i) for i in range(n)], server.count_by_email(), ledger_rows(database, SLUG))
        assert r.returncode == (1 if a.uncertain else 0), r.stderr[-2000:]
        assert not a.problems, a.problems
        assert a.lost == 0 and a.duplicated == 0 and a.failed == 0 and a.sent + a.uncertain == n
        assert a.uncertain <= 2 * batch, a.as_dict()  # at most the requests in flight when the disk filled
    for k, v in a.as_dict().items():
        count("db fault accounting (disk full, sendgrid)", k, v)
    count("db faults survived", "disk full (tmpfs), sendgrid backend")
    count("db fault messages", message[:90])
