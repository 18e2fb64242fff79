"""Unsubscribing with several lists: per list, or from everything; the next send honours it."""

from __future__ import annotations

from pathlib import Path

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from newsletter.store import open_store
from tests.conftest import run
from tests.test_lists import CAMPAIGN, DIGEST, outbox
from tests.test_web import nonce_in
from tests.webserver import one_click, request, serve_in_thread

KEY = "lists-web-secret-0123456789abcdef"
KEYS = SigningKeys(KEY.encode(), (), False)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def link(list_id: str, email: str) -> str:
    return f"/unsubscribe/{make_token(KEYS, email, list_id, 'en')}"


def test_leaving_one_list_keeps_the_other_and_everything_means_every_list(project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    campaigns, digest = config.for_list("campaigns"), config.for_list("digest")
    with serve_in_thread(config, KEYS) as port:
        page = request(port, "GET", link(digest.list_id, "ada@example.org"))
        assert page.status == 200 and "Viasna digest" in page.text and "Viasna Human Rights Centre" in page.text
        assert 'value="unsubscribe_all"' in page.text and "Unsubscribe from everything" in page.text
        done = request(port, "POST", link(digest.list_id, "ada@example.org"), "action=unsubscribe", FORM)
        assert done.status == 200 and "ada@example.org will no longer receive Viasna digest." in done.text
        assert one_click(port, link(digest.list_id, "ales@example.org")).status == 200
        everything = request(port, "POST", link(campaigns.list_id, "marie.curie@example.org"),
                             "action=unsubscribe_all", FORM)
        assert "will no longer receive anything from FIDH" in everything.text
        foreign = request(port, "GET", link("another.list.example.org", "ada@example.org"))
        assert foreign.status == 400
    with open_store(config) as s:
        assert s.membership("digest", "ada@example.org") == "unsubscribed"
        assert s.membership("digest", "ales@example.org") == "unsubscribed"
        assert s.membership("campaigns", "ada@example.org") is None
        assert not s.is_suppressed("ada@example.org") and s.is_suppressed("marie.curie@example.org")
    env = {"NEWSLETTER_SECRET": KEY}
    for issue in (CAMPAIGN, DIGEST):
        r = run(["send", issue, "--yes"], cwd=project, env=env)
        assert r.returncode == 0, r.stderr
    assert sorted(outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")) == ["no-name@example.org"]
    assert sorted(outbox(project, "2011-11-28-free-ales-bialiatski")) == [
        "ada@example.org", "ales@example.org", "no-name@example.org"]


def test_resubscribe_through_the_same_link_rejoins_the_list(project: Path) -> None:
    config = load_config(project / "newsletter.toml")
    digest = config.for_list("digest")
    path = link(digest.list_id, "ada@example.org")
    with serve_in_thread(config, KEYS) as port:
        left = request(port, "POST", path, "action=unsubscribe", FORM)
        # resubscribing needs the fresh form nonce the confirmation page issued (issue 10 item 5)
        back = request(port, "POST", path, f"action=resubscribe&nonce={nonce_in(left.text)}", FORM)
        assert back.status == 200 and "Welcome back" in back.text
    with open_store(config) as s:
        assert s.membership("digest", "ada@example.org") == "confirmed"
        assert [a for _, a, _, _ in s.actions()] == ["unsubscribe-list", "resubscribe-list"]
