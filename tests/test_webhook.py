"""SendGrid Event Webhook: ECDSA P-256 signatures made with a key pair generated here, posted
to the app under uvicorn; applied batches land in a real SQLite file."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.audience.web import create_app
from newsletter.audience.webhook import ISSUE_ARG, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookConfigError
from newsletter.config import Config, load_config
from newsletter.store import open_store
from tests.webserver import KEYS, request, serve_in_thread

ISSUE = "2011-11-28-free-ales"


def public_b64(private: ec.EllipticCurvePrivateKey) -> str:
    """The form SendGrid shows as the 'Verification Key': base64 of the DER SubjectPublicKeyInfo."""
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(sig).decode(), TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json"}


@pytest.fixture
def config(make_config: Callable[..., Config], private_key: ec.EllipticCurvePrivateKey) -> Config:
    """The example project's, with the webhook's public key (the test's key pair) in [sendgrid]."""
    return make_config({"sendgrid.webhook_public_key": public_b64(private_key), "web.webhook_max_age_seconds": 300})


@pytest.fixture
def conn(config: Config) -> Iterator[sqlite3.Connection]:
    with open_store(config) as store:
        for email in ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org",
                      "eve@example.org", "fay@example.org"):
            store.mark_sent(ISSUE, email)
    c = sqlite3.connect(config.database, isolation_level=None)  # raw: what is on disk, and a trigger
    yield c
    c.close()


def ev(event: str, email: str, **extra: object) -> dict[str, object]:
    return {"event": event, "email": email, "timestamp": int(time.time()), "sg_event_id": f"id-{event}-{email}",
            "sg_message_id": "msg.1", ISSUE_ARG: ISSUE, **extra}


BATCH = [
    ev("processed", "ada@example.org"),
    ev("delivered", "ada@example.org"),
    ev("unsubscribe", "Ada@Example.org"),
    ev("deferred", "bob@example.org", response="421 try later"),
    ev("group_unsubscribe", "bob@example.org", asm_group_id=42),
    ev("spamreport", "cy@example.org"),
    ev("bounce", "dee@example.org", type="bounce", reason="550 5.1.1 user unknown"),
    ev("bounce", "eve@example.org", type="blocked", reason="421 blocked"),
    ev("dropped", "fay@example.org", reason="Bounced Address"),
    ev("open", "ada@example.org"),
    ev("click", "ada@example.org", url="https://example.org"),
]


def snapshot(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], ...]:
    return (conn.execute("SELECT email, reason, source, detail FROM suppressions ORDER BY email").fetchall(),
            conn.execute("SELECT email, delivery FROM ledger ORDER BY email").fetchall(),
            conn.execute("SELECT action, email FROM actions ORDER BY id").fetchall())


def test_a_signed_batch_is_applied(server: int, conn: sqlite3.Connection,
                                   private_key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps(BATCH).encode()
    a = request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body))
    assert a.status == 200, a.text
    # the processed event settles nobody here (no reader of the issue is uncertain) but is not "ignored"
    assert json.loads(a.body) == {"events": 11, "suppressed": 5, "deliveries": 5, "settled": 0, "ignored": 2}
    sups, ledger, actions = snapshot(conn)
    assert [(e, r, s) for e, r, s, _ in sups] == [
        ("ada@example.org", "unsubscribed", "sendgrid-webhook"),
        ("bob@example.org", "unsubscribed", "sendgrid-webhook"),
        ("cy@example.org", "complained", "sendgrid-webhook"),
        ("dee@example.org", "bounced", "sendgrid-webhook"),
        ("fay@example.org", "dropped", "sendgrid-webhook"),
    ]
    details = {e: d for e, _, _, d in sups}
    assert "550 5.1.1 user unknown" in details["dee@example.org"] and ISSUE in details["dee@example.org"]
    assert "group_unsubscribe 42" in details["bob@example.org"]
    assert ledger == [("ada@example.org", "delivered"), ("bob@example.org", "deferred"), ("cy@example.org", ""),
                      ("dee@example.org", "bounced"), ("eve@example.org", "blocked"), ("fay@example.org", "dropped")]
    assert len(actions) == 5

    # SendGrid delivers at least once: the same batch again changes nothing
    before = snapshot(conn)
    again = request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body))
    assert again.status == 200 and json.loads(again.body)["suppressed"] == 0
    assert snapshot(conn) == before


def test_late_events_never_move_a_delivery_status_backwards(server: int, conn: sqlite3.Connection,
                                                              private_key: ec.EllipticCurvePrivateKey) -> None:
    for batch in ([ev("delivered", "ada@example.org")], [ev("deferred", "ada@example.org")],
                  [ev("deferred", "bob@example.org")], [ev("delivered", "bob@example.org")],
                  [ev("delivered", "nobody@example.org")], [{**ev("delivered", "cy@example.org"), ISSUE_ARG: "other"}]):
        body = json.dumps(batch).encode()
        assert request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body)).status == 200
    ledger = dict(conn.execute("SELECT email, delivery FROM ledger").fetchall())
    assert ledger["ada@example.org"] == "delivered" and ledger["bob@example.org"] == "delivered"
    assert ledger["cy@example.org"] == ""  # other issue's event does not touch this one's row


def test_refused_requests_apply_nothing(server: int, conn: sqlite3.Connection,
                                        private_key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps(BATCH).encode()
    good = signed(private_key, body)
    other_key = ec.generate_private_key(ec.SECP256R1())
    before = snapshot(conn)
    cases = {
        "wrong key": signed(other_key, body),
        "tampered body": signed(private_key, body.replace(b"ada@", b"ann@")),
        "no signature": {k: v for k, v in good.items() if k != SIGNATURE_HEADER},
        "no timestamp": {k: v for k, v in good.items() if k != TIMESTAMP_HEADER},
        "no headers": {"Content-Type": "application/json"},
        "stale": signed(private_key, body, int(time.time()) - 3600),
        "from the future": signed(private_key, body, int(time.time()) + 3600),
        "timestamp swapped": {**good, TIMESTAMP_HEADER: str(int(good[TIMESTAMP_HEADER]) - 1)},
        "garbage signature": {**good, SIGNATURE_HEADER: "not base64 at all!!"},
        "empty signature": {**good, SIGNATURE_HEADER: ""},
        "malformed timestamp": {**good, TIMESTAMP_HEADER: "yesterday"},
    }
    for name, headers in cases.items():
        a = request(server, "POST", "/webhooks/sendgrid", body, headers)
        assert a.status == 403, name
    assert snapshot(conn) == before
    # a stale request that was validly signed at the time: still refused (no replays)
    assert snapshot(conn)[0] == []


def test_signed_but_malformed_bodies_are_400(server: int, conn: sqlite3.Connection,
                                             private_key: ec.EllipticCurvePrivateKey) -> None:
    for body in (b"{not json", b'{"event": "unsubscribe"}', b"[1, 2]", b'"text"'):
        assert request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body)).status == 400
    assert snapshot(conn)[0] == []


def test_a_batch_is_one_transaction(server: int, conn: sqlite3.Connection,
                                    private_key: ec.EllipticCurvePrivateKey) -> None:
    # the database itself refuses one row in the middle of the batch: nothing of it may remain
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON suppressions WHEN NEW.email = 'cy@example.org'"
                 " BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
    before = snapshot(conn)
    body = json.dumps(BATCH).encode()
    a = request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body))
    assert a.status >= 500  # SendGrid retries non-2xx answers
    assert snapshot(conn) == before
    conn.execute("DROP TRIGGER refuse")
    assert request(server, "POST", "/webhooks/sendgrid", body, signed(private_key, body)).status == 200
    assert len(snapshot(conn)[0]) == 5


def test_unconfigured_webhook_refuses_everything(project: Path, private_key: ec.EllipticCurvePrivateKey) -> None:
    config = load_config(project / "newsletter.toml")
    assert "webhook_public_key" not in config.sendgrid
    body = json.dumps(BATCH).encode()
    with serve_in_thread(config, KEYS) as port:
        assert request(port, "POST", "/webhooks/sendgrid", body, signed(private_key, body)).status == 403
    with open_store(config) as store:
        assert list(store.all_suppressions()) == []


def test_public_key_forms(config: Config, private_key: ec.EllipticCurvePrivateKey) -> None:
    pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    app = create_app(dataclasses.replace(config, sendgrid={"webhook_public_key": pem}), keys=KEYS)  # whole PEM
    app.state.store.close()
    for bad in ("not a key", base64.b64encode(b"\x30\x03\x02\x01\x01").decode()):
        with pytest.raises(WebhookConfigError, match="webhook_public_key"):
            create_app(dataclasses.replace(config, sendgrid={"webhook_public_key": bad}), keys=KEYS)
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(WebhookConfigError, match="P-256"):
        create_app(dataclasses.replace(config, sendgrid={"webhook_public_key": public_b64(p384)}), keys=KEYS)


def test_the_send_tags_messages_with_the_key_the_webhook_reads() -> None:
    from newsletter.deliver.backends import sendgrid

    assert sendgrid.ISSUE_ARG == ISSUE_ARG
