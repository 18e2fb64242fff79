"""SendGrid's Event Webhook: verify the signature, then turn events into suppressions and
ledger delivery statuses.

SendGrid posts a JSON array of events, signed with ECDSA P-256/SHA-256 over
`timestamp + raw body`. Anyone can reach a public webhook URL, so nothing is applied
unless the signature verifies with the configured public key and the timestamp is fresh
(a captured request cannot be replayed days later). SendGrid delivers at least once, so
applying a batch twice must change nothing the second time: suppressions are inserted
"if absent" and a delivery status only ever moves forward.

    unsubscribe, group_unsubscribe  -> suppression "unsubscribed"
    spamreport                      -> suppression "complained"
    bounce (type "bounce": hard)    -> suppression "bounced", ledger delivery "bounced"
    bounce (type "blocked": soft)   -> ledger delivery "blocked" (not suppressed)
    dropped                         -> suppression "dropped", ledger delivery "dropped"
    delivered / deferred            -> ledger delivery "delivered" / "deferred"
    processed (and the above)       -> settles a reader left `uncertain` by a request whose
                                       answer never came (sent, or failed for bounce/dropped)
    group_resubscribe, open, click: not acted on (lifting a suppression is explicit:
    `newsletter resubscribe`)

Ledger rows are found by (custom arg `newsletter_issue`, recipient address): the send
puts the issue's id into every message's custom_args under that key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.deliver.constants import ISSUE_ARG  # the custom_args key the SendGrid backend sets
from newsletter.errors import NewsletterError
from newsletter.store.db import email_key

if TYPE_CHECKING:
    from newsletter.store import Store

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_MAX_AGE = 600  # seconds; SendGrid signs each (re)delivery afresh
SOURCE = "sendgrid-webhook"
MAX_EVENTS = 100_000

#: How far along a message is; a status only replaces a lower-ranked one, so late or
#: repeated events (a `deferred` arriving after `delivered`) never move it backwards.
DELIVERY_RANK = {"": 0, "deferred": 1, "delivered": 2, "blocked": 3, "dropped": 3, "bounced": 4}


class WebhookError(NewsletterError):
    """A webhook request cannot be applied. `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class WebhookConfigError(NewsletterError):
    """[sendgrid] webhook_public_key is not a usable P-256 public key."""


@dataclass(frozen=True)
class Applied:
    """What one batch did, for the response body and the log."""

    events: int
    suppressed: int  # newly suppressed addresses
    deliveries: int  # ledger rows whose delivery status moved forward
    settled: int  # uncertain ledger rows the events settled (sent or failed)
    ignored: int  # events we never act on (open, click, group_resubscribe, no address, ...)


def normalise_public_key(text: str) -> str:
    """The base64 DER body SendGrid shows, whether pasted bare or as a PEM block."""
    body = re.sub(r"-----(BEGIN|END) PUBLIC KEY-----", "", text)
    return "".join(body.split())


class Verifier:
    """Checks a request's signature and timestamp with sendgrid's own `EventWebhook`."""

    def __init__(self, public_key: str, *, max_age: int = DEFAULT_MAX_AGE):
        from cryptography.hazmat.primitives.asymmetric import ec
        from sendgrid.helpers.eventwebhook import EventWebhook

        key = normalise_public_key(public_key)
        try:
            self._webhook = EventWebhook(key)
        except (ValueError, TypeError) as e:
            raise WebhookConfigError(
                f"[sendgrid] webhook_public_key: not a valid public key ({e.__class__.__name__}); paste the "
                "'Verification Key' shown by SendGrid's Event Webhook settings") from None
        pub = self._webhook.public_key
        if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
            raise WebhookConfigError("[sendgrid] webhook_public_key: not an ECDSA P-256 public key")
        self.max_age = max_age

    def verify(self, body: bytes, signature: str | None, timestamp: str | None, *,
               clock: float | None = None) -> None:
        """Raise WebhookError(403) unless `body` is signed, correctly, and recently."""
        if not signature or not timestamp:
            raise WebhookError("missing signature headers", 403)
        if not re.fullmatch(r"\d{1,12}", timestamp.strip()):
            raise WebhookError("malformed timestamp", 403)
        age = (time.time() if clock is None else clock) - int(timestamp)
        if abs(age) > self.max_age:
            raise WebhookError("stale or future timestamp", 403)
        try:
            payload = body.decode("utf-8")
            ok = self._webhook.verify_signature(payload, signature.strip(), timestamp.strip())
        except (ValueError, TypeError, UnicodeDecodeError):  # undecodable base64, bad DER, bad UTF-8
            ok = False
        if not ok:
            raise WebhookError("bad signature", 403)


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The request body as a list of event objects; raise WebhookError(400) if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookError("body is not JSON", 400) from None
    except RecursionError:  # `[[[[...` thousands deep: json recurses
        raise WebhookError("body is nested too deeply", 400) from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise WebhookError("body is not a JSON array of event objects", 400)
    if len(data) > MAX_EVENTS:
        raise WebhookError(f"more than {MAX_EVENTS} events in one request", 413)
    return data


@dataclass(frozen=True)
class _Plan:
    suppressions: list[tuple[str, str, str]]  # (email key, reason, detail)
    deliveries: list[tuple[str, str, str]]  # (issue, email key, delivery)
    ignored: int


def plan(events: Iterable[Mapping[str, Any]]) -> _Plan:
    """Pure mapping from events to what should change (no database): easy to test and reason about."""
    sup: list[tuple[str, str, str]] = []
    dlv: list[tuple[str, str, str]] = []
    ignored = 0
    for ev in events:
        kind = _text(ev.get("event"))
        email = email_key(_text(ev.get("email")))
        if not email or "@" not in email:
            ignored += 1
            continue
        issue = _text(ev.get(ISSUE_ARG))
        reason = _text(ev.get("reason"))[:300]
        suppression: tuple[str, str] | None = None
        delivery = ""
        if kind == "unsubscribe":
            suppression = ("unsubscribed", "unsubscribe")
        elif kind == "group_unsubscribe":
            group = _text(ev.get("asm_group_id"))
            suppression = ("unsubscribed", f"group_unsubscribe {group}".strip())
        elif kind == "spamreport":
            suppression = ("complained", "spamreport")
        elif kind == "bounce":
            if _text(ev.get("type")) in ("", "bounce"):  # events without a type are hard bounces
                suppression = ("bounced", f"bounce: {reason}".rstrip(": "))
                delivery = "bounced"
            else:
                delivery = "blocked"
        elif kind == "dropped":
            suppression = ("dropped", f"dropped: {reason}".rstrip(": "))
            delivery = "dropped"
        elif kind in ("delivered", "deferred"):
            delivery = kind
        elif kind == "processed":  # acted on by settlements(), when it names an uncertain reader
            continue
        else:
            ignored += 1
            continue
        if suppression:
            sup.append((email, suppression[0], _detail(suppression[1], issue)))
        if delivery and issue:
            dlv.append((issue, email, delivery))
    return _Plan(sup, dlv, ignored)


def apply_events(store: Store, events: list[dict[str, Any]]) -> Applied:
    """Apply a batch in one transaction: all of it or, on any error, none of it."""
    p = plan(events)
    suppressed = moved = settled = 0
    with store.transaction():
        for email, reason, detail in p.suppressions:
            suppressed += store.suppress(email, reason, source=SOURCE, detail=detail)
        for issue, email, delivery in p.deliveries:
            rank = DELIVERY_RANK[delivery]
            moved += store.record_delivery(issue, email, delivery, [k for k, r in DELIVERY_RANK.items() if r < rank])
        settled = store.settle_uncertain(settlements(events))
    return Applied(events=len(events), suppressed=suppressed, deliveries=moved, settled=settled, ignored=p.ignored)


#: Events proving SendGrid took the request (processed, delivered, deferred) or took it and
#: failed (bounce, dropped): a reader left `uncertain` by a request whose answer never came
#: is settled by them, so `--resend-uncertain` resends only those still unknown.
SETTLES = {"processed": "sent", "delivered": "sent", "deferred": "sent", "bounce": "failed", "dropped": "failed"}


def settlements(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(issue, email key, sent|failed, why) for each event that settles an uncertain reader."""
    out = []
    for ev in events:
        status = SETTLES.get(_text(ev.get("event")))
        issue, email = _text(ev.get(ISSUE_ARG)), email_key(_text(ev.get("email")))
        if status and issue and "@" in email:
            why = f"settled by SendGrid's {_text(ev.get('event'))} event"
            reason = _text(ev.get("reason"))[:300]
            out.append((issue, email, status, f"{why}: {reason}" if reason and status == "failed" else why))
    return out


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = str(value).strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800") cannot be stored: treat as absent
        return ""
    return text


def _detail(what: str, issue: str) -> str:
    return f"{what} (issue {issue})" if issue else what
