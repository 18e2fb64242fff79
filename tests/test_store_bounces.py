"""The bounce, sync and report operations of the store: one contract, run against SQLite and
against a real PostgreSQL server (tests/pg.py)."""

from __future__ import annotations

from newsletter.store import Store, open_store
from newsletter.store.bounces import Bounce
from newsletter.store.copy import copy_store

ISSUE, LATER = "2011-11-28-a", "2011-12-05-b"



def sent(store: Store, issue: str, *emails: str) -> None:
    for e in emails:
        store.mark_sent(issue, e, backend="smtp")


def test_a_hard_bounce_suppresses_at_once_with_its_evidence_and_counts_once(store: Store) -> None:
    sent(store, ISSUE, "ada@example.org", "bob@example.org")
    b = Bounce("mid:<1@mx>", "Ada@Example.org", ISSUE, "hard", "5.1.1", "550 5.1.1 user unknown")
    (r,) = store.record_bounces([b], soft_limit=3, soft_issues=2)
    assert (r.new, r.suppressed) == (True, True)
    s = store.suppression("ada@example.org")
    assert s is not None and (s.reason, s.source) == ("bounced", "bounce")
    assert s.detail == f"5.1.1 550 5.1.1 user unknown (issue {ISSUE})"
    assert store.record_bounce(b, soft_limit=3, soft_issues=2).new is False, "the same message again: nothing"
    assert store.known_message("mid:<1@mx>") and not store.known_message("mid:<2@mx>")
    assert store.delivery_counts(ISSUE) == {"bounced": 1}
    assert [a for _, a, e, _ in store.actions() if e == "ada@example.org"] == ["suppress"]
    assert list(store.bounces_of("ada@example.org"))[0][:3] == (ISSUE, "hard", "5.1.1")


def test_soft_bounces_suppress_only_after_n_across_m_issues(store: Store) -> None:
    sent(store, ISSUE, "full@example.org")
    sent(store, LATER, "full@example.org")

    def soft(key: str, issue: str) -> bool:
        r = store.record_bounce(Bounce(key, "Full@Example.org", issue, "soft", "4.2.2", "mailbox full"),
                                soft_limit=3, soft_issues=2)
        return r.suppressed

    assert not soft("m1", ISSUE) and not soft("m2", ISSUE) and not soft("m3", ISSUE), "one issue is not enough"
    assert store.soft_bounce_count("full@example.org") == (3, 1)
    assert not soft("m3", ISSUE), "the same message again counts nothing"
    assert store.soft_bounce_count("full@example.org") == (3, 1)
    assert store.delivery_counts(ISSUE) == {"soft-bounced": 1}
    assert soft("m4", LATER), "the fourth, from a second issue"
    s = store.suppression("full@example.org")
    assert s is not None and s.detail.startswith("4 soft bounces across 2 issues; last: 4.2.2 mailbox full")


def test_a_delivery_status_only_moves_forward(store: Store) -> None:
    sent(store, ISSUE, "a@example.org")
    store.record_bounce(Bounce("h", "a@example.org", ISSUE, "hard", "5.1.1"), soft_limit=3, soft_issues=2)
    store.record_bounce(Bounce("s", "a@example.org", ISSUE, "soft", "4.2.2"), soft_limit=9, soft_issues=9)
    assert store.delivery_counts(ISSUE) == {"bounced": 1}, "a later soft bounce does not undo a hard one"


def test_which_issues_mailed_an_address(store: Store) -> None:
    sent(store, ISSUE, "a@example.org", "b@example.org")
    sent(store, LATER, "a@example.org")
    assert store.mailed_issues("A@example.org")[0] in (ISSUE, LATER) and len(store.mailed_issues("a@example.org")) == 2
    assert store.mailed_issues("never@example.org") == []
    assert store.ledger_issues() == [ISSUE, LATER]
    assert sorted(store.issue_readers(ISSUE)) == ["a@example.org", "b@example.org"]


def test_settle_uncertain_changes_only_uncertain_rows(store: Store) -> None:
    store.mark_handoff(ISSUE, "sendgrid", [("u1@example.org", "<1@x>"), ("u2@example.org", "<2@x>"),
                                           ("ok@example.org", "<3@x>")])
    store.record_outcomes(ISSUE, "sendgrid", [("ok@example.org", "sent", "r", "")])
    assert store.recover(ISSUE) == 2
    n = store.settle_uncertain([(ISSUE, "U1@example.org", "sent", "processed"),
                                (ISSUE, "u2@example.org", "failed", "bounce: 550"),
                                (ISSUE, "ok@example.org", "failed", "late bounce"),
                                ("other", "u1@example.org", "failed", "another issue")])
    assert n == 2
    assert store.statuses(ISSUE, ["u1@example.org", "u2@example.org", "ok@example.org"]) == {
        "u1@example.org": "sent", "u2@example.org": "failed", "ok@example.org": "sent"}
    assert [r.last_error for r in store.rows(ISSUE, "failed")] == ["bounce: 550"]


def test_sync_cursors_remember_where_a_sync_stopped(store: Store) -> None:
    assert store.sync_cursor("sendgrid:bounces") is None
    store.set_sync_cursor("sendgrid:bounces", "1700000000")
    store.set_sync_cursor("sendgrid:bounces", "1700000099")
    assert store.sync_cursor("sendgrid:bounces") == "1700000099"
    assert store.sync_cursor("sendgrid:blocks") is None


def test_report_counts_attribute_unsubscribes_to_the_last_issue_sent_before(store: Store) -> None:
    sent(store, ISSUE, "a@example.org", "b@example.org", "c@example.org")
    store.suppress("a@example.org", "unsubscribed", source="one-click")  # after ISSUE only
    sent(store, LATER, "b@example.org", "c@example.org")
    store.suppress("b@example.org", "complained", source="sendgrid-webhook")  # after LATER
    store.record_bounce(Bounce("k", "c@example.org", LATER, "hard", "5.1.1"), soft_limit=3, soft_issues=2)
    first, later = store.report_counts(ISSUE), store.report_counts(LATER)
    assert (first["sent"], first["unsubscribes"], first["complaints"], first["hard_bounces"]) == (3, 1, 0, 0)
    assert (later["sent"], later["unsubscribes"], later["complaints"], later["hard_bounces"]) == (2, 0, 1, 1)


def test_db_copy_moves_the_bounce_tables_too(store: Store, tmp_path: object) -> None:
    sent(store, ISSUE, "a@example.org")
    store.record_bounce(Bounce("k", "a@example.org", ISSUE, "hard", "5.1.1", "gone"), soft_limit=3, soft_issues=2)
    store.set_sync_cursor("sendgrid:bounces", "42")
    with open_store(str(tmp_path / "copy.db")) as dst:  # type: ignore[operator]
        copied = {c.table: c.rows for c in copy_store(store, dst)}
        assert copied["bounces"] == 1 and copied["sync_cursors"] == 1
        assert dst.sync_cursor("sendgrid:bounces") == "42"
        assert dst.soft_bounce_count("a@example.org") == (0, 0) and dst.known_message("k")
        dst.record_bounce(Bounce("k2", "a@example.org", ISSUE, "soft", "4.2.2"), soft_limit=3, soft_issues=2)
        assert dst.count("bounces") == 2, "new rows continue after the copied ids"
