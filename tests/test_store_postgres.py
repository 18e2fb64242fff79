"""PostgreSQL as a team runs it: `serve` and `send` on different machines sharing only the
database URL, a server restart in the middle of a send, and every bad setting as one line
that never shows the password. Real processes against the real server of tests/pg.py."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import psycopg
import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from newsletter.deliver.backends.base import Outcome
from newsletter.deliver.message import Recipient
from newsletter.store import DatabaseError, open_store
from newsletter.store.ledger import Ledger
from newsletter.store.postgres import MIGRATIONS
from tests.conftest import run, single_list
from tests.pg import PASSWORD, PgServer
from tests.ports import free_port
from tests.sendkit import SLUG, address, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml, line_of
from tests.webserver import one_click, serve_in_process, serve_in_thread

SECRET = "two-machines-signing-key-0123456789abcdef"
NEXT = "2011-12-05-next"


def set_database(root: Path, value: str) -> int:
    """Set the top-level `database` of the project's newsletter.toml; returns its line."""
    edit_toml(root / "newsletter.toml", {"database": value})
    return line_of(root / "newsletter.toml", "database = ")


def _one_line_without_password(r: subprocess.CompletedProcess[str], *secrets: str) -> str:
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for s in secrets:
        assert s not in r.stdout + r.stderr
    return err


def test_bad_database_settings_are_one_clear_line_never_the_password(tmp_path: Path, pg_server: PgServer,
                                                                     pg_database: str) -> None:
    root = make_project(tmp_path / "p", subscribers=3)
    issue = f"issues/{SLUG}.yaml"
    dbname = pg_database.rsplit("/", 1)[1]
    secret = "s3cret-never-shown"
    cases = {
        "refused password": (pg_server.url(dbname, password=secret), "password authentication failed"),
        "unreachable host": (f"postgresql://news:{secret}@127.0.0.1:{free_port()}/x", "Connection refused"),
        "unknown host": (f"postgresql://news:{secret}@no-such-host.invalid/x", "no-such-host.invalid"),
        "wrong URL": (f"mysql://news:{secret}@127.0.0.1/x", "not a path or a postgresql:// URL"),
        "no such database": (pg_server.url("nosuchdb"), 'database "nosuchdb" does not exist'),
    }
    commands = [["status", issue], ["send", issue, "--yes"], ["db", "migrate"]]
    for i, (what, (url, expected)) in enumerate(cases.items()):
        for args in commands if i == 0 else [commands[i % len(commands)]]:  # each command, each problem
            r = run(args, root, env={"NEWSLETTER_DATABASE": url})
            err = _one_line_without_password(r, secret, PASSWORD)
            assert err.startswith("NEWSLETTER_DATABASE (") or err.startswith("NEWSLETTER_DATABASE:"), (what, err)
            assert expected in err, (what, err)
    assert not (root / ".newsletter").exists() and not (root / "outbox").exists()  # nothing written anywhere

    # a newer schema (a newer newsletter migrated it): refused, nothing sent
    with open_store(pg_database) as store, store.transaction():
        store._conn.execute("INSERT INTO newsletter_schema VALUES (99, 'later')")  # noqa: SLF001 - plays that version
    r = run(["send", issue, "--yes"], root, env={"NEWSLETTER_DATABASE": pg_database})
    assert "schema version 99, newer than this newsletter knows" in _one_line_without_password(r, PASSWORD)
    assert not (root / "outbox").exists()


def test_a_password_in_newsletter_toml_is_refused_with_its_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", subscribers=3)
    line = set_database(root, "postgresql://news:hunter2@db.example.org/news")
    r = run(["status", f"issues/{SLUG}.yaml"], root)
    err = _one_line_without_password(r, "hunter2")
    assert err.startswith(f"newsletter.toml:{line}: database: holds a password"), err


def test_the_url_in_newsletter_toml_works_and_the_environment_overrides_it(tmp_path: Path, pg_server: PgServer,
                                                                          pg_database: str) -> None:
    root = make_project(tmp_path / "p", subscribers=5)
    dbname = pg_database.rsplit("/", 1)[1]
    set_database(root, pg_server.url(dbname, password=None))
    r = run(["send", f"issues/{SLUG}.yaml", "--yes"], root, env={"PGPASSWORD": PASSWORD})  # libpq's own variable
    assert r.returncode == 0, r.stderr
    with open_store(pg_database) as store:
        assert store.counts(SLUG)["sent"] == 5
    other = tmp_path / "elsewhere.db"
    r = run(["send", f"issues/{SLUG}.yaml", "--yes"], root, env={"NEWSLETTER_DATABASE": str(other)})
    assert r.returncode == 0 and "already sent      0" in r.stdout  # a different, empty state
    with open_store(other) as store:
        assert store.counts(SLUG)["sent"] == 5


def test_db_copy_moves_a_project_to_postgresql_and_back(tmp_path: Path, pg_database: str) -> None:
    root = make_project(tmp_path / "p", subscribers=4)
    assert run(["send", f"issues/{SLUG}.yaml", "--yes"], root).returncode == 0
    assert run(["unsubscribe", address(1), "--reason", "asked"], root).returncode == 0
    lite = root / ".newsletter" / "state.db"
    r = run(["db", "copy", str(lite), pg_database], root)
    assert r.returncode == 0 and "counts verified" in r.stdout and PASSWORD not in r.stdout + r.stderr, r.stderr
    assert re.search(r"ledger\s+4 rows", r.stdout) and re.search(r"suppressions\s+1 rows", r.stdout)
    shown = run(["status", f"issues/{SLUG}.yaml"], root, env={"NEWSLETTER_DATABASE": pg_database})
    assert shown.returncode == 0 and "sent 4" in shown.stdout
    with open_store(pg_database) as store:
        assert store.is_suppressed(address(1)) and store.count("actions") == 1
    again = run(["db", "copy", str(lite), pg_database], root)  # never merged into a database in use
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr
    back = tmp_path / "back.db"
    assert run(["db", "copy", pg_database, str(back)], root).returncode == 0
    with open_store(back) as b, open_store(lite) as a:
        assert [list(b.dump(t)) for t in ("suppressions", "ledger", "actions")] == \
               [list(a.dump(t)) for t in ("suppressions", "ledger", "actions")]
    migrated = run(["db", "migrate"], root, env={"NEWSLETTER_DATABASE": pg_database})
    assert migrated.returncode == 0 and f"schema version {len(MIGRATIONS)}, up to date" in migrated.stdout


def test_serve_reconnects_after_the_database_restarts(tmp_path: Path, pg_server: PgServer) -> None:
    """A long-running `serve` outlives a database restart: the request that meets the cut
    connection gets a 503 with Retry-After (nothing half-written), the next ones connect again."""
    url = pg_server.new_database()
    root = make_project(tmp_path / "p")
    single_list(root)  # one list: a one-click is a suppression
    config = dataclasses.replace(load_config(root / "newsletter.toml"), database_url=url)
    keys = SigningKeys(SECRET.encode(), (), False)

    def link(email: str) -> str:
        return f"/unsubscribe/{make_token(keys, email, config.list_id, 'en')}"

    with serve_in_thread(config, keys) as port:
        assert one_click(port, link("before@example.org")).status == 200
        pg_server.restart("fast")
        statuses = [one_click(port, link(f"after{i}@example.org")).status for i in range(3)]
    assert statuses[0] in (200, 503) and statuses[1:] == [200, 200], statuses
    with open_store(url) as store:
        recorded = {s.email for s in store.all_suppressions()}
    assert recorded == {"before@example.org"} | {f"after{i}@example.org" for i, s in enumerate(statuses) if s == 200}


def test_a_mark_in_flight_when_the_server_goes_fails_in_one_line_and_keeps_its_outcome(pg_database: str) -> None:
    """The SMTP send's mark is sent, then waited for after the next message is built: a
    server that goes in between makes the wait raise (so the "." is never written), in one
    line without the password, and the earlier reader's outcome it carried is kept for the
    next write, not lost."""
    url = pg_database
    with open_store(url) as store:
        ledger = Ledger(store, "i", "smtp")
        ledger.mark_sending([Recipient("a@x.org", None, {}, "<1@x>", "")])
        ledger.record_one(Outcome("a@x.org", "sent", "250 ok"))
        with psycopg.connect(url, autocommit=True) as other, other.transaction():
            other.execute("SELECT 1 FROM ledger WHERE email = 'a@x.org' FOR UPDATE")  # the mark must wait
            committed = ledger.start_sending([Recipient("b@x.org", None, {}, "<2@x>", "")])
            assert committed is not None
            waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            deadline = time.monotonic() + 10
            while not (pids := other.execute(waiting).fetchall()) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(pids) == 1
            other.execute("SELECT pg_terminate_backend(%s)", pids[0])  # its server goes away
            with pytest.raises(DatabaseError) as e:
                committed()
        message = str(e.value)
        assert "\n" not in message and PASSWORD not in message and "cannot write" in message, message
        assert store.statuses("i", ["a@x.org", "b@x.org"]) == {"a@x.org": "sending"}  # reconnects
        ledger.flush()
        assert store.statuses("i", ["a@x.org", "b@x.org"]) == {"a@x.org": "sent"}


def test_a_started_mark_survives_its_statement_being_deallocated(pg_database: str) -> None:
    """The started mark is a statement prepared once per connection; psycopg sends DEALLOCATE
    ALL after a ROLLBACK or DROP on the same connection, and the next mark must still be written."""
    with open_store(pg_database) as store:
        for i, email in enumerate(["a@x.org", "b@x.org"]):
            committed = store.start_handoff("i", "smtp", [(email, f"<{i}@x>")])
            assert committed is not None
            committed()
            store._conn.execute("DEALLOCATE ALL")  # noqa: SLF001 - what psycopg does after a rollback
        assert store.statuses("i", ["a@x.org", "b@x.org"]) == {"a@x.org": "sending", "b@x.org": "sending"}


def test_commits_are_asynchronous_unless_the_url_asks_for_durable_ones(pg_database: str) -> None:
    """The default trades the last instant before a server crash for speed, as SQLite's
    synchronous=NORMAL does; the URL's options choose a durable commit per hand-off."""
    with open_store(pg_database) as store:
        assert store._conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"  # noqa: SLF001
    with open_store(pg_database + "?options=-c%20synchronous_commit%3Don") as store:
        assert store._conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"  # noqa: SLF001


def _to(eml: Path) -> str:
    return str(message_from_bytes(eml.read_bytes(), policy=policy.default)["To"])


def _unsubscribe_path(eml: Path) -> str:
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    url = re.search(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
    return "/unsubscribe/" + url.split("/unsubscribe/", 1)[1]


def test_two_machines_share_only_the_database_url(tmp_path: Path, pg_database: str) -> None:
    """`serve` runs in one folder (the web server), `send` in another (an editor's laptop):
    an unsubscribe through serve is honoured by the next send."""
    web = make_project(tmp_path / "web", subscribers=0)
    laptop = make_project(tmp_path / "laptop", subscribers=6)
    shutil.copy(laptop / "issues" / f"{SLUG}.yaml", laptop / "issues" / f"{NEXT}.yaml")
    env = {"NEWSLETTER_DATABASE": pg_database, "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": ""}
    first = run(["send", f"issues/{SLUG}.yaml", "--yes"], laptop, env=env)
    assert first.returncode == 0, first.stderr
    emls = sorted((laptop / "outbox" / SLUG).glob("*.eml"))
    assert len(emls) == 6
    leaving = address(2)
    (eml,) = [p for p in emls if f"<{leaving}>" in _to(p)]
    with serve_in_process(web, env) as served:
        assert one_click(served.port, _unsubscribe_path(eml)).status == 200
    assert not (web / ".newsletter").exists() and not (laptop / ".newsletter").exists()  # no local state at all

    second = run(["send", f"issues/{NEXT}.yaml", "--yes"], laptop, env=env)
    assert second.returncode == 0, second.stderr
    assert re.search(r"suppressed\s+1\b", second.stdout), second.stdout
    mailed = [_to(p) for p in (laptop / "outbox" / NEXT).glob("*.eml")]
    assert len(mailed) == 5 and not any(leaving in to for to in mailed)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_restart_mid_send_resumes_like_a_kill(tmp_path: Path, pg_server: PgServer, mode: str) -> None:
    """A restart (`fast`: the server writes out what it holds) with the default settings, and a
    crash (`immediate`) with durable commits asked for in the URL: nobody doubled or skipped."""
    n = 600
    url = pg_server.new_database()
    if mode == "immediate":
        url += "?options=-c%20synchronous_commit%3Don"
    env = {**os.environ, "NEWSLETTER_DATABASE": url, "NEWSLETTER_SECRET": SECRET}
    with SMTPServer(delay=0.002, pipelining=True) as smtp:
        root = make_project(tmp_path / "p", subscribers=n, smtp_port=smtp.port)
        cmd = [sys.executable, "-m", "newsletter", "send", f"issues/{SLUG}.yaml", "--backend", "smtp", "--yes"]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(smtp.deliveries) < n // 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()
        pg_server.restart(mode)  # every connection cut at once
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, out + err
        assert "Traceback" not in err and PASSWORD not in out + err
        stopped = [line for line in err.splitlines() if "state database" in line]
        assert len(stopped) == 1 and stopped[0].startswith("NEWSLETTER_DATABASE ("), err
        assert len(smtp.deliveries) < n

        again = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        with open_store(url) as store:
            everyone = [address(i) for i in range(n)]
            status = store.statuses(SLUG, everyone)
        uncertain = {e for e, s in status.items() if s == "uncertain"}
        assert again.returncode == (1 if uncertain else 0), again.stderr
        counts = smtp.counts()
        assert [e for e in everyone if counts[e] > 1] == []  # nobody doubled
        assert [e for e in everyone if counts[e] == 0 and e not in uncertain] == []  # nobody skipped
        assert all(status[e] == "sent" for e in everyone if e not in uncertain)
        assert len(uncertain) <= 1  # one connection: at most the one message in its hand-off
