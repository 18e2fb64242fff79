"""The web app against hostile clients (issue 10): forged Host headers, clients that hang up
mid-body or trickle bytes, cross-site form posts. Real uvicorn, real sockets, real SQLite."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.config import Config, load_config
from newsletter.store import db
from tests.webserver import Served, request, serve_in_process, serve_in_thread

SECRET = "hostile-test-signing-key-0123456789"
KEYS = SigningKeys(SECRET.encode(), (), False)
ENV = {"NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": ""}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project / "newsletter.toml")


@pytest.fixture
def server(config: Config) -> Iterator[int]:
    with serve_in_thread(config, KEYS) as port:
        yield port


def token(config: Config, email: str = "ada@example.org") -> str:
    return make_token(KEYS, email, config.list_id, "en")


def suppressed(config: Config) -> list[tuple[str, str]]:
    conn = db.connect(config.database)
    try:
        return conn.execute("SELECT email, reason FROM suppressions ORDER BY email").fetchall()
    finally:
        conn.close()


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
