"""The web app against hostile clients (issue 10): forged Host headers, clients that hang up
mid-body or trickle bytes, cross-site form posts. Real uvicorn, real sockets, real SQLite."""

from __future__ import annotations

import functools
import http.server
import re
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import NONCE_MAX_AGE, make_form_nonce, make_token
from newsletter.config import Config
from newsletter.store import open_store
from tests.tomledit import edit_toml
from tests.webserver import ENV, KEYS, Served, request, serve_in_process

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# one list: an unsubscribe is from everything (several: tests/test_lists_web.py)
pytestmark = pytest.mark.config(one_list=True)


def token(config: Config, email: str = "ada@example.org") -> str:
    return make_token(KEYS, email, config.list_id, "en")


def suppressed(config: Config) -> list[tuple[str, str]]:
    with open_store(config) as store:
        return [(s.email, s.reason) for s in store.all_suppressions()]


def wait_for(served: Served, text: str, timeout: float = 15) -> str:
    """The server's log once it contains `text` (polls; fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while text not in (out := served.output()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in the log:\n{out}")
        time.sleep(0.05)
    return out


# --- item 6: redirects never name a host from the request ------------------------------------------

def test_trailing_slash_redirects_only_to_the_configured_origin(server: int, config: Config) -> None:
    t = token(config)
    for host in ("evil.example", "evil.example:8025", f"127.0.0.1:{server}"):
        a = request(server, "GET", f"/unsubscribe/{t}/", headers={"Host": host})
        assert a.status == 308 and a.headers["location"] == config.unsubscribe_url(t)
        assert "evil" not in a.headers["location"]
        b = request(server, "GET", "/webhooks/sendgrid/", headers={"Host": host})
        c = request(server, "POST", f"/unsubscribe/{t}/", "List-Unsubscribe=One-Click", {"Host": host, **FORM})
        d = request(server, "GET", "/admin/", headers={"Host": host})
        for answer in (b, c, d):
            assert answer.status in (404, 405) and "location" not in answer.headers
    assert request(server, "GET", f"/unsubscribe/{t}//", headers={"Host": "evil.example"}).status == 404


# --- item 7: a client hanging up mid-body ----------------------------------------------------------

def hang_up_mid_body(port: int, path: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 5000\r\n\r\n".encode() + b"[" * 100)


def test_a_client_hanging_up_mid_body_is_one_log_line(project: Path, config: Config) -> None:
    with serve_in_process(project, ENV) as served:
        hang_up_mid_body(served.port, f"/unsubscribe/{token(config)}")
        wait_for(served, "POST /unsubscribe/<token> client disconnected mid-body")
        hang_up_mid_body(served.port, "/webhooks/sendgrid")
        out = wait_for(served, "POST /webhooks/sendgrid client disconnected mid-body")
        assert request(served.port, "GET", f"/unsubscribe/{token(config)}").status == 200  # still serving
        out = wait_for(served, "GET /unsubscribe/<token> 200")
    assert "Traceback" not in out and "ClientDisconnect" not in out and "Exception" not in out
    assert [line for line in out.splitlines() if "disconnected" in line] == [
        line for line in out.splitlines() if "mid-body" in line]
    assert len([line for line in out.splitlines() if "mid-body" in line]) == 2
    assert len(out) < 2000, out
    assert suppressed(config) == []


# --- item 10: plain uvicorn --factory hides tokens in its access log -------------------------------

def test_uvicorn_factory_access_log_hides_tokens(project: Path, config: Config) -> None:
    t = token(config, "factory@example.org")
    env = {**ENV, "NEWSLETTER_CONFIG": str(project / "newsletter.toml")}
    with serve_in_process(project, env, factory=True) as served:
        assert request(served.port, "GET", f"/unsubscribe/{t}").status == 200
        assert request(served.port, "GET", f"/unsubscribe/{t}?utm=x").status == 200
        assert request(served.port, "POST", f"/unsubscribe/{t}", "List-Unsubscribe=One-Click", FORM).status == 200
        out = wait_for(served, '"POST /unsubscribe/<token> HTTP/1.1" 200')
    assert '"GET /unsubscribe/<token> HTTP/1.1" 200' in out  # the access log is on, and redacted
    assert t not in out and t.split(".")[0] not in out and t.split(".")[1] not in out
    assert suppressed(config) == [("factory@example.org", "unsubscribed")]


# --- item 5: cross-site form posts, and resubscribing needs a fresh nonce from our page ------------

def nonce_in(page: str) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_cross_site_posts_are_refused_except_one_click(server: int, config: Config) -> None:
    site = config.base_url.split("/", 3)
    ours = f"{site[0]}//{site[2]}"
    cross = [{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
             {"Sec-Fetch-Site": "cross-site"},
             {"Origin": "https://evil.example"},
             {"Origin": "null"},
             {"Sec-Fetch-Site": "same-site"},
             {"Origin": ours.replace("https://", "http://"), "Sec-Fetch-Site": "same-site"}]
    for i, headers in enumerate(cross):
        t = token(config, f"victim{i}@example.org")
        for body in ("action=unsubscribe", "", "action=resubscribe"):
            a = request(server, "POST", f"/unsubscribe/{t}", body, {**FORM, **headers})
            assert a.status == 403 and "Nothing was changed" in a.text, (headers, body)
    assert suppressed(config) == []
    # RFC 8058 one-click comes from the mail provider's servers, whatever they say: always honoured
    one_click = {"victim0@example.org": ("List-Unsubscribe=One-Click", FORM),
                 "victim1@example.org": ('--B\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
                                         'One-Click\r\n--B--\r\n', {"Content-Type": "multipart/form-data; boundary=B"})}
    for email, (body, headers) in one_click.items():
        a = request(server, "POST", f"/unsubscribe/{token(config, email)}", body, {**headers, **cross[0]})
        assert a.status == 200, a.text
    # our own page: same-origin, or our origin, or no browser headers at all
    for i, headers in enumerate([{"Sec-Fetch-Site": "same-origin", "Origin": f"http://127.0.0.1:{server}"},
                                 {"Origin": ours}, {}]):
        t = token(config, f"reader{i}@example.org")
        assert request(server, "POST", f"/unsubscribe/{t}", "action=unsubscribe", {**FORM, **headers}).status == 200
    assert [e for e, _ in suppressed(config)] == ["reader0@example.org", "reader1@example.org",
                                                  "reader2@example.org", "victim0@example.org",
                                                  "victim1@example.org"]


def test_resubscribe_needs_a_fresh_nonce_from_the_page_not_just_the_link(server: int, config: Config) -> None:
    t = token(config)
    path = f"/unsubscribe/{t}"
    done = request(server, "POST", path, "action=unsubscribe", FORM)
    assert done.status == 200 and suppressed(config) == [("ada@example.org", "unsubscribed")]
    fresh = nonce_in(done.text)
    stale = make_form_nonce(KEYS, "ada@example.org", config.list_id, issued=time.time() - NONCE_MAX_AGE - 5)
    future = make_form_nonce(KEYS, "ada@example.org", config.list_id, issued=time.time() + 3600)
    other = make_form_nonce(KEYS, "mallory@example.org", config.list_id)
    foreign = make_form_nonce(SigningKeys(b"someone-elses-key-0123456789", (), False), "ada@example.org",
                              config.list_id)
    for body in ("action=resubscribe", f"action=resubscribe&nonce={stale}", f"action=resubscribe&nonce={future}",
                 f"action=resubscribe&nonce={other}", f"action=resubscribe&nonce={foreign}",
                 f"action=resubscribe&nonce={fresh[:-2]}", f"action=resubscribe&nonce={t}"):
        a = request(server, "POST", path, body, FORM)
        assert a.status == 403 and "This confirmation has expired" in a.text, body
        assert suppressed(config) == [("ada@example.org", "unsubscribed")], body
    asked_again = nonce_in(a.text)  # the page asks again with a fresh nonce: one more click resubscribes
    back = request(server, "POST", path, f"action=resubscribe&nonce={asked_again}", FORM)
    assert back.status == 200 and "You are subscribed again" in back.text and suppressed(config) == []
    # the link itself stays valid for years: it carries no time, and one-click still works with it
    assert request(server, "POST", path, "List-Unsubscribe=One-Click", FORM).status == 200
    assert suppressed(config) == [("ada@example.org", "unsubscribed")]


def test_a_real_cross_site_page_cannot_resubscribe_in_chromium(server: int, config: Config, browser: Any,
                                                              tmp_path: Path) -> None:
    """An attacker's page (another origin: localhost vs 127.0.0.1) auto-submits the reader's form."""
    t = token(config)
    done = request(server, "POST", f"/unsubscribe/{t}", "action=unsubscribe", FORM)
    nonce = nonce_in(done.text)  # even a leaked, fresh nonce does not help a cross-site page
    target = f"http://127.0.0.1:{server}/unsubscribe/{t}"
    (tmp_path / "evil.html").write_text(
        f'<form id="f" method="post" action="{target}"><input name="action" value="resubscribe">'
        f'<input name="nonce" value="{nonce}"></form><script>document.getElementById("f").submit()</script>')
    evil = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    page = browser.new_page()
    try:
        with page.expect_navigation(url=target):
            page.goto(f"http://localhost:{evil.server_address[1]}/evil.html")
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == "Nothing was changed"
    finally:
        page.close()
        evil.shutdown()
        evil.server_close()
    assert suppressed(config) == [("ada@example.org", "unsubscribed")]


# --- item 8: slow clients are cut off -----------------------------------------------------------

def trickle(port: int, head: bytes, drip: bytes, *, every: float = 0.2, give_up: float = 12) -> tuple[float, bytes]:
    """Send `head`, then `drip` one byte every `every` seconds, until the server answers or closes.
    Returns (seconds from connecting until the server closed, what it answered)."""
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        i = 0
        while time.monotonic() - started < give_up:
            readable, _, _ = select.select([s], [], [], every)
            if readable:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:  # closed by the server
                    return time.monotonic() - started, answer
                answer += chunk
                continue
            try:
                s.sendall(drip[i % len(drip):i % len(drip) + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed: the next read says so
            i += 1
    raise AssertionError(f"the server still held the trickling connection after {give_up}s ({answer!r})")


def test_slow_headers_and_slow_bodies_are_cut_off(project: Path, config: Config) -> None:
    edit_toml(project / "newsletter.toml", {"web.header_timeout_seconds": 1, "web.body_timeout_seconds": 2})
    path = f"/unsubscribe/{token(config)}"
    with serve_in_process(project, ENV) as served:
        # slowloris: one header byte at a time, never finishing
        took, answer = trickle(served.port, b"G", f"ET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode() + b"a" * 500)
        assert 0.8 <= took < 8 and answer.startswith(b"HTTP/1.1 408 "), (took, answer)
        # a request that would be complete, a little too late: 40 bytes at 0.1 s each
        took, answer = trickle(served.port, b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: bbbbbbb\r\n\r\n", every=0.1)
        assert 0.8 <= took < 8 and answer.startswith(b"HTTP/1.1 408 "), (took, answer)
        # complete headers, then a body one byte at a time
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: 200\r\n\r\n").encode()
        took, answer = trickle(served.port, head, b"action=unsubscribe&" + b"x" * 300)
        assert 1.8 <= took < 10 and answer.startswith(b"HTTP/1.1 408 "), (took, answer)
        # keep-alive: a first request answered at once, then the next one trickled on the same connection
        first = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        took, answer = trickle(served.port, first, f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode() + b"a" * 500)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1 200 ") == 1, answer[:300]
        assert b"HTTP/1.1 408 " in answer and 0.8 <= took < 8, (took, answer[-200:])
        # a well-behaved keep-alive client is not cut off: three requests on one connection, each in time
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            for _ in range(3):
                time.sleep(0.2)  # idle between requests, well within the header time
                s.sendall(first)
                reply = b""
                while b"</html>" not in reply:
                    chunk = s.recv(65536)
                    assert chunk, reply
                    reply += chunk
                assert reply.startswith(b"HTTP/1.1 200 ")
        out = wait_for(served, "408 body not complete within 2s")
    assert out.count("closed a connection whose request headers took longer than 1s") == 3
    assert "Traceback" not in out
    assert suppressed(config) == []
