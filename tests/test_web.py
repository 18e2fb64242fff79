"""The unsubscribe endpoint, served by uvicorn on a loopback port, against a real SQLite file."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_form_nonce, make_token
from newsletter.config import Config
from newsletter.store import open_store
from tests.webserver import KEYS, OLD, one_click, request, serve_in_thread

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# one list: an unsubscribe is from everything (several lists: tests/test_lists_web.py)
pytestmark = pytest.mark.config(one_list=True)


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    """A second, raw connection to the state file: what the endpoint wrote, as it is on disk."""
    open_store(config).close()  # created and migrated
    c = sqlite3.connect(config.database, isolation_level=None)
    yield c
    c.close()


def suppress(config: Config, email: str, reason: str, source: str) -> None:
    with open_store(config) as store:
        store.suppress(email, reason, source=source)


def state(conn: sqlite3.Connection) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Everything the endpoint could change: suppressions and the action log."""
    return (conn.execute("SELECT email, reason, source FROM suppressions ORDER BY email").fetchall(),
            conn.execute("SELECT action, email, detail FROM actions ORDER BY id").fetchall())


def nonce_in(page: str) -> str:
    """The resubscribe form nonce a page issued."""
    found = re.search(r'name="nonce" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def link(config: Config, email: str = "ada@example.org", language: str = "en",
         keys: SigningKeys = KEYS) -> str:
    return f"/unsubscribe/{make_token(keys, email, config.list_id, language)}"


def test_get_shows_the_page_and_changes_nothing(server: int, config: Config, conn: sqlite3.Connection) -> None:
    path = link(config)
    for method in ("GET", "HEAD", "GET"):
        a = request(server, method, path)
        assert a.status == 200
    page = request(server, "GET", path)
    assert page.headers["content-type"].startswith("text/html")
    assert config.list_name in page.text and "ada@example.org" in page.text
    assert '<form method="post">' in page.text and 'value="unsubscribe"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert state(conn) == ([], [])


def test_one_click_post_unsubscribes_once(server: int, config: Config, conn: sqlite3.Connection) -> None:
    path = link(config, "Ada@Example.org")
    first = one_click(server, path)
    assert first.status == 200 and first.headers["content-type"].startswith("text/plain")
    assert "unsubscribed" in first.text
    again = one_click(server, path)
    assert again.status == 200 and again.text == first.text  # idempotent, same answer
    sups, actions = state(conn)
    assert sups == [("ada@example.org", "unsubscribed", "one-click")]
    assert [a[0] for a in actions] == ["suppress"]


def test_multipart_one_click_and_empty_post_unsubscribe(server: int, config: Config, conn: sqlite3.Connection) -> None:
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n")
    a = request(server, "POST", link(config, "multi@example.org"), body,
                {"Content-Type": "multipart/form-data; boundary=XyZ"})
    b = request(server, "POST", link(config, "empty@example.org"), b"")
    assert (a.status, b.status) == (200, 200)
    assert [s[0] for s in state(conn)[0]] == ["empty@example.org", "multi@example.org"]


def test_button_confirms_and_resubscribe_works_through_the_same_link(
        server: int, config: Config, conn: sqlite3.Connection) -> None:
    path = link(config)
    done = request(server, "POST", path, "action=unsubscribe", FORM)
    assert done.status == 200 and "You have been unsubscribed" in done.text
    assert 'value="resubscribe"' in done.text
    assert state(conn)[0] == [("ada@example.org", "unsubscribed", "page")]
    back = request(server, "POST", path, f"action=resubscribe&nonce={nonce_in(done.text)}", FORM)
    assert back.status == 200 and "You are subscribed again" in back.text
    sups, actions = state(conn)
    assert sups == [] and [a[:2] for a in actions] == [("suppress", "ada@example.org"),
                                                       ("resubscribe", "ada@example.org")]
    assert request(server, "POST", path, "action=unsubscribe", FORM).status == 200
    assert state(conn)[0] == [("ada@example.org", "unsubscribed", "page")]


def test_a_link_cannot_lift_a_bounce_or_complaint(server: int, config: Config, conn: sqlite3.Connection) -> None:
    suppress(config, "bounced@example.org", "bounced", source="sendgrid-webhook")
    nonce = make_form_nonce(KEYS, "bounced@example.org", config.list_id)
    a = request(server, "POST", link(config, "bounced@example.org"), f"action=resubscribe&nonce={nonce}", FORM)
    assert a.status == 200 and "cannot resubscribe" in a.text
    assert state(conn)[0] == [("bounced@example.org", "bounced", "sendgrid-webhook")]


def test_bad_tokens_get_one_neutral_page_and_change_nothing(
        server: int, config: Config, conn: sqlite3.Connection) -> None:
    good = link(config).split("/")[-1]
    payload, sig = good.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    bad = [
        f"{flipped}.{sig}",  # tampered payload
        f"{payload}.{sig[:-4]}",  # truncated signature
        good[:30],  # truncated token
        make_token(KEYS, "ada@example.org", "another.list.example.org"),  # foreign list
        make_token(SigningKeys(b"someone-elses-key-xxxxxxxx", (), False), "ada@example.org", config.list_id),
        "x" * 3000,
        "%00%ff.%2e%2e",
    ]
    answers = []
    for token in bad:
        for method, body, headers in (("GET", None, {}), ("POST", "List-Unsubscribe=One-Click", FORM),
                                      ("POST", "action=unsubscribe", FORM)):
            a = request(server, method, f"/unsubscribe/{token}", body, headers)
            answers.append((a.status, a.body))
    assert {status for status, _ in answers} == {400}
    assert len({body for _, body in answers}) == 1  # the same page whatever the token names
    assert "This link is not valid" in answers[0][1].decode()
    assert state(conn) == ([], [])


def test_page_does_not_reveal_whether_an_address_is_suppressed(
        server: int, config: Config, conn: sqlite3.Connection) -> None:
    suppress(config, "gone@example.org", "unsubscribed", source="one-click")
    on = request(server, "GET", link(config, "gone@example.org")).text.replace("gone@example.org", "X")
    off = request(server, "GET", link(config, "here@example.org")).text.replace("here@example.org", "X")
    assert on == off


def test_rotated_out_but_listed_key_still_works(server: int, config: Config, conn: sqlite3.Connection) -> None:
    old_link = link(config, "old@example.org", keys=SigningKeys(OLD, (), False))
    assert one_click(server, old_link).status == 200
    unlisted = link(config, "other@example.org", keys=SigningKeys(b"retired-and-removed-key-zzzz", (), False))
    assert one_click(server, unlisted).status == 400
    assert state(conn)[0] == [("old@example.org", "unsubscribed", "one-click")]


def test_only_the_two_routes_exist(server: int, config: Config) -> None:
    path = link(config)
    assert request(server, "GET", "/").status == 404
    assert request(server, "GET", "/unsubscribe/").status == 404
    assert request(server, "GET", path + "/extra").status == 404
    assert request(server, "GET", "/static/../newsletter.toml").status == 404
    assert request(server, "PUT", path).status == 405
    assert request(server, "DELETE", path).status == 405
    assert request(server, "GET", "/webhooks/sendgrid").status == 405
    not_found = request(server, "GET", "/admin")
    assert "Page not found" in not_found.text and not_found.headers["content-type"].startswith("text/html")


def test_oversized_bodies_are_refused(server: int, config: Config, conn: sqlite3.Connection) -> None:
    path = link(config)
    big = "List-Unsubscribe=One-Click&pad=" + "x" * 20_000
    assert request(server, "POST", path, big, FORM).status == 413
    # no Content-Length (chunked): counted while it streams in
    chunked = request(server, "POST", path, [big[i:i + 1000].encode() for i in range(0, len(big), 1000)], FORM)
    assert chunked.status == 413
    # declared too large: refused on the headers, before any body arrives
    lying = request(server, "POST", path, None, {"Content-Length": "50000000", **FORM}, timeout=5)
    assert lying.status == 413
    hook = request(server, "POST", "/webhooks/sendgrid", None,
                   {"Content-Length": "3000000", "Content-Type": "application/json"}, timeout=5)
    assert hook.status == 413
    assert state(conn) == ([], [])


def test_page_follows_the_readers_language(server: int, config: Config) -> None:
    page = request(server, "GET", link(config, language="fr"))
    assert page.status == 200 and '<html lang="fr" dir="ltr">' in page.text
    assert "Se désinscrire" in page.text and "Unsubscribe" not in page.text
    done = request(server, "POST", link(config, language="fr"), "action=unsubscribe", FORM)
    assert "Votre désinscription est confirmée" in done.text and "Se réinscrire" in done.text
    assert one_click(server, link(config, language="fr")).text == "Votre désinscription est confirmée."
    en = request(server, "GET", link(config, language="en"))
    assert '<html lang="en" dir="ltr">' in en.text and "Se désinscrire" not in en.text
    unknown = request(server, "GET", link(config, language="xx"))  # no catalogue: the list's default language
    assert unknown.status == 200 and f'<html lang="{config.default_language}" dir="ltr">' in unknown.text
    bad = request(server, "GET", "/unsubscribe/not-a-token", headers={"Accept-Language": "sw-KE, fr;q=0.8, en;q=0.5"})
    assert bad.status == 400 and '<html lang="fr" dir="ltr">' in bad.text and "Ce lien n’est pas valide" in bad.text
    ar = request(server, "GET", link(config, language="ar"))
    assert '<html lang="ar" dir="rtl">' in ar.text and "إلغاء الاشتراك" in ar.text
    canadian = request(server, "GET", link(config, language="fr-CA"))  # along the tag: fr
    assert '<html lang="fr" dir="ltr">' in canadian.text and "Se désinscrire" in canadian.text


def test_project_templates_override_the_theme(project: Path, config: Config) -> None:
    (project / "templates" / "web").mkdir(parents=True)
    (project / "templates" / "web" / "unsubscribe.html.j2").write_text(
        '{% extends "web/base.html.j2" %}{% block content %}<p>Our own words for {{ email }}</p>{% endblock %}')
    with serve_in_thread(dataclasses.replace(config), KEYS) as port:
        page = request(port, "GET", link(config))
    assert "Our own words for ada@example.org" in page.text and config.org_name in page.text
