"""Signup with double opt-in through `newsletter serve`'s app (uvicorn in a thread, real SQLite,
the outbox backend): the form, the confirmation message, the confirm page, and bad input."""

from __future__ import annotations

import re
import threading
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlencode

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.signup import make_confirm_token
from newsletter.config import Config
from newsletter.store import open_store
from tests.webserver import KEYS, request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SENT = "Check your inbox"


def post(port: int, path: str, **fields: str) -> object:
    return request(port, "POST", path, urlencode(fields), FORM)


def confirmations(config: Config, list_key: str = "digest") -> dict[str, object]:
    folder = config.outbox_dir / f"confirm-{list_key}"
    return {f.name: message_from_bytes(f.read_bytes(), policy=policy.default) for f in sorted(folder.glob("*.eml"))}


def confirm_path(message: object, base_url: str) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    url = re.search(r"https?://\S+/confirm/\S+", text).group(0)  # type: ignore[union-attr]
    assert url.startswith(base_url)
    return url[len(base_url):]


def test_signup_confirm_and_replay(server: int, config: Config) -> None:
    form = request(server, "GET", "/subscribe/digest")
    assert form.status == 200 and "Subscribe to Viasna digest" in form.text and 'name="website"' in form.text
    assert 'aria-hidden="true"' in form.text and 'lang="en"' in form.text
    answer = post(server, "/subscribe/digest", email="New.Reader@Example.org", name="New Reader", website="")
    assert answer.status == 200 and SENT in answer.text
    (msg,) = confirmations(config).values()
    assert str(msg["From"]) == "Viasna <digest@spring96.example.org>"
    assert str(msg["To"]) == "New Reader <New.Reader@example.org>"
    assert "confirm your subscription to Viasna digest" in str(msg["Subject"])
    path = confirm_path(msg, config.base_url)
    with open_store(config) as s:
        assert s.membership("digest", "new.reader@example.org") == "pending"
    for _ in range(2):  # a mail scanner following the link changes nothing
        page = request(server, "GET", path)
        assert page.status == 200 and '<form method="post">' in page.text and "Yes, subscribe me" in page.text
    with open_store(config) as s:
        assert s.membership("digest", "new.reader@example.org") == "pending"
    done = request(server, "POST", path, b"", FORM)
    assert done.status == 200 and "New.Reader@example.org will receive Viasna digest." in done.text
    again = request(server, "POST", path, b"", FORM)
    assert again.status == 200 and "already been used" in again.text
    with open_store(config) as s:
        assert s.membership("digest", "new.reader@example.org") == "confirmed"
        (consent,) = s.person("new.reader@example.org")["consents"]
        assert consent["method"] == "form" and consent["form_url"] == "https://news.example.org/subscribe/digest"
        assert consent["confirmed_at"] and consent["wording"] and len(consent["ip_hash"]) == 32
        assert "127.0.0.1" not in str(s.person("new.reader@example.org"))  # a keyed hash, never the address


def test_the_answer_is_the_same_whatever_the_address_state(server: int, config: Config) -> None:
    with open_store(config) as s:
        from newsletter.store import ImportRow

        s.import_members("digest", [ImportRow("member@example.org", "", "en", {})], source="test")
        s.suppress("bounced@example.org", "bounced", source="webhook")
    answers = [post(server, "/subscribe/digest", email=e).text
               for e in ("fresh@example.org", "fresh@example.org", "member@example.org", "bounced@example.org")]
    assert len(set(answers)) == 1 and SENT in answers[0]
    assert list(confirmations(config)) == ["fresh@example.org.eml"]  # pending twice: one message per window


@pytest.mark.parametrize(("fields", "problem"), [
    ({"email": "not-an-address"}, "This is not a valid email address"),
    ({"email": ""}, "Please enter your email address."),
    ({"email": "a" * 250 + "@example.org"}, "The email address is too long"),
    ({"email": "ok@example.org", "name": "x" * 101}, "The name is too long"),
    ({"email": "ok@example.org", "name": "Eve\r\nBcc: victim@example.org"}, "The name must be one line of text."),
    ({"email": "ok@example.org\r\nBcc: victim@example.org"}, "This is not a valid email address"),
])
def test_bad_input_is_a_clear_page_and_stores_nothing(server: int, config: Config, fields: dict[str, str],
                                                      problem: str) -> None:
    r = post(server, "/subscribe/digest", **fields)
    assert r.status == 400 and problem in r.text and 'role="alert"' in r.text
    assert confirmations(config) == {}
    with open_store(config) as s:
        assert s.member_counts() == {} and s.count("subscribers") == 0


def test_oversized_body_unknown_list_and_honeypot(server: int, config: Config) -> None:
    big = request(server, "POST", "/subscribe/digest", "email=a%40example.org&name=" + "x" * 100_000, FORM)
    assert big.status == 413
    assert request(server, "GET", "/subscribe/nope").status == 404
    bot = post(server, "/subscribe/digest", email="bot@example.org", name="Bot", website="http://spam.example")
    assert bot.status == 200 and SENT in bot.text  # the same answer, and nothing behind it
    assert confirmations(config) == {}
    with open_store(config) as s:
        assert s.count("subscribers") == 0


def test_tampered_expired_and_foreign_tokens_get_a_clear_page(server: int, config: Config) -> None:
    post(server, "/subscribe/digest", email="t@example.org")
    path = confirm_path(next(iter(confirmations(config).values())), config.base_url)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for bad in (tampered, "/confirm/nonsense", path + "x"):
        for method in ("GET", "POST"):
            r = request(server, method, bad, b"", FORM)
            assert r.status == 400 and "This link is not valid" in r.text and "sign up again" in r.text.lower()
    old = make_confirm_token(KEYS, "digest", "t@example.org", "2000-01-01T00:00:00.000000Z")
    r = request(server, "POST", f"/confirm/{old}", b"", FORM)
    assert r.status == 410 and "This link has expired" in r.text and 'href="/subscribe/digest"' in r.text
    foreign = make_confirm_token(SigningKeys(b"someone-elses-key-0123456789", (), False), "digest", "t@example.org",
                                 "2099-01-01T00:00:00.000000Z")
    assert request(server, "POST", f"/confirm/{foreign}", b"", FORM).status == 400
    with open_store(config) as s:
        assert s.membership("digest", "t@example.org") == "pending"


def test_200_concurrent_signups_of_one_address(server: int, config: Config) -> None:
    answers: list[int] = []
    barrier = threading.Barrier(50)

    def one() -> None:
        barrier.wait()
        for _ in range(4):
            answers.append(post(server, "/subscribe/campaigns", email="Same@Example.org").status)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 200
    assert set(answers) <= {200, 429}  # the per-client limit may answer some of them
    assert answers.count(200) >= 30  # [signup] per_client_per_hour's default
    with open_store(config) as s:
        assert s.member_counts() == {"campaigns": {"pending": 1, "confirmed": 0, "unsubscribed": 0}}
        assert len(s.person("same@example.org")["consents"]) == 1  # one claim of the message
    assert list(confirmations(config, "campaigns")) == ["same@example.org.eml"]


def test_signup_form_snippet(project: Path) -> None:
    from tests.conftest import run

    r = run(["signup-form", "digest"], cwd=project)
    assert r.returncode == 0
    assert '<form method="post" action="https://news.example.org/subscribe/digest"' in r.stdout
    assert 'name="email"' in r.stdout and 'name="website"' in r.stdout and "<script" not in r.stdout
    r = run(["signup-form", "nope"], cwd=project)
    assert r.returncode == 1 and r.stderr.strip() == "--list nope: no such list; the lists are: campaigns, digest"
