"""Signup with double opt-in, mounted by `newsletter serve` (web.py adds these routes).

    GET  /subscribe/<list>   a small form: email, optional name, a honeypot field
    POST /subscribe/<list>   always the same "check your inbox" page, whatever the address's
                             state (new, pending, confirmed, suppressed): nobody can learn
                             from it who is subscribed; rate-limited per client and per email
    GET  /confirm/<token>    one button; changes nothing (mail scanners follow links)
    POST /confirm/<token>    confirms: the membership becomes `confirmed`, the consent record
                             gets its confirmation time

The confirmation message is sent from the list's sender through the configured backend
(the outbox by default, so it works with no set-up). Its link carries a signed token
(list, address, the time the message was sent); it expires after `[signup] pending_days`,
and only the latest message's link confirms (store.confirm). Unconfirmed signups are
forgotten after the same number of days (`expire_pending`, run when serve starts and then
hourly).

Rate limits: per client address, a fixed window in this process's memory (`[signup]
per_client_per_hour`, default 30); per email, in the database (`per_email_per_hour`,
default 1 message), so every `serve` process behind a load balancer shares it and 200
concurrent POSTs of one address send one message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.audience.privacy import forget_hashes, ip_hash
from newsletter.audience.secrets import SigningKeys
from newsletter.audience.subscribers import normalise_address
from newsletter.errors import NewsletterError
from newsletter.store import DatabaseError, Store

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger("newsletter.signup")

_DOMAIN = b"newsletter/confirm/v1\n"
MAX_EMAIL = 254  # RFC 5321's path limit
MAX_NAME = 100
MAX_BODY = 4096
HONEYPOT = "website"  # a field people never see; bots fill every field
WORDING_VERSION = "2026-12-01"  # bump when the form's consent wording changes
DEFAULTS = {"pending_days": 7, "per_client_per_hour": 30, "per_email_per_hour": 1}


class InvalidConfirmation(NewsletterError):
    """A confirm token that is tampered, truncated or foreign (`expired` False), or too old."""

    def __init__(self, expired: bool = False, list_key: str = ""):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired
        self.list_key = list_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_confirm_token(keys: SigningKeys, list_key: str, email: str, stamp: str) -> str:
    payload = "\n".join((list_key, email, stamp)).encode("utf-8")
    return f"{_b64(payload)}.{_b64(hmac.new(keys.current, _DOMAIN + payload, hashlib.sha256).digest())}"


def read_confirm_token(keys: SigningKeys, token: str, *, max_age_days: int) -> tuple[str, str, str]:
    """(list, email, stamp) of a valid token; InvalidConfirmation otherwise (expired=True when
    the signature is good but the link is older than `max_age_days`)."""
    if len(token) > 1024 or token.count(".") != 1:
        raise InvalidConfirmation()
    body, sig = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError):
        raise InvalidConfirmation() from None
    if _b64(payload) != body or _b64(signature) != sig:  # one canonical spelling only
        raise InvalidConfirmation()
    ok = False
    for key in keys.all:
        ok |= hmac.compare_digest(hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest(), signature)
    if not ok:
        raise InvalidConfirmation()
    try:
        list_key, email, stamp = payload.decode("utf-8").split("\n")
        sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (UnicodeDecodeError, ValueError):
        raise InvalidConfirmation() from None
    if datetime.now(UTC) - sent > timedelta(days=max_age_days):
        raise InvalidConfirmation(expired=True, list_key=list_key)
    return list_key, email, stamp


class _Window:
    """At most `limit` events per key per hour, in memory (a fixed window per key)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # forget finished windows; bounded memory under a flood
                self._counts = {k: v for k, v in self._counts.items() if now - v[0] < 3600}
            start, n = self._counts.get(key, (now, 0))
            if now - start >= 3600:
                start, n = now, 0
            if n >= self.limit:
                return False
            self._counts[key] = (start, n + 1)
            return True


def check_input(email: str, name: str) -> tuple[str, str, list[str]]:
    """(normalised email, name, problems): one message per problem, shown on the form again."""
    problems = []
    address = ""
    if len(email) > MAX_EMAIL:
        problems.append(f"The email address is too long (at most {MAX_EMAIL} characters).")
    elif not email.strip():
        problems.append("Please enter your email address.")
    else:
        try:
            address = normalise_address(email)
        except ValueError as e:
            problems.append(f"This is not a valid email address: {e}")
    if len(name) > MAX_NAME:
        problems.append(f"The name is too long (at most {MAX_NAME} characters).")
    elif any(c in name for c in "\r\n\x00") or any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in name):
        problems.append("The name must be one line of text.")
    return address, name.strip(), problems


def confirmation_message(config: Config, address: str, name: str, url: str, unsubscribe: str) -> Any:
    """The confirmation email: from the list's sender, one link, nothing else."""
    from newsletter.deliver.message import PreparedMessage, Recipient, message_id

    subject = f"Please confirm your subscription to {config.list_name}"
    greeting = f"Hello {name}," if name else "Hello,"
    text = (f"{greeting}\n\nSomeone, probably you, asked to receive {config.list_name} at this address.\n"
            f"To confirm, open this link and press the button:\n\n{{{{ confirm_url }}}}\n\n"
            "If it was not you, ignore this message: you will not hear from us again.\n\n"
            f"{config.org_name}\n{config.org_postal_address}\n")
    html = ("<!doctype html><html><body style=\"font-family:Helvetica,Arial,sans-serif\">"
            f"<p>{_esc(greeting)}</p><p>Someone, probably you, asked to receive {_esc(config.list_name)} "
            "at this address.</p><p><a href=\"{{ confirm_url }}\">Confirm my subscription</a></p>"
            "<p>If it was not you, ignore this message: you will not hear from us again.</p>"
            f"<p>{_esc(config.org_name)}<br>{_esc(config.org_postal_address)}</p></body></html>")
    prepared = PreparedMessage(issue_slug=f"confirm-{config.list_key}", subject=subject, html=html, text=text,
                               from_name=config.sender_name, from_email=config.sender_address,
                               reply_to=config.reply_to, list_id=f"{config.list_name} <{config.list_id}>",
                               headers={"Auto-Submitted": "auto-generated"})
    domain = config.sender_address.rsplit("@", 1)[-1]
    recipient = Recipient(email=address, name=name or None, fields={"confirm_url": url, "name": name, "email": address},
                          message_id=message_id(f"confirm-{config.list_key}", address, domain, unique=True),
                          list_unsubscribe=f"<{unsubscribe}>")
    return prepared, recipient


def _esc(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


def signup_routes(config: Config, keys: SigningKeys, store: Store,
                  pages_for: Callable[[str], Any | None], read_form: Callable[[Request], Any]) -> list[Route]:
    """The signup and confirm routes for every list of `config`. `pages_for(list_key)` gives
    (list Config, web._Pages) or None; `read_form(request)` the request's urlencoded body (web.py's
    size-limited reader)."""
    from newsletter.audience.tokens import make_token
    from newsletter.deliver.backends import get_backend

    settings = {**DEFAULTS, **(config.signup or {})}
    pending_days = int(settings["pending_days"])
    per_client = _Window(int(settings["per_client_per_hour"]))
    window = timedelta(hours=1) / int(settings["per_email_per_hour"])
    send_lock = threading.Lock()  # one backend hand-off at a time (the outbox, an SMTP connection)
    last_expiry = [0.0]

    def expire() -> None:
        if time.monotonic() - last_expiry[0] < 3600 and last_expiry[0]:
            return
        last_expiry[0] = time.monotonic()
        before = (datetime.now(UTC) - timedelta(days=pending_days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        n = store.expire_pending(before)
        if n:
            log.info("signup: %d unconfirmed signups older than %d days forgotten", n, pending_days)

    def send_confirmation(list_config: Config, address: str, name: str, stamp: str) -> None:
        token = make_confirm_token(keys, list_config.list_key, address, stamp)
        url = f"{list_config.base_url}/confirm/{token}"
        unsubscribe = list_config.unsubscribe_url(make_token(keys, address, list_config.list_id,
                                                             list_config.default_language))
        prepared, recipient = confirmation_message(list_config, address, name, url, unsubscribe)
        with send_lock, get_backend(list_config.backend, list_config) as backend:
            backend.open(prepared)
            (outcome,) = backend.send_messages([recipient])
        if outcome.status != "sent":
            log.warning("signup: confirmation to a new reader of %s %s: %s", list_config.list_key, outcome.status,
                        outcome.detail)

    def record(list_config: Config, address: str, name: str, client: str, form_url: str) -> None:
        """The store's part and the message: in a worker thread."""
        expire()
        resend_after = (datetime.now(UTC) - window).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        result = store.signup(list_config.list_key, address, name, list_config.default_language,
                              form_url=form_url, wording=WORDING_VERSION, ip_hash=ip_hash(keys, client),
                              forget_hashes=forget_hashes(keys, address), resend_after=resend_after)
        if result.send_confirmation:
            send_confirmation(list_config, address, name, result.stamp)

    async def subscribe(request: Request) -> Response:
        found = pages_for(request.path_params["list"])
        if found is None:
            default = pages_for("")
            return default[1].error("not_found", 404, default[1].preferred(request))
        list_config, pages = found
        language = list_config.default_language
        ctx = {"action": f"/subscribe/{list_config.list_key}", "honeypot": HONEYPOT}
        if request.method != "POST":
            return pages.render("subscribe", language, email="", reader_name="", problems=[], **ctx)
        form = await read_form(request)
        if form.get(HONEYPOT):  # a bot: the same answer, nothing stored, nothing sent
            return pages.render("subscribe_sent", language)
        address, name, problems = check_input(form.get("email", ""), form.get("name", ""))
        if problems:
            return pages.render("subscribe", language, 400, email=form.get("email", "")[:MAX_EMAIL],
                                reader_name=form.get("name", "")[:MAX_NAME], problems=problems, **ctx)
        client = request.client.host if request.client else ""
        if not per_client.allow(client):
            response = pages.render("subscribe", language, 429, email=address, reader_name=name,
                                    problems=["Too many signups from your network. Please try again later."], **ctx)
            response.headers["Retry-After"] = "3600"
            return response
        form_url = f"{list_config.base_url}/subscribe/{list_config.list_key}"
        try:
            await run_in_threadpool(record, list_config, address, name, client, form_url)
        except DatabaseError as e:
            log.error("signup not recorded: %s", e)
            return pages.error("busy", 503, language, {"Retry-After": "5"})
        return pages.render("subscribe_sent", language)

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        default = pages_for("")
        try:
            list_key, email, stamp = read_confirm_token(keys, token, max_age_days=pending_days)
            found = pages_for(list_key)
            if found is None:
                raise InvalidConfirmation()
        except InvalidConfirmation as e:
            known = pages_for(e.list_key) if e.list_key else None
            list_config, pages = known or default
            return pages.render("confirm_invalid", list_config.default_language, 400 if not e.expired else 410,
                                expired=e.expired, signup_url=f"/subscribe/{e.list_key}" if known else "")
        list_config, pages = found
        language = list_config.default_language
        if request.method != "POST":
            return pages.render("confirm", language, email=email)
        await read_form(request)

        def do() -> bool:
            done = store.confirm(list_key, email, stamp)
            if done:
                store.unforget(forget_hashes(keys, email))  # a new confirmation lifts an earlier erasure
            return done

        try:
            done = await run_in_threadpool(do)
        except DatabaseError as e:
            log.error("confirmation not recorded: %s", e)
            return pages.error("busy", 503, language, {"Retry-After": "5"})
        return pages.render("confirmed", language, email=email, already=not done)

    return [Route("/subscribe/{list}", subscribe, methods=["GET", "HEAD", "POST"]),
            Route("/confirm/{token}", confirm, methods=["GET", "HEAD", "POST"])]


def signup_form(config: Config) -> str:
    """The HTML <form> to paste into the organisation's web site: a plain POST, no JavaScript."""
    action = f"{config.base_url}/subscribe/{config.list_key}"
    return f"""<form method="post" action="{_esc(action)}" accept-charset="utf-8">
  <p><label for="nl-email">Email</label><br>
  <input id="nl-email" type="email" name="email" required maxlength="{MAX_EMAIL}" autocomplete="email"></p>
  <p><label for="nl-name">Name (optional)</label><br>
  <input id="nl-name" type="text" name="name" maxlength="{MAX_NAME}" autocomplete="name"></p>
  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <label for="nl-{HONEYPOT}">Leave this empty</label>
    <input id="nl-{HONEYPOT}" type="text" name="{HONEYPOT}" tabindex="-1" autocomplete="off">
  </div>
  <p><button type="submit">Subscribe to {_esc(config.list_name)}</button></p>
  <p><small>We will send you an email to confirm. You can unsubscribe at any time.</small></p>
</form>
"""


def parse_form(body: bytes) -> dict[str, str]:
    """An urlencoded body as single values (the last of repeated keys)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    try:
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=20).items()}
    except ValueError:  # more fields than any form of ours has
        return {}
