"""The SendGrid backend over real HTTP against a real HTTP server on loopback.

The server (tests/sendgrid_server.py) validates every request against SendGrid's published
schema and documented limits, so nothing here passes with a payload SendGrid would refuse.
"""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.config import Config, load_config
from newsletter.deliver.backends import get_backend
from newsletter.deliver.backends.base import Hooks
from newsletter.deliver.backends.sendgrid import (
    ISSUE_ARG,
    MESSAGE_ID_ARG,
    SendGridBackend,
    SendGridError,
    build_payload,
)
from newsletter.deliver.message import PreparedMessage, Recipient
from newsletter.errors import BackendError
from tests.conftest import REPO
from tests.ports import free_port
from tests.sendgrid_server import (
    API_KEY,
    SendGridServer,
    ok,
    rate_limited,
    refuse,
    reset_after_accept,
    reset_without_accept,
    server_error,
    slow,
    validate_request,
)
from tests.tomledit import edit_toml

FAST = {"backoff": 0.02, "max_backoff": 0.1}


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    return API_KEY


def write_config(folder: Path, host: str, *, timeout: int = 5, sandbox: bool = False) -> Path:
    """The example newsletter.toml with [sendgrid] pointed at `host` (sandbox mode on when asked)."""
    path = folder / "newsletter.toml"
    shutil.copy(REPO / "newsletter.toml", path)
    settings: dict[str, object] = {"sendgrid.host": host, "sendgrid.timeout": timeout}
    if sandbox:
        settings["sendgrid.sandbox"] = True
    edit_toml(path, settings)
    return path


@pytest.fixture
def config(make_config: Callable[..., Config], sendgrid_server: SendGridServer) -> Config:
    # generous: a 1,000-reader request checked by the stand-in can take over a second on a busy
    # machine, and a request cut by the timeout is `uncertain` (the read-timeout test sets its own)
    return make_config({"sendgrid.host": sendgrid_server.url, "sendgrid.timeout": 10})


def message(**over: object) -> PreparedMessage:
    values: dict[str, object] = dict(
        issue_slug="2011-11-28-free-ales-bialiatski",
        subject="Free Ales Bialiatski — news for {{ name }}",
        html='<p>Dear {{ name }},</p><p>Écrit à {{ email }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
        text="Dear {{ name }},\nUnsubscribe: {{ unsubscribe_url }}\n",
        from_name="FIDH", from_email="newsletter@example.org", reply_to="contact@example.org",
        list_id="FIDH campaign news — actualités <campaigns.news.example.org>",
    )
    values.update(over)
    return PreparedMessage(**values)  # type: ignore[arg-type]


def reader(i: int, name: str | None = None) -> Recipient:
    email = f"reader{i:05d}@example.org"
    url = f"https://news.example.org/unsubscribe/tok{i:05d}"
    display = name if name is not None else f"Reader {i}"
    return Recipient(email=email, name=display, message_id=f"<{i:05d}.issue@news.example.org>",
                     fields={"name": display, "email": email, "unsubscribe_url": url},
                     list_unsubscribe=f"<{url}>, <mailto:unsubscribe@example.org?subject=unsubscribe>")


def backend(config: Config, **options: object) -> SendGridBackend:
    b = get_backend("sendgrid", config, **{**FAST, **options})
    assert isinstance(b, SendGridBackend)
    return b


# --------------------------------------------------------------------------- the payload and the validator

def test_payload_passes_the_published_schema_and_carries_each_readers_parts() -> None:
    payload = build_payload(message(), [reader(1), reader(2, name="Zoë <O'Brien> & Co")])
    assert validate_request(payload) == []
    p = payload["personalizations"][1]
    assert p["to"] == [{"email": "reader00002@example.org", "name": "Zoë <O'Brien> & Co"}]
    assert p["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert p["headers"]["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/tok00002>")
    assert p["headers"]["Message-ID"] == "<00002.issue@news.example.org>"
    assert p["custom_args"] == {MESSAGE_ID_ARG: "<00002.issue@news.example.org>"}
    assert p["subject"] == "Free Ales Bialiatski — news for Zoë <O'Brien> & Co"
    assert payload["custom_args"] == {ISSUE_ARG: "2011-11-28-free-ales-bialiatski"}
    assert payload["categories"] == ["2011-11-28-free-ales-bialiatski"]
    assert payload["headers"]["List-Id"].endswith(" <campaigns.news.example.org>")
    assert payload["headers"]["List-Id"].isascii()  # RFC 2047-encoded display text
    assert payload["reply_to"] == {"email": "contact@example.org"}
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert "{{" not in json.dumps(payload["content"])


def test_the_validator_rejects_what_sendgrid_rejects() -> None:
    good = build_payload(message(), [reader(1), reader(2)])
    assert validate_request(good) == []

    def broken(change) -> list[dict]:
        body = copy.deepcopy(good)
        change(body)
        return validate_request(body)

    cases = {
        "from": lambda b: b.pop("from"),
        "personalizations.0.to.0.email": lambda b: b["personalizations"][0]["to"][0].update(email="not-an-address"),
        "personalizations.0.substitutions.-nlh-name-":
            lambda b: b["personalizations"][0]["substitutions"].update({"-nlh-name-": 3}),
        "custom_args": lambda b: b.update(custom_args=42),
        "categories": lambda b: b.update(categories=[f"c{i}" for i in range(11)]),
        "personalizations.0.headers.Reply-To": lambda b: b["personalizations"][0]["headers"].update({"Reply-To": "x"}),
        "personalizations.1.to.0.email": lambda b: b["personalizations"][1]["to"][0].update(
            email="reader00001@example.org"),
        "personalizations": lambda b: b.update(personalizations=[
            {"to": [{"email": f"r{i}@example.org"}]} for i in range(1001)]),
    }
    for field, change in cases.items():
        errors = broken(change)
        assert errors, f"the server accepted a payload with a bad {field}"
        assert field in {e["field"] for e in errors}, (field, errors)
    big = broken(lambda b: b["personalizations"][0]["substitutions"].update({"-nlt-x-": "é" * 5001}))
    assert any("10000 bytes" in e["message"] for e in big)
    # top-level custom_args: the published file says string, the API takes an object - both pass
    assert broken(lambda b: b.update(custom_args="legacy")) == []


def test_an_invalid_request_gets_sendgrids_400_and_stops_the_send(config: Config, sendgrid_server: SendGridServer,
                                                                    api_key: str) -> None:
    bad = Recipient(email="no-at-sign", name="X", fields={}, message_id="<x@y>", list_unsubscribe="<https://x/u>")
    with backend(config) as b:
        b.open(message())
        with pytest.raises(SendGridError) as err:
            b.send_messages([reader(1), bad])
    assert err.value.status == 400
    assert any(field == "personalizations.1.to.0.email" for field, _ in err.value.errors)
    # refused: recorded as failed with SendGrid's words, so a rerun tries them again
    assert [(o.email, o.status) for o in err.value.outcomes] == [(reader(1).email, "failed"), ("no-at-sign", "failed")]
    assert "'no-at-sign' is not a 'email'" in err.value.outcomes[0].detail
    assert "SendGrid: personalizations.1.to.0.email: 'no-at-sign' is not a 'email'" in err.value.lines()
    assert sendgrid_server.accepted_count == 0


# --------------------------------------------------------------------------- volume and accounting

def test_2500_recipients_go_out_in_exactly_3_requests(config: Config, sendgrid_server: SendGridServer,
                                                      api_key: str) -> None:
    readers = [reader(i) for i in range(2500)]
    with backend(config) as b:
        b.open(message())
        outcomes = [o for start in range(0, 2500, 1000) for o in b.send_messages(readers[start:start + 1000])]
    assert [r.personalizations for r in sendgrid_server.requests] == [1000, 1000, 500]
    assert all(r.status == 202 for r in sendgrid_server.requests)
    assert sendgrid_server.count_by_email() == {r.email: 1 for r in readers}
    assert [o.email for o in outcomes] == [r.email for r in readers]
    assert {o.status for o in outcomes} == {"sent"}
    request_ids = [r.message_id for r in sendgrid_server.requests]
    assert [o.remote_id for o in outcomes] == [request_ids[i // 1000] for i in range(2500)]
    # what reader 1234 gets, once SendGrid has applied the substitutions
    got = sendgrid_server.render("reader01234@example.org")
    assert got["subject"] == "Free Ales Bialiatski — news for Reader 1234"
    assert "Dear Reader 1234,\nUnsubscribe: https://news.example.org/unsubscribe/tok01234" in got["text"]
    assert 'href="https://news.example.org/unsubscribe/tok01234"' in got["html"]
    assert "Écrit à reader01234@example.org" in got["html"]
    assert got["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got["custom_args"] == {ISSUE_ARG: "2011-11-28-free-ales-bialiatski",
                                  MESSAGE_ID_ARG: "<01234.issue@news.example.org>"}


def test_a_batch_over_1000_is_split_and_duplicates_never_share_a_request(config: Config,
                                                                          sendgrid_server: SendGridServer,
                                                                          api_key: str) -> None:
    readers = [reader(i) for i in range(2500)]
    handed: list[int] = []
    with backend(config) as b:
        b.open(message(), Hooks(handoff=lambda rs: handed.append(len(rs))))
        outcomes = b.send_messages(readers)
    assert [r.personalizations for r in sendgrid_server.requests] == [1000, 1000, 500]
    assert handed == [1000, 1000, 500]  # the ledger marks each request's readers just before it goes
    assert [o.email for o in outcomes] == [r.email for r in readers]
    sendgrid_server.requests.clear()
    with backend(config) as b:
        b.open(message())
        twice = [reader(1), reader(2), reader(1)]
        assert [o.status for o in b.send_messages(twice)] == ["sent"] * 3
    # SendGrid refuses a repeat within one request
    assert [r.personalizations for r in sendgrid_server.requests] == [2, 1]


def test_html_values_are_escaped_text_values_are_not_and_own_text_never_collides(
        config: Config, sendgrid_server: SendGridServer, api_key: str) -> None:
    msg = message(html="<p>-nlh-name- is literal; {{ name }}</p>", text="-nlt-x- and {{ name }}")
    odd = reader(7, name="A <b> & -nlh-")
    with backend(config) as b:
        b.open(msg)
        assert b.send_messages([odd])[0].status == "sent"
    got = sendgrid_server.render(odd.email)
    assert got["html"] == "<p>-nlh-name- is literal; A &lt;b&gt; &amp; -nlh-</p>"
    assert got["text"] == "-nlt-x- and A <b> & -nlh-"


def test_a_reader_over_the_substitution_limit_fails_alone(config: Config, sendgrid_server: SendGridServer,
                                                          api_key: str) -> None:
    huge = Recipient(email="huge@example.org", name="H", message_id="<h@x>", list_unsubscribe="<https://x/u>",
                     fields={"name": "x" * 6000, "email": "huge@example.org", "unsubscribe_url": "https://x/u"})
    with backend(config) as b:
        b.open(message())
        outcomes = b.send_messages([reader(1), huge, reader(2)])
    assert [o.status for o in outcomes] == ["sent", "failed", "sent"]
    assert "10,000-byte limit" in outcomes[1].detail and not outcomes[1].retryable
    assert set(sendgrid_server.count_by_email()) == {"reader00001@example.org", "reader00002@example.org"}


# --------------------------------------------------------------------------- what SendGrid answers

def test_429_is_waited_out_as_the_headers_say_then_retried(config: Config, sendgrid_server: SendGridServer,
                                                          api_key: str) -> None:
    sendgrid_server.script(rate_limited(reset_in=1.0))
    with backend(config) as b:
        b.open(message())
        outcomes = b.send_messages([reader(i) for i in range(10)])
    first, second = sendgrid_server.requests
    assert first.status == 429 and second.status == 202
    # X-RateLimit-Reset is whole epoch seconds: the retry must not come before it
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert second.at >= int(first.headers["X-RateLimit-Reset"]) - 0.01, (first.headers, second.at)
    assert {o.status for o in outcomes} == {"sent"}
    assert sendgrid_server.count_by_email() == {reader(i).email: 1 for i in range(10)}


def test_5xx_is_retried_with_backoff_and_gives_up_bounded(config: Config, sendgrid_server: SendGridServer,
                                                          api_key: str) -> None:
    sendgrid_server.script(server_error(503), server_error(500))
    with backend(config) as b:
        b.open(message())
        assert {o.status for o in b.send_messages([reader(1), reader(2)])} == {"sent"}
    assert [r.status for r in sendgrid_server.requests] == [503, 500, 202]
    assert sendgrid_server.count_by_email() == {reader(1).email: 1, reader(2).email: 1}

    sendgrid_server.script(*[server_error(503)] * 3)
    with backend(config, max_attempts=3) as b:
        b.open(message())
        with pytest.raises(SendGridError, match="answered 503 3 times"):
            b.send_messages([reader(3)])
    assert sendgrid_server.pending_faults == 0 and reader(3).email not in sendgrid_server.count_by_email()


def test_other_4xx_stop_the_send_with_sendgrids_own_words(config: Config, sendgrid_server: SendGridServer,
                                                          api_key: str) -> None:
    sendgrid_server.script(refuse(403, "The from address does not match a verified Sender Identity.", "from"))
    with backend(config) as b:
        b.open(message())
        with pytest.raises(SendGridError) as err:
            b.send_messages([reader(1)])
    assert err.value.status == 403
    assert "SendGrid: from: The from address does not match a verified Sender Identity." in err.value.lines()
    assert len(sendgrid_server.requests) == 1  # not retried


def test_a_wrong_key_is_401_naming_the_variable_not_the_value(config: Config, sendgrid_server: SendGridServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong-secret-value")
    with backend(config) as b:
        b.open(message())
        with pytest.raises(SendGridError) as err:
            b.send_messages([reader(1)])
    assert err.value.status == 401 and "SENDGRID_API_KEY" in str(err.value)
    assert "wrong-secret-value" not in str(err.value) + repr(b)
    assert sendgrid_server.accepted_count == 0


def test_a_read_timeout_marks_the_batch_uncertain_and_does_not_resend(tmp_path: Path, sendgrid_server: SendGridServer,
                                                                      api_key: str) -> None:
    config = load_config(write_config(tmp_path, sendgrid_server.url, timeout=2))
    sendgrid_server.script(slow(5.0))  # accepted, but the answer comes after the client's 2 s timeout
    with backend(config) as b:
        b.open(message())
        first = b.send_messages([reader(1), reader(2)])
        second = b.send_messages([reader(3)])
    assert [o.status for o in first] == ["uncertain", "uncertain"]
    assert "not resent" in first[0].detail
    assert [o.status for o in second] == ["sent"]
    # SendGrid did take the first request: sent exactly once, never posted again
    assert sendgrid_server.count_by_email() == {reader(1).email: 1, reader(2).email: 1, reader(3).email: 1}
    assert len(sendgrid_server.requests) == 2


def test_a_reset_after_the_request_was_sent_is_uncertain_and_repeated_silence_stops(
        config: Config, sendgrid_server: SendGridServer, api_key: str) -> None:
    sendgrid_server.script(reset_after_accept())
    with backend(config, uncertain_limit=1) as b:
        b.open(message())
        assert [o.status for o in b.send_messages([reader(1)])] == ["uncertain"]
        with pytest.raises(SendGridError, match="unanswered"):
            b.send_messages([reader(2)])
    assert sendgrid_server.count_by_email() == {reader(1).email: 1}


def test_connection_refused_before_sending_is_retried(tmp_path: Path, api_key: str) -> None:
    port = free_port()
    later: list[SendGridServer] = []

    def start_later() -> None:
        time.sleep(0.4)
        later.append(SendGridServer(api_key=API_KEY, port=port).start())

    cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{port}", timeout=2))
    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        with backend(cfg, backoff=0.1, max_backoff=0.2, max_attempts=20) as b:
            b.open(message())
            outcomes = b.send_messages([reader(1)])
            assert b.requests_made >= 2  # at least one refused attempt before the server was up
    finally:
        thread.join()
        for s in later:
            s.stop()
    assert outcomes[0].status == "sent"
    assert later[0].count_by_email() == {reader(1).email: 1}


def test_sandbox_mode_is_validated_and_delivers_nothing(tmp_path: Path, sendgrid_server: SendGridServer,
                                                        api_key: str) -> None:
    cfg = load_config(write_config(tmp_path, sendgrid_server.url, sandbox=True))
    with backend(cfg) as b:
        b.open(message())
        outcomes = b.send_messages([reader(1), reader(2)])
    assert sendgrid_server.requests[0].status == 200
    assert sendgrid_server.accepted_count == 0 and sendgrid_server.sandboxed_count == 2
    # never `sent`: the ledger would skip these readers in the real send that follows
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all(o.detail.startswith("sandbox mode") for o in outcomes)


# --------------------------------------------------------------------------- configuration

def test_bad_configuration_fails_when_the_backend_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    with pytest.raises(BackendError, match="SENDGRID_API_KEY is not set"):
        get_backend("sendgrid", cfg)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.abc\nInjected: yes")
    with pytest.raises(BackendError, match="SENDGRID_API_KEY contains") as err:
        get_backend("sendgrid", cfg)
    assert "Injected" not in str(err.value)
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    with pytest.raises(BackendError, match=r"\[sendgrid\] host"):
        get_backend("sendgrid", load_config(write_config(tmp_path, "https://api.sendgrid.com/v3")))
    with pytest.raises(BackendError, match="max_attempts"):
        get_backend("sendgrid", cfg, max_attempts=-1)


def test_newsletter_help_does_not_import_sendgrid() -> None:
    code = ("import sys\nfrom newsletter.cli import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED' if any(m == 'sendgrid' or m.startswith('sendgrid.') for m in sys.modules) else 'CLEAN')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "CLEAN", out.stdout + out.stderr


def test_the_server_runs_as_a_module(tmp_path: Path, api_key: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.sendgrid_server", "--port", str(port), "--record", "count"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True, env={"SENDGRID_API_KEY": API_KEY,
                                                                              "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{port}"))
        with backend(cfg) as b:
            b.open(message())
            assert {o.status for o in b.send_messages([reader(i) for i in range(5)])} == {"sent"}
    finally:
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        out, _ = proc.communicate(timeout=10)
    assert "1 requests, 5 recipients accepted" in out


def test_a_refusal_mid_batch_keeps_the_earlier_requests_outcomes(config: Config, sendgrid_server: SendGridServer,
                                                                 api_key: str) -> None:
    sendgrid_server.script(ok(), refuse(400, "The content value must be a string at least one character in length.",
                                        "content.0.value"))
    readers = [reader(i) for i in range(2500)]
    handed: list[int] = []
    with backend(config) as b:
        b.open(message(), Hooks(handoff=lambda rs: handed.append(len(rs))))
        with pytest.raises(SendGridError) as err:
            b.send_messages(readers)
    assert handed == [1000, 1000]  # the third request was never handed off: those readers stay unsent
    got = err.value.outcomes
    assert [o.status for o in got] == ["sent"] * 1000 + ["failed"] * 1000
    assert [o.email for o in got] == [r.email for r in readers[:2000]]
    assert "SendGrid: content.0.value: The content value must be" in got[1500].detail
    assert sendgrid_server.count_by_email() == {r.email: 1 for r in readers[:1000]}


def test_an_untrusted_certificate_stops_at_once(tmp_path: Path, api_key: str) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with SendGridServer(api_key=API_KEY, tls=tls) as sg:
        assert sg.url.startswith("https://")
        with backend(load_config(write_config(tmp_path, sg.url))) as b:
            b.open(message())
            with pytest.raises(SendGridError, match="certificate verify failed"):
                b.send_messages([reader(1)])
            assert b.requests_made == 1  # not retried: waiting does not fix a certificate
        assert sg.accepted_count == 0


def test_a_rate_limit_wait_is_bounded_and_so_is_the_number_of_waits(config: Config, sendgrid_server: SendGridServer,
                                                                    api_key: str) -> None:
    sendgrid_server.script(rate_limited(reset_in=600))  # a reset ten minutes away is not waited for in full
    started = time.monotonic()
    with backend(config, max_rate_limit_wait=0.2) as b:
        b.open(message())
        assert [o.status for o in b.send_messages([reader(1)])] == ["sent"]
    assert 0.2 <= time.monotonic() - started < 5
    sendgrid_server.script(*[rate_limited(reset_in=0)] * 3)
    with backend(config, rate_limit_waits=2) as b:
        b.open(message())
        with pytest.raises(SendGridError, match="kept rate-limiting") as err:
            b.send_messages([reader(2)])
    assert [o.status for o in err.value.outcomes] == ["failed"]  # never accepted: a rerun tries again
    assert reader(2).email not in sendgrid_server.count_by_email()


def test_a_reset_is_uncertain_even_when_sendgrid_took_nothing(config: Config, sendgrid_server: SendGridServer,
                                                              api_key: str) -> None:
    """The client cannot tell the two apart; guessing `not sent` could mail the batch twice."""
    sendgrid_server.script(reset_without_accept())
    with backend(config) as b:
        b.open(message())
        assert [o.status for o in b.send_messages([reader(1)])] == ["uncertain"]
        assert b.requests_made == 1
    assert sendgrid_server.accepted_count == 0


def test_submit_overlaps_our_next_batch_with_sendgrids_answer_one_request_in_flight(
        config: Config, sendgrid_server: SendGridServer, api_key: str) -> None:
    """The send loop's path: submit() returns once a request is on its way (posted from a
    sender thread), so the next batch is read and built meanwhile; the next request waits for
    the answer to the previous one; each request's readers are marked before it is posted."""
    sendgrid_server.script(slow(0.6), slow(0.6), ok())
    readers = [reader(i) for i in range(30)]
    marks: list[tuple[int, int]] = []  # (readers marked, requests the server had got by then)
    reported: list[str] = []
    with backend(config) as b:
        b.open(message(), Hooks(handoff=lambda rs: marks.append((len(rs), len(sendgrid_server.requests))),
                                outcome=lambda o: reported.append(o.email)))
        t0 = time.monotonic()
        first = b.submit(readers[:10])
        assert time.monotonic() - t0 < 0.4 and first == [], "returned while SendGrid was still answering"
        second = b.submit(readers[10:20])  # waits for the answer to the first request only
        assert 0.5 < time.monotonic() - t0 < 1.1
        assert [o.email for o in second] == [r.email for r in readers[:10]]
        third = b.submit(readers[20:30])
        rest = b.finish()
    assert [o.email for o in third + rest] == [r.email for r in readers[10:30]]
    assert {o.status for o in first + second + third + rest} == {"sent"}
    assert marks == [(10, 0), (10, 1), (10, 2)]  # each marked before its request reached SendGrid
    assert reported == [r.email for r in readers]  # every outcome reported as it came
    assert sendgrid_server.count_by_email() == {r.email: 1 for r in readers}


def test_submit_stops_at_a_refusal_and_never_hands_off_the_next_request(
        config: Config, sendgrid_server: SendGridServer, api_key: str) -> None:
    sendgrid_server.script(refuse(400, "The from object must be provided.", "from"))
    readers = [reader(i) for i in range(20)]
    handed: list[int] = []
    with backend(config) as b:
        b.open(message(), Hooks(handoff=lambda rs: handed.append(len(rs))))
        # the refusal may already be back when submit returns (it returns what is settled so
        # far), or come with the error the next submit raises: together, each reader once
        first = b.submit(readers[:10])
        with pytest.raises(SendGridError) as err:
            b.submit(readers[10:])
    assert handed == [10]  # the second request was built but never marked nor posted
    got = first + err.value.outcomes
    assert [o.email for o in got] == [r.email for r in readers[:10]]
    assert {o.status for o in got} == {"failed"} and "from" in got[0].detail
    assert len(sendgrid_server.requests) == 1
