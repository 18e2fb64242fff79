"""One contract, two stores: every test here runs against SQLite and against a real
PostgreSQL server (tests/pg.py), so the two implementations behave the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from newsletter.store import TABLES, DatabaseError, IssueLocked, Store, open_store, spool
from newsletter.store.copy import CopyError, copy_store


def test_suppressions_are_keyed_idempotent_and_logged(store: Store) -> None:
    assert store.suppress(" Ada@Example.org ", "unsubscribed", source="one-click")
    assert not store.suppress("ada@example.org", "bounced", source="webhook")  # keeps the first reason
    assert store.is_suppressed("ADA@example.org") and not store.is_suppressed("bob@example.org")
    s = store.suppression("ada@example.org")
    assert s is not None and (s.email, s.reason, s.source) == ("ada@example.org", "unsubscribed", "one-click")
    assert store.suppress_many([("b@x.org", "manual", "cli", ""), ("a.b@x.org", "bounced", "import", "550"),
                                ("B@x.org", "manual", "cli", "")]) == 2
    assert [x.email for x in store.all_suppressions()] == ["a.b@x.org", "ada@example.org", "b@x.org"]  # byte order
    assert store.suppressed_among(["A.B@x.org", "nobody@x.org", "b@x.org"]) == {"a.b@x.org", "b@x.org"}
    assert [(a, e) for _, a, e, _ in store.actions()] == [("suppress", "ada@example.org"),
                                                          ("suppress", "b@x.org"), ("suppress", "a.b@x.org")]


def test_a_bad_row_writes_nothing_of_its_batch(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown suppression reason"):
        store.suppress_many([("a@x.org", "manual", "", ""), ("b@x.org", "whatever", "", "")])
    assert list(store.all_suppressions()) == [] and store.actions() == []


def test_resubscribe_only_lifts_what_it_is_allowed_to(store: Store) -> None:
    store.suppress("gone@x.org", "unsubscribed", source="page")
    store.suppress("bounced@x.org", "bounced", source="webhook")
    assert not store.resubscribe("bounced@x.org", source="page", only=("unsubscribed",))
    assert store.resubscribe("GONE@x.org", source="page", only=("unsubscribed",))
    assert not store.resubscribe("gone@x.org")  # nothing left to lift
    assert store.resubscribe("bounced@x.org", source="cli", detail="asked by phone")
    assert list(store.all_suppressions()) == []
    assert [(a, e, d) for _, a, e, d in store.actions()][-2:] == [
        ("resubscribe", "gone@x.org", "via page"), ("resubscribe", "bounced@x.org", "via cli: asked by phone")]


def test_the_ledger_follows_the_kill_safety_rule(store: Store) -> None:
    issue = "2024-01-01-x"
    store.mark_handoff(issue, "smtp", [("a@x.org", "<1@x>"), ("b@x.org", "<2@x>"), ("c@x.org", "<3@x>")])
    assert store.statuses(issue, ["A@x.org", "b@x.org", "d@x.org"]) == {"a@x.org": "sending", "b@x.org": "sending"}
    # outcomes are written with the next mark, in one transaction
    store.mark_handoff(issue, "smtp", [("d@x.org", "<4@x>")],
                       [("a@x.org", "sent", "250 ok", ""), ("b@x.org", "failed", "", "550 no such user")])
    store.mark_sent(issue, "d@x.org", backend="smtp", remote_id="250 queued")
    assert store.counts(issue) == {"sending": 1, "sent": 2, "failed": 1, "uncertain": 0}
    assert store.counts("another-issue") == {"sending": 0, "sent": 0, "failed": 0, "uncertain": 0}
    assert store.sent_among(issue, ["a@x.org", "b@x.org", "d@x.org", "z@x.org"]) == {"a@x.org", "d@x.org"}
    assert store.recover(issue) == 1  # c was being handed off when the run died
    (row,) = store.rows(issue, "uncertain")
    assert (row.email, row.message_id, row.attempts) == ("c@x.org", "<3@x>", 1) and "hand-off" in row.last_error
    (failed,) = store.rows(issue, "failed")
    assert failed.last_error == "550 no such user"
    store.mark_handoff(issue, "smtp", [("b@x.org", "<5@x>")])  # a retry counts its attempts
    assert [(r.email, r.attempts) for r in store.rows(issue, "sending")] == [("b@x.org", 2)]
    assert [r.email for r in store.rows(issue, "sent", limit=1)] == ["a@x.org"]
    assert store.recover(issue) == 1 and store.recover(issue) == 0


def test_one_mark_with_the_previous_readers_outcome(store: Store) -> None:
    """The SMTP send's every message: one mark carrying the outcome of the message before it
    (PostgreSQL writes this shape with scalars, not arrays); the first mark carries none."""
    store.mark_handoff("i", "smtp", [("a@x.org", "<1@x>")])
    store.mark_handoff("i", "smtp", [("b@x.org", "<2@x>")], [("a@x.org", "sent", "250 queued as A1", "")])
    store.mark_handoff("i", "smtp", [("c@x.org", "<3@x>")], [("b@x.org", "failed", "", "550 no such user")])
    assert store.statuses("i", ["a@x.org", "b@x.org", "c@x.org"]) == {
        "a@x.org": "sent", "b@x.org": "failed", "c@x.org": "sending"}
    (a,) = store.rows("i", "sent")
    assert (a.remote_id, a.message_id, a.attempts, a.backend) == ("250 queued as A1", "<1@x>", 1, "smtp")
    (b,) = store.rows("i", "failed")
    assert (b.last_error, b.message_id) == ("550 no such user", "<2@x>")
    store.mark_handoff("i", "smtp", [("b@x.org", "<4@x>")], [("c@x.org", "sent", "", "")])  # b's retry
    assert store.statuses("i", ["b@x.org", "c@x.org"]) == {"b@x.org": "sending", "c@x.org": "sent"}
    assert [(r.email, r.attempts, r.message_id) for r in store.rows("i", "sending")] == [("b@x.org", 2, "<4@x>")]


def test_a_started_mark_is_the_same_mark_once_committed(store: Store) -> None:
    """start_handoff: the SMTP send's mark, committed while the sender builds its next message.
    Once its call returns the rows are as mark_handoff's; until then the connection is the
    mark's, so another thread's operation waits instead of colliding with it."""
    steps = [("a@x.org", None), ("b@x.org", ("a@x.org", "sent", "250 queued as A1", "")),
             ("c@x.org", ("b@x.org", "failed", "", "550 no such user")), ("b@x.org", ("c@x.org", "sent", "", ""))]
    for i, (email, outcome) in enumerate(steps):
        committed = store.start_handoff("i", "smtp", [(email, f"<{i}@x>")], [outcome] if outcome else [])
        if committed is not None:
            committed()
    assert store.statuses("i", ["a@x.org", "b@x.org", "c@x.org"]) == {
        "a@x.org": "sent", "b@x.org": "sending", "c@x.org": "sent"}
    assert [(r.email, r.attempts, r.message_id) for r in store.rows("i", "sending")] == [("b@x.org", 2, "<3@x>")]
    (a, c) = store.rows("i", "sent")
    assert (a.remote_id, a.message_id, c.message_id) == ("250 queued as A1", "<0@x>", "<2@x>")

    committed = store.start_handoff("i", "smtp", [("d@x.org", "<4@x>")], [("b@x.org", "sent", "", "")])
    seen: list[dict[str, int]] = []
    other = threading.Thread(target=lambda: seen.append(store.counts("i")))
    other.start()
    if committed is not None:  # in flight (PostgreSQL): the other thread waits for it
        other.join(0.3)
        assert other.is_alive() and seen == []
        committed()
    other.join(10)
    assert seen == [{"sending": 1, "sent": 3, "failed": 0, "uncertain": 0}]


def test_a_send_is_resumed_once_anyone_has_the_issue(store: Store) -> None:
    """Ledger.resumed decides whether the list is checked against `sent_among` chunk by chunk:
    not for a first send, nor after hand-offs that were not (yet) sent; yes after one sent."""
    from newsletter.store.ledger import Ledger

    ledger = Ledger(store, "i", "smtp")
    assert not ledger.resumed()
    store.mark_handoff("i", "smtp", [("a@x.org", "<1@x>")])
    store.record_outcomes("i", "smtp", [("b@x.org", "failed", "", "550 no")])
    store.mark_sent("other-issue", "c@x.org")
    assert not ledger.resumed()
    store.mark_sent("i", "a@x.org")
    assert ledger.resumed() and ledger.sent_among(["a@x.org", "b@x.org"]) == {"a@x.org"}


def test_many_keys_are_looked_up_in_chunks(store: Store) -> None:
    keys = [f"r{i:05d}@x.org" for i in range(12_345)]
    store.record_outcomes("big", "outbox", [(k, "sent", "", "") for k in keys[::2]])
    store.suppress_many([(k, "manual", "test", "") for k in keys[1::3]], log=False)
    assert store.sent_among("big", keys) == set(keys[::2])
    assert set(store.statuses("big", keys)) == set(keys[::2])
    assert store.suppressed_among(keys) == set(keys[1::3])
    assert store.count("ledger") == len(keys[::2]) and store.actions() == []


def test_delivery_statuses_never_move_backwards(store: Store) -> None:
    store.mark_sent("i", "a@x.org")
    assert store.record_delivery("i", "a@x.org", "delivered", ("", "deferred"))
    assert not store.record_delivery("i", "a@x.org", "deferred", ("",))
    assert not store.record_delivery("i", "nobody@x.org", "delivered", ("", "deferred"))
    assert [r[8] for r in store.dump("ledger")] == ["delivered"]


def test_a_transaction_is_all_or_nothing_and_nests(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.suppress("a@x.org", "manual")
            store.mark_sent("i", "a@x.org")
            with store.transaction():
                store.log_action("import", "", "inner")
            raise RuntimeError("stop")
    assert (store.count("suppressions"), store.count("ledger"), store.count("actions")) == (0, 0, 0)
    with store.transaction():
        store.suppress("a@x.org", "manual")
        store.log_action("import", "", "done")
    assert store.count("actions") == 2


def test_threads_take_turns(store: Store) -> None:
    def work(n: int) -> None:
        for i in range(40):
            store.suppress(f"t{n}-{i}@x.org", "unsubscribed", source="one-click")
            store.mark_sent("i", f"t{n}-{i}@x.org")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count("suppressions") == 240 and store.counts("i")["sent"] == 240 and store.count("actions") == 240


def test_one_sender_per_issue_says_who_and_since_when(store: Store, target: str) -> None:
    with store.issue_lock("issue-a"):
        with open_store(target) as other:
            with pytest.raises(IssueLocked, match=rf"of issue-a is running \(pid {os.getpid()} on .+ since \d{{4}}-"):
                with other.issue_lock("issue-a"):
                    pass
            with other.issue_lock("issue-b"):  # another issue is another lock
                pass
    with open_store(target) as other, other.issue_lock("issue-a"):  # released
        pass


def test_a_killed_holder_leaves_no_lock_behind(target: str) -> None:
    script = ("import sys, time; from newsletter.store import open_store\n"
              "s = open_store(sys.argv[1])\n"
              "with s.issue_lock('issue-k'):\n    print('locked', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, target], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with open_store(target) as s:
            with pytest.raises(IssueLocked, match=f"pid {proc.pid} "):
                with s.issue_lock("issue-k"):
                    pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open_store(target) as s, s.issue_lock("issue-k"):
        pass


def test_migrations_are_recorded_and_a_newer_schema_is_refused(store: Store, target: str) -> None:
    from newsletter.store import postgres, sqlite

    latest = len(sqlite.MIGRATIONS if store.kind == "sqlite" else postgres.MIGRATIONS)
    assert store.schema_version() == latest and store.migrate() == latest
    with store.transaction():  # what a newer newsletter would leave behind
        if store.kind == "sqlite":
            store._conn.execute(f"PRAGMA user_version = {latest + 1}")  # noqa: SLF001 - the test plays that version
        else:
            store._conn.execute("INSERT INTO newsletter_schema VALUES (%s, 'later')", (latest + 1,))  # noqa: SLF001
    with pytest.raises(DatabaseError, match=rf"schema version {latest + 1}, newer than this newsletter knows"):
        open_store(target)


def test_two_processes_migrating_at_once(target: str) -> None:
    script = "import sys; from newsletter.store import open_store; open_store(sys.argv[1]).close(); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", script, target], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o.strip() for o, _ in outs] == ["ok"] * 4, [e for _, e in outs]
    with open_store(target) as s:
        assert s.count("ledger") == 0


def test_copy_moves_everything_and_refuses_a_non_empty_destination(store: Store, tmp_path: object,
                                                                   pg_database: str) -> None:
    store.suppress_many([(f"s{i}@x.org", "bounced", "import", "550") for i in range(1200)])
    store.record_outcomes("i", "smtp", [(f"r{i}@x.org", "sent", f"id{i}", "") for i in range(7000)])
    store.record_delivery("i", "r3@x.org", "delivered", ("",))
    other = pg_database if store.kind == "sqlite" else str(tmp_path / "copy.db")  # type: ignore[operator]
    with open_store(other) as dst:
        copied = copy_store(store, dst)
        assert [c.table for c in copied] == list(TABLES)  # every table, the ones later issues add too
        assert {c.table: c.rows for c in copied} == {**dict.fromkeys(TABLES, 0), "suppressions": 1200,
                                                     "ledger": 7000, "actions": 1200}
        for table in ("suppressions", "ledger", "actions"):
            assert list(dst.dump(table)) == list(store.dump(table))
        dst.log_action("after", "", "ids continue")  # the id sequence continues after the copied ids
        assert dst.count("actions") == 1201
        with pytest.raises(CopyError, match="not empty"):
            copy_store(store, dst)


def test_a_retry_in_the_same_commit_and_repeated_outcomes(store: Store) -> None:
    """A reader whose earlier attempt's outcome is committed with their next mark ends `sending`
    (the mark is the later event); of two outcomes for one reader, the later one is kept."""
    store.mark_handoff("i", "smtp", [("a@x.org", "<1@x>"), ("b@x.org", "<2@x>")])
    store.mark_handoff("i", "smtp", [("a@x.org", "<3@x>")],
                       [("a@x.org", "failed", "", "451 try later"), ("b@x.org", "failed", "", "451"),
                        ("b@x.org", "sent", "250 ok", "")])
    assert store.statuses("i", ["a@x.org", "b@x.org"]) == {"a@x.org": "sending", "b@x.org": "sent"}
    (a,) = store.rows("i", "sending")
    assert (a.message_id, a.attempts) == ("<3@x>", 2)
    (b,) = store.rows("i", "sent")
    assert (b.remote_id, b.last_error) == ("250 ok", "")


def test_a_closed_store_refuses_with_one_line(target: str) -> None:
    store = open_store(target)
    store.close()
    with pytest.raises(DatabaseError, match="cannot (read|write) the state database"):
        store.suppress("a@x.org", "manual")
    with pytest.raises(DatabaseError, match="cannot (read|write) the state database"):
        store.counts("i")


def test_the_unsubscribe_spool_is_sqlite_only_and_every_reader_honours_it(store: Store, target: str) -> None:
    """Issue 10 item 11: PostgreSQL has no spool (row locks: an unsubscribe never waits out a send);
    on SQLite a spooled address is suppressed for every caller at once, and applied on the next open."""
    if store.kind == "postgresql":
        assert store.spool_database is None and store.spooled() == set() and store.drain_spool() == 0
        return
    assert store.spool_database is not None
    spool.append(store.spool_database, " Ada@Example.org ", "one-click")
    assert store.is_suppressed("ada@example.org") and not store.is_suppressed("b@example.org")
    assert store.suppressed_among(["ADA@example.org", "b@example.org"]) == {"ada@example.org"}
    assert store.count("suppressions") == 0  # honoured, not yet applied
    with open_store(target) as reopened:  # a writable store applies the spool as it opens
        assert spool.pending(store.spool_database) == set()
        applied = reopened.suppression("ada@example.org")
        assert applied is not None and (applied.reason, applied.source) == ("unsubscribed", "one-click")
        assert reopened.is_suppressed("ada@example.org")
