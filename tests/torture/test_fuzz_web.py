"""Fuzzing the web app (served by uvicorn on loopback, real SQLite) with webhook bodies and tokens.

- SendGrid webhook, unsigned or badly signed: always 403, nothing changes.
- Signed with the right key (what SendGrid — or anyone holding its key — can send): any
  JSON, any event shapes, hostile strings, deep nesting, lone surrogates: a 2xx or a
  4xx, never a 5xx; a refused batch changes nothing; an applied one only suppresses
  addresses named by suppressing events in it.
- /unsubscribe/<token> with random and tampered tokens, GET and POST: never a 5xx, never
  a change; the one valid token unsubscribes exactly its reader.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.tokens import make_token
from newsletter.audience.webhook import ISSUE_ARG, SIGNATURE_HEADER, TIMESTAMP_HEADER
from newsletter.config import Config, load_config
from newsletter.store import open_store
from tests.conftest import REPO, single_list
from tests.torture.figures import count, fuzz_settings
from tests.torture.hostile import hostile_text
from tests.webserver import request, serve_in_thread

pytestmark = pytest.mark.torture

KEYS = SigningKeys(b"torture-web-signing-key-0123456789", (), False)
ISSUE = "2011-11-28-test"
READERS = [f"r{i}@example.org" for i in range(6)]
SUPPRESSING = {"unsubscribe", "group_unsubscribe", "spamreport", "bounce", "dropped"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, private_key: ec.EllipticCurvePrivateKey
        ) -> Iterator[tuple[int, Config]]:
    root = tmp_path_factory.mktemp("web")
    (root / "newsletter.toml").write_text((REPO / "newsletter.toml").read_text())
    single_list(root)  # a one-list project: the one-click unsubscribe is a suppression
    config = load_config(root / "newsletter.toml")
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    config = dataclasses.replace(config, sendgrid={**config.sendgrid,
                                                   "webhook_public_key": base64.b64encode(der).decode()},
                                 web={"webhook_max_age_seconds": 300, "max_body_bytes": 256 * 1024})
    with open_store(config) as store:
        store.record_outcomes(ISSUE, "", [(email, "sent", "", "") for email in READERS])
    with serve_in_thread(config, KEYS) as port:
        yield port, config


def snapshot(config: Config) -> tuple[list[tuple[Any, ...]], ...]:
    conn = sqlite3.connect(config.database, timeout=30)
    try:
        return (conn.execute("SELECT email, reason, detail FROM suppressions ORDER BY email").fetchall(),
                conn.execute("SELECT email, delivery FROM ledger ORDER BY email").fetchall())
    finally:
        conn.close()


def _signed(private: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(sig).decode(), TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json"}


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                      st.floats(allow_nan=False), hostile_text(40))
events = st.lists(st.fixed_dictionaries(
    {"event": st.one_of(st.sampled_from(["unsubscribe", "group_unsubscribe", "spamreport", "bounce", "dropped",
                                         "delivered", "deferred", "open", "click", "processed"]), json_leaf),
     "email": st.one_of(st.sampled_from(READERS + ["R1@EXAMPLE.ORG", " r2@example.org ", "new@example.org"]),
                        json_leaf, st.emails())},
    optional={"type": st.one_of(st.sampled_from(["bounce", "blocked"]), json_leaf),
              "reason": json_leaf, "timestamp": json_leaf, "sg_event_id": json_leaf, "asm_group_id": json_leaf,
              ISSUE_ARG: st.one_of(st.just(ISSUE), json_leaf),
              "extra": st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(
                  st.text(max_size=5), c, max_size=3), max_leaves=8)}), max_size=8)

bodies = st.one_of(
    events.map(lambda e: json.dumps(e).encode()),
    st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.sampled_from([b'[{"event":"unsubscribe","email":"\\ud800@example.org"}]',  # a lone surrogate
                     b'[{"event":"unsubscribe","email":"r0@example.org\\u0000"}]',
                     b'[{"event":"bounce","email":"' + b"a" * 200_000 + b'@example.org"}]',
                     b"[" + b"1" * 5000 + b"]", b"[{}]" * 3, b"", b"null", b"{}"]),
)


@fuzz_settings(150, 3000)
@given(body=bodies, how=st.sampled_from(["unsigned", "wrong signature", "stale", "signed", "signed"]))
def test_webhook_fuzz(app: tuple[int, Config], private_key: ec.EllipticCurvePrivateKey, body: bytes,
                      how: str) -> None:
    port, config = app
    before = snapshot(config)
    if how == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif how == "wrong signature":
        headers = _signed(ec.generate_private_key(ec.SECP256R1()), body)
    elif how == "stale":
        headers = _signed(private_key, body)
        headers[TIMESTAMP_HEADER] = str(int(time.time()) - 3600)
    else:
        headers = _signed(private_key, body)
    answer = request(port, "POST", "/webhooks/sendgrid", body, headers)
    count("fuzz examples", f"webhook bodies ({how})")
    assert answer.status < 500, (answer.status, answer.body[:300], body[:300])
    after = snapshot(config)
    if how != "signed":
        assert answer.status == 403, answer.status
        assert after == before
        return
    if answer.status != 200:
        assert after == before, "a refused batch changed the database"
        count("fuzz outcomes", f"signed webhook refused ({answer.status})")
        return
    # applied: new suppressions only for addresses a suppressing event in this batch named
    named = set()
    try:
        for e in json.loads(body):
            if isinstance(e, dict) and str(e.get("event")).strip() in SUPPRESSING:
                named.add(str(e.get("email")).strip().lower())
    except (ValueError, TypeError):
        pass
    new = {row[0] for row in after[0]} - {row[0] for row in before[0]}
    assert new <= named, (new - named, body[:300])
    count("fuzz outcomes", "signed webhook applied")


@fuzz_settings(150, 3000)
@given(token=st.one_of(st.text(max_size=200), st.text(alphabet="ABCDEFGHIJabcdefghij0123456789-_.=", max_size=300),
                       st.just("x" * 5000)),
       method=st.sampled_from(["GET", "POST"]))
def test_unsubscribe_token_fuzz(app: tuple[int, Config], token: str, method: str) -> None:
    port, config = app
    before = snapshot(config)
    path = "/unsubscribe/" + urllib.parse.quote(token, safe="")
    body = "List-Unsubscribe=One-Click" if method == "POST" else None
    answer = request(port, method, path, body, {"Content-Type": "application/x-www-form-urlencoded"})
    count("fuzz examples", "unsubscribe tokens against the app")
    assert 300 <= answer.status < 500, (answer.status, token)  # 4xx, or a redirect (e.g. "x/" -> "x")
    assert snapshot(config) == before


@fuzz_settings(60, 1000)
@given(data=st.data())
def test_tampered_token_against_the_app(app: tuple[int, Config], data: st.DataObject) -> None:
    port, config = app
    reader = data.draw(st.sampled_from(READERS))
    token = make_token(KEYS, reader, config.list_id)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("ABCabc012-_.=").filter(lambda ch: ch != token[i]))
    bad = token[:i] + c + token[i + 1:]
    before = snapshot(config)
    answer = request(port, "POST", "/unsubscribe/" + urllib.parse.quote(bad, safe=""), "List-Unsubscribe=One-Click",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    count("fuzz examples", "tampered tokens against the app")
    assert 400 <= answer.status < 500, (answer.status, token, bad)
    assert snapshot(config) == before


def test_valid_token_unsubscribes_exactly_its_reader(app: tuple[int, Config]) -> None:
    port, config = app
    token = make_token(KEYS, "someone.new@example.org", config.list_id)
    before = snapshot(config)
    answer = request(port, "POST", f"/unsubscribe/{token}", "List-Unsubscribe=One-Click",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 200, answer.status
    new = {row[0] for row in snapshot(config)[0]} - {row[0] for row in before[0]}
    assert new == {"someone.new@example.org"}
    count("hostile cases", "valid token unsubscribes only its reader")
