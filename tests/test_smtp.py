"""The SMTP backend and the send loop against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import re
import socket
import sqlite3
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import read_token
from newsletter.compose.build import Built, build_issue
from newsletter.config import Config, load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.send import SendOptions, SendReport, send_issue
from newsletter.errors import BackendError
from newsletter.store import Store, open_store
from tests.ports import free_port
from tests.sendkit import SLUG, address, make_project
from tests.smtp_server import SMTPServer
from tests.tomledit import edit_toml

KEYS = SigningKeys(b"smtp-test-key-0123456789abcdef", (), False)


@dataclass
class Ctx:
    root: Path
    config: Config
    built: Built
    conn: Store

    def send(self, server_port: int | None = None, *, resend_uncertain: bool = False, batch_size: int = 500,
             **options: object) -> SendReport:
        options.setdefault("retry_delay", 0.01)
        backend = get_backend("smtp", self.config, **options)
        options = SendOptions(backend, batch_size=batch_size, resend_uncertain=resend_uncertain)
        return send_issue(self.built, options, self.root / "subscribers.csv", self.conn, keys=KEYS)

    def ledger(self) -> dict[str, tuple[str, str]]:
        with sqlite3.connect(self.config.database) as conn:
            rows = conn.execute("SELECT email, status, last_error FROM ledger WHERE issue = ?", (SLUG,)).fetchall()
        return {e: (s, err) for e, s, err in rows}


def project(tmp_path: Path, port: int, n: int) -> Ctx:
    root = make_project(tmp_path / "p", subscribers=n, smtp_port=port)
    config = load_config(root / "newsletter.toml")
    built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)
    return Ctx(root, config, built, open_store(config.database))


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_each_reader_gets_one_message_with_their_own_to_and_link(tmp_path: Path, pipelining: bool) -> None:
    n = 25
    with SMTPServer(pipelining=pipelining) as server:
        ctx = project(tmp_path, server.port, n)
        unsubscribed = {address(3), address(17)}
        for e in unsubscribed:
            ctx.conn.suppress(e, "unsubscribed", source="test")
        report = ctx.send()
        counts = server.counts()
    assert (report.sent, report.failed, report.uncertain, report.suppressed) == (n - 2, 0, 0, 2)
    assert report.complete
    for i in range(n):
        e = address(i)
        if e in unsubscribed:
            assert counts[e] == 0, "a suppressed reader gets nothing"
            continue
        assert counts[e] == 1
        (msg,) = server.messages(e)
        assert msg["To"].addresses[0].addr_spec == e
        assert msg["To"].addresses[0].display_name == f"Reader {i}"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
        assert mailto.startswith("mailto:unsubscribe@example.org?subject=")
        token = https.rsplit("/unsubscribe/", 1)[1]
        assert read_token(KEYS, token, list_id=ctx.config.list_id).email == e
        text, html = (p.get_content() for p in msg.iter_parts())
        assert f'href="{https}"' in html and https in text, "the footer carries the same link"
        assert f"Dear Reader {i} from Minsk" in text
        assert msg["Subject"] == f"Brèves de campagne: Reader {i}"
    assert {s for s, _ in ctx.ledger().values()} == {"sent"}
    assert len(ctx.ledger()) == n - 2, "suppressed readers are not in the ledger"


def test_451_is_retried_550_fails_with_the_servers_words_and_the_rest_go_out(tmp_path: Path) -> None:
    greylisted, busy, unknown = address(2), address(5), address(7)
    with SMTPServer(rcpt_replies={greylisted: ["451 4.7.1 Greylisted, try again"],
                                  unknown: ["550 5.1.1 <reader000007@example.org>: user unknown"]},
                    data_replies={busy: ["451 4.3.0 Queue busy", "452 4.3.1 Still busy"]}) as server:
        ctx = project(tmp_path, server.port, 12)
        report = ctx.send()
        counts = server.counts()
        attempts = dict(server.attempts)
    assert (report.sent, report.failed) == (11, 1)
    assert not report.complete
    assert counts[greylisted] == 1 and attempts[greylisted] == 2
    assert counts[busy] == 1 and attempts[busy] == 3
    assert counts[unknown] == 0
    status, error = ctx.ledger()[unknown]
    assert status == "failed" and "550 5.1.1" in error and "user unknown" in error
    assert all(counts[address(i)] == 1 for i in range(12) if address(i) != unknown)
    assert report.failures[0].detail == error


def test_4xx_forever_gives_up_as_failed_and_a_rerun_retries(tmp_path: Path) -> None:
    stuck = address(1)
    with SMTPServer(rcpt_replies={stuck: ["450 4.2.0 mailbox busy"] * 3}) as server:
        ctx = project(tmp_path, server.port, 4)
        first = ctx.send(retries=2)
        assert first.failed == 1 and "gave up after 3 attempts" in ctx.ledger()[stuck][1]
        second = ctx.send()  # the server has stopped refusing: a rerun sends the failed one only
        assert (second.sent, second.already_sent) == (1, 3)
        assert server.counts()[stuck] == 1
    assert ctx.ledger()[stuck][0] == "sent"


def test_connection_lost_after_data_is_uncertain_and_not_resent_without_the_flag(tmp_path: Path) -> None:
    cut = address(4)
    with SMTPServer(drop_after_data={cut: 1}) as server:
        ctx = project(tmp_path, server.port, 10)
        first = ctx.send()
        assert (first.sent, first.uncertain) == (9, 1)
        assert first.uncertain_list[0].email == cut and "not resent" in first.uncertain_list[0].detail
        assert server.count(cut) == 1, "the server did take it"
        assert ctx.ledger()[cut][0] == "uncertain"
        again = ctx.send()
        assert (again.sent, again.uncertain_held, again.already_sent) == (0, 1, 9)
        assert server.count(cut) == 1
        explicit = ctx.send(resend_uncertain=True)
        assert explicit.sent == 1 and explicit.complete
        assert server.count(cut) == 2
    assert ctx.ledger()[cut][0] == "sent"


def test_a_421_or_dropped_connection_before_data_is_retried_on_a_new_connection(tmp_path: Path) -> None:
    with SMTPServer(rcpt_replies={address(1): ["421 4.3.2 shutting down"]}) as server:
        ctx = project(tmp_path, server.port, 3)
        report = ctx.send()
        assert report.sent == 3 and report.complete
        assert server.counts() == {address(i): 1 for i in range(3)}
        assert len(server.sessions) == 2, "one reconnect after the 421"


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_a_connection_cut_before_the_message_is_retried_on_a_new_one(tmp_path: Path, pipelining: bool) -> None:
    with SMTPServer(rcpt_replies={address(2): ["DROP"]}, pipelining=pipelining) as server:
        ctx = project(tmp_path, server.port, 5)
        report = ctx.send()
        assert report.sent == 5 and report.complete
        assert server.counts() == {address(i): 1 for i in range(5)}
        assert server.attempts[address(2)] == 2
    assert {s for s, _ in ctx.ledger().values()} == {"sent"}


def test_parallel_connections_send_everyone_once(tmp_path: Path) -> None:
    n = 60
    with SMTPServer(delay=0.005) as server:
        ctx = project(tmp_path, server.port, n)
        report = ctx.send(connections=4, batch_size=25)
        assert report.sent == n
        assert server.counts() == {address(i): 1 for i in range(n)}
        assert len(server.sessions) == 4


def test_unreachable_server_stops_before_anyone_is_marked(tmp_path: Path) -> None:
    ctx = project(tmp_path, free_port(), 3)
    with pytest.raises(BackendError, match=r"cannot connect to 127\.0\.0\.1"):
        ctx.send()
    assert ctx.ledger() == {}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SMTPServer(auth=("news", "s3cret-pass")) as server:
        ctx = project(tmp_path, server.port, 2)
        edit_toml(ctx.root / "newsletter.toml", {"smtp.username": "news"})
        ctx.config = load_config(ctx.root / "newsletter.toml")
        monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)
        with pytest.raises(BackendError, match="NEWSLETTER_SMTP_PASSWORD"):
            get_backend("smtp", ctx.config)
        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
        with pytest.raises(BackendError, match="login as news refused: 535"):
            ctx.send()
        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "s3cret-pass")
        assert ctx.send().sent == 2
        assert server.counts() == {address(0): 1, address(1): 1}


def test_starttls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    with SMTPServer(tls_context=server_ctx) as server:
        ctx = project(tmp_path, server.port, 2)
        plain = ctx.send()  # the server requires STARTTLS: in clear text every reader is refused
        assert plain.failed == 2 and plain.failures[0].detail.startswith("530")
        trusting = ssl.create_default_context(cafile=str(cert))
        report = ctx.send(security="starttls", ssl_context=trusting)
        assert report.sent == 2 and server.counts() == {address(0): 1, address(1): 1}
        untrusting = ssl.create_default_context()
        with pytest.raises(BackendError, match="TLS"):
            get_backend("smtp", ctx.config, security="starttls", ssl_context=untrusting).open(
                _message(ctx))


def test_implicit_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    with SMTPServer(implicit_tls=server_ctx, pipelining=True) as server:
        ctx = project(tmp_path, server.port, 3)
        report = ctx.send(security="tls", ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert report.sent == 3 and server.counts() == {address(i): 1 for i in range(3)}


def _message(ctx: Ctx):  # noqa: ANN202
    from newsletter.deliver.message import prepare_message

    return prepare_message(ctx.built)


def test_bad_security_setting_fails_when_the_backend_is_built(tmp_path: Path) -> None:
    ctx = project(tmp_path, 25, 1)
    with pytest.raises(BackendError, match="smtp.security"):
        get_backend("smtp", ctx.config, security="ssl")


def test_socket_helper_port_is_free() -> None:
    """free_port() names a port nobody listens on and that a server can then take."""
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # refused: no one is listening there
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert s.getsockname() == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.getpeername() == ("127.0.0.1", port)
