"""The subscriber half of the store contract: lists, memberships, consent, forgetting. Every
test runs against SQLite and a real PostgreSQL server (tests/pg.py), like test_store_contract."""

from __future__ import annotations

import threading

from newsletter.store import ImportCounts, ImportRow, Store, now, open_store
from newsletter.store.copy import copy_store


def rows(*people: tuple[str, str]) -> list[ImportRow]:
    return [ImportRow(address=a, name=n, language="en", fields={"city": n[:3]}) for a, n in people]


def test_import_adds_updates_and_twice_changes_nothing(store: Store) -> None:
    c = store.import_members("news", rows(("Ada@x.org", "Ada"), ("bob@x.org", "Bob")), source="a.csv")
    assert (c.added, c.updated, c.unchanged) == (2, 0, 0)
    before = store.person("ada@x.org")
    again = store.import_members("news", rows(("Ada@x.org", "Ada"), ("bob@x.org", "Bob")), source="a.csv")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert store.person("ada@x.org") == before  # not even a timestamp moved
    assert len(before["consents"]) == 1 and before["consents"][0]["method"] == "import"
    changed = store.import_members("news", rows(("ada@x.org", "Ada L."), ("bob@x.org", "Bob")), source="b.csv")
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 1)
    assert [(m.email, m.name, m.fields) for m in store.members("news")] == [
        ("ada@x.org", "Ada L.", {"city": "Ada"}), ("bob@x.org", "Bob", {"city": "Bob"})]
    assert store.member_counts() == {"news": {"pending": 0, "confirmed": 2, "unsubscribed": 0}}
    assert list(store.members("other")) == []


def test_import_never_resubscribes_the_unsubscribed_the_suppressed_or_the_forgotten(store: Store) -> None:
    store.import_members("news", rows(("left@x.org", "L")), source="a.csv")
    assert store.set_membership("news", "LEFT@x.org", "unsubscribed", source="page")
    assert not store.set_membership("news", "left@x.org", "unsubscribed", source="page")  # no change, no log
    store.suppress("bounced@x.org", "bounced", source="webhook")
    store.forget("gone@x.org", ["h-gone"])
    c = store.import_members("news", [*rows(("left@x.org", "L"), ("bounced@x.org", "B")),
                                      ImportRow("gone@x.org", "G", "en", {}, ("h-other", "h-gone"))], source="b.csv")
    assert (c.added, c.unsubscribed, c.suppressed, c.forgotten) == (0, 1, 1, 1)
    assert store.membership("news", "left@x.org") == "unsubscribed"
    assert store.membership("news", "bounced@x.org") is None and store.person("gone@x.org")["person"] is None
    assert store.unsubscribed_among("news", ["left@x.org", "x@x.org"]) == {"left@x.org"}
    assert store.unsubscribed_among("other", ["left@x.org"]) == set()  # per list
    assert [a for _, a, _, _ in store.actions()].count("unsubscribe-list") == 1


def test_members_are_paged_by_keyset_and_filtered_by_status(store: Store) -> None:
    people = [(f"p{i:04d}@x.org", f"P{i}") for i in range(250)]
    counts = ImportCounts()
    for i in range(0, 250, 100):
        store.import_members("big", rows(*people[i:i + 100]), source="big.csv", counts=counts)
    assert counts.added == 250
    store.set_membership("big", "p0007@x.org", "unsubscribed", source="cli")
    got = [m.email for m in store.members("big", page=40)]
    assert len(got) == 249 and got == sorted(got) and "p0007@x.org" not in got
    assert [m.email for m in store.members("big", ("unsubscribed",))] == ["p0007@x.org"]


def test_signup_confirm_replay_and_concurrency(store: Store, target: str) -> None:
    long_ago = "2000-01-01T00:00:00.000000Z"
    s = store.signup("news", "New@x.org", "New", "fr", form_url="https://n/subscribe/news", wording="v1",
                     ip_hash="iphash", forget_hashes=["h"], resend_after=long_ago)
    assert s.new and s.send_confirmation and s.status == "pending" and s.stamp
    assert list(store.members("news")) == []  # pending never receives issues
    again = store.signup("news", "new@x.org", "New", "fr", form_url="f", wording="v1", ip_hash="i",
                         forget_hashes=[], resend_after=s.stamp)  # inside the window: no second message
    assert not again.new and not again.send_confirmation
    assert not store.confirm("news", "new@x.org", "2001-01-01T00:00:00.000000Z")  # not this message's stamp
    assert store.confirm("news", "new@x.org", s.stamp)
    assert not store.confirm("news", "new@x.org", s.stamp)  # replayed: nothing more
    (consent,) = store.person("new@x.org")["consents"]
    assert consent["confirmed_at"] >= consent["requested_at"] and consent["ip_hash"] == "iphash"
    assert consent["form_url"] == "https://n/subscribe/news" and consent["wording"] == "v1"
    assert [m.email for m in store.members("news")] == ["New@x.org"]  # the address as given
    # unsubscribing afterwards: the old link cannot bring them back
    store.set_membership("news", "new@x.org", "unsubscribed", source="page")
    assert not store.confirm("news", "new@x.org", s.stamp)
    assert store.signup("x", "sup@x.org", "", "en", form_url="f", wording="v1", ip_hash="", forget_hashes=[],
                        resend_after=long_ago).suppressed is False
    store.suppress("sup2@x.org", "complained")
    assert store.signup("x", "sup2@x.org", "", "en", form_url="f", wording="v1", ip_hash="", forget_hashes=[],
                        resend_after=long_ago).suppressed

    # 20 threads, each with its own connection (as many `serve` workers/processes): one
    # membership, one claim of the confirmation message
    results = []
    barrier = threading.Barrier(20)

    def one() -> None:
        s2 = open_store(target)
        try:
            barrier.wait()
            results.append(s2.signup("race", "same@x.org", "", "en", form_url="f", wording="v1", ip_hash="",
                                     forget_hashes=[], resend_after=now()[:10]))
        finally:
            s2.close()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.new for r in results) == 1 and sum(r.send_confirmation for r in results) == 1
    assert store.member_counts("race") == {"race": {"pending": 1, "confirmed": 0, "unsubscribed": 0}}


def test_pending_signups_expire_and_confirmed_ones_stay(store: Store) -> None:
    old = store.signup("news", "slow@x.org", "", "en", form_url="f", wording="v1", ip_hash="", forget_hashes=[],
                       resend_after="2000")
    ok = store.signup("news", "quick@x.org", "", "en", form_url="f", wording="v1", ip_hash="", forget_hashes=[],
                      resend_after="2000")
    assert store.confirm("news", "quick@x.org", ok.stamp)
    assert store.expire_pending(now()) == 1
    assert store.person("slow@x.org")["person"] is None and store.membership("news", "slow@x.org") is None
    assert store.membership("news", "quick@x.org") == "confirmed"
    assert old.stamp and store.expire_pending(now()) == 0


def test_person_and_forget(store: Store) -> None:
    store.import_members("news", rows(("ada@x.org", "Ada")), source="a.csv")
    store.mark_handoff("2024-01-01-x", "smtp", [("ada@x.org", "<1@x>")])
    store.suppress("ada@x.org", "manual", source="cli")
    p = store.person("ADA@x.org")
    assert p["person"]["name"] == "Ada" and p["memberships"][0]["status"] == "confirmed"
    assert p["sends"][0]["issue"] == "2024-01-01-x" and p["suppression"]["reason"] == "manual"
    assert [a["action"] for a in p["actions"]] == ["suppress"]
    assert store.forget("ada@x.org", ["k1", "k2"]) >= 5
    after = store.person("ada@x.org")
    assert after["person"] is None and not any(after[k] for k in ("memberships", "consents", "sends", "actions"))
    assert after["suppression"] is None and store.forgotten_among(["k2", "k3"]) == {"k2"} and store.has_forgotten()
    assert all("ada" not in (e + d) for _, _, e, d in store.actions())  # logged without the address
    assert [a for _, a, _, _ in store.actions()][-1] == "forget"


def test_db_copy_moves_the_audience_tables(target: str, tmp_path: object) -> None:
    src = open_store(target)
    dst = open_store(str(tmp_path / "copy.db"))  # type: ignore[operator]
    try:
        src.import_members("news", rows(("ada@x.org", "Ada")), source="a.csv")
        src.forget("gone@x.org", ["h"])
        copied = {c.table: c.rows for c in copy_store(src, dst)}
        assert copied["subscribers"] == 1 and copied["memberships"] == 1 and copied["consents"] == 1
        assert copied["forgotten"] == 1
        assert [m.email for m in dst.members("news")] == ["ada@x.org"]
    finally:
        src.close()
        dst.close()
