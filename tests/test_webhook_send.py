"""The send and the webhook agree: a real `newsletter send --backend sendgrid` into the local
SendGrid stand-in, then events built from what it accepted (custom args echoed as top-level
keys, as SendGrid does), signed and posted to the app; the ledger rows of that send get their
delivery status and the next send skips the bounced and the complaining."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.audience.secrets import SigningKeys
from newsletter.audience.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from newsletter.config import load_config
from tests.conftest import run
from tests.sendgrid_server import SendGridServer
from tests.sendkit import SLUG, make_project
from tests.tomledit import edit_toml
from tests.webserver import request, serve_in_thread

API_KEY = "SG.webhook-test-key"
SECRET = "webhook-send-signing-key-0123456789abcdef"
ENV = {"SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_OLD_SECRETS": ""}
NEXT = "2011-12-05-next"


def events_for(sg: SendGridServer, kinds: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """SendGrid's events for the accepted personalizations: custom args become top-level keys."""
    out = []
    for acc in sg.accepted:
        if acc.email not in kinds:
            continue
        body = sg.bodies[acc.request]
        p = acc.personalization or {}
        top = body.get("custom_args") or {}
        out.append({"email": acc.email, "timestamp": int(time.time()), "sg_event_id": f"e-{acc.email}",
                    "sg_message_id": f"{acc.message_id}.filter0001", **top, **(p.get("custom_args") or {}),
                    **kinds[acc.email]})
    return out


def test_events_about_a_sendgrid_send_update_its_ledger_and_suppress(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with SendGridServer(api_key=API_KEY) as sg:
        root = make_project(tmp_path / "project")
        toml = root / "newsletter.toml"
        edit_toml(toml, {"sendgrid.host": sg.url, "sendgrid.webhook_public_key": public})
        shutil.copy(root / "issues" / f"{SLUG}.yaml", root / "issues" / f"{NEXT}.yaml")
        first = run(["send", f"issues/{SLUG}.yaml", "--backend", "sendgrid", "--yes"], root, env=ENV)
        assert first.returncode == 0, first.stderr
        assert set(sg.count_by_email()) == {"ada@example.org", "marie.curie@example.org", "ales@example.org",
                                            "no-name@example.org"}
        events = events_for(sg, {
            "ada@example.org": {"event": "delivered"},
            "marie.curie@example.org": {"event": "spamreport"},
            "ales@example.org": {"event": "bounce", "type": "bounce", "reason": "550 5.1.1 no such user"},
            "no-name@example.org": {"event": "deferred", "response": "421 try later"},
        })
        assert len(events) == 4

        config = load_config(toml)  # the key comes from newsletter.toml, as a user would set it
        body = json.dumps(events).encode()
        ts = str(int(time.time()))
        sig = base64.b64encode(private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        with serve_in_thread(config, SigningKeys(SECRET.encode(), (), False)) as port:
            a = request(port, "POST", "/webhooks/sendgrid", body,
                        {SIGNATURE_HEADER: sig, TIMESTAMP_HEADER: ts, "Content-Type": "application/json"})
        assert a.status == 200, a.text
        assert json.loads(a.body)["deliveries"] == 3  # delivered, deferred, bounced

        conn = sqlite3.connect(config.database)
        try:
            delivery = dict(conn.execute("SELECT email, delivery FROM ledger WHERE issue = ?", (SLUG,)))
            reasons = dict(conn.execute("SELECT email, reason FROM suppressions"))
        finally:
            conn.close()
        assert delivery == {"ada@example.org": "delivered", "marie.curie@example.org": "",
                            "ales@example.org": "bounced", "no-name@example.org": "deferred"}
        assert reasons == {"marie.curie@example.org": "complained", "ales@example.org": "bounced"}

        sg.accepted.clear()
        second = run(["send", f"issues/{NEXT}.yaml", "--backend", "sendgrid", "--yes"], root, env=ENV)
        assert second.returncode == 0, second.stderr
        assert set(sg.count_by_email()) == {"ada@example.org", "no-name@example.org"}
