"""SendGrid backend: the v3 `mail/send` API, on the reusable HTTP-ESP base (http.py).

In the style of django-anymail's ESP backends, three separate steps:

1. build the payload — pure (`PayloadBuilder`, `build_payload`): the issue's shared parts
   once per request, one personalization per reader carrying their `to`, substitutions,
   List-Unsubscribe headers, Message-ID and custom_args;
2. post it — HTTPBackend: urllib with a timeout, retrying only what is safe to retry
   (see `HTTPBackend._post`), the API key in the Authorization header and nowhere else;
3. parse the answer — 2xx and `X-Message-Id` → `sent`; SendGrid's own error messages
   (field + message) travel in `SendGridError`.

Why not the official `sendgrid` client: its `post()` serialises the payload itself and then
formats all of it into a debug-log string on every request, logging on or not (~8% of a
million-reader send's CPU), logs the request headers (the key) at DEBUG, and the only way
around that was its private `_make_request`. A POST with three headers needs no client.

Placeholders. Built parts hold `{{ field }}`. SendGrid's legacy substitutions replace
literal tags anywhere in the subject and every content part, with no escaping and in no
documented order, so tags are chosen to be safe: `-nlh-name-` in the HTML part (value
HTML-escaped, as the MIME path does) and `-nlt-name-` in the text part (raw). The closing
`-` cannot occur in a field name, so no tag is a prefix of another, and the tag prefix is
changed (`-nl1h-`, ...) if the issue's own text happens to contain it. A placeholder in the
subject is filled here, per personalization, rather than trusted to substitution.
"""

from __future__ import annotations

import html
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from email.header import Header
from typing import TYPE_CHECKING, Any

from newsletter.audience.secrets import SENDGRID_KEY_VAR, env_secret
from newsletter.deliver.backends.base import Outcome
from newsletter.deliver.backends.http import Chunk, HTTPBackend, Response, Settle, option
from newsletter.deliver.constants import ISSUE_ARG, MESSAGE_ID_ARG, ONE_CLICK
from newsletter.deliver.placeholders import WITH_FALLBACK, Template, fields_in
from newsletter.deliver.placeholders import value as field_value
from newsletter.errors import BackendError

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.deliver.message import PreparedMessage, Recipient

DEFAULT_HOST = "https://api.sendgrid.com"
DEFAULT_TIMEOUT = 30
MAX_PERSONALIZATIONS = 1000  # per request; also the limit on recipients (to+cc+bcc), one `to` each here
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization
MAX_REQUEST_BYTES = 28 * 1024 * 1024  # SendGrid's limit is 30 MB; keep a margin for headers and estimates
MAX_CATEGORY_CHARS = 255
#: Headers SendGrid refuses to let a request set (its documentation), lower-cased.
FORBIDDEN_HEADERS = frozenset(h.lower() for h in (
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding",
    "To", "From", "Subject", "Reply-To", "CC", "BCC"))
USER_AGENT = "newsletter (python urllib)"


class SendGridError(BackendError):
    """SendGrid refused the request, or could not be reached: carries SendGrid's own answer.

    `errors` are SendGrid's `(field, message)` pairs. `outcomes` are the recipients of this
    batch whose fate was already settled before the failure (requests of the same batch that
    went out earlier) plus, as `failed` with SendGrid's words, those of the request that was
    refused: record them, or a rerun would send the earlier ones again.
    """

    def __init__(self, summary: str, errors: Sequence[tuple[str | None, str]] = (), *,
                 status: int | None = None, outcomes: Sequence[Outcome] = ()) -> None:
        self.summary = summary
        self.errors = list(errors)
        self.status = status
        super().__init__("\n".join(self.lines()), outcomes=outcomes)

    def lines(self) -> list[str]:
        return [self.summary] + [f"SendGrid: {field}: {message}" if field else f"SendGrid: {message}"
                                 for field, message in self.errors]


# --------------------------------------------------------------------------- payload (pure)

def _tag_prefixes(*texts: str) -> tuple[str, str]:
    """Tag prefixes for the HTML and text parts that occur nowhere in the issue's own text."""
    n = 0
    while True:
        h, t = f"-nl{n or ''}h-", f"-nl{n or ''}t-"
        if not any(h in x or t in x for x in texts):
            return h, t
        n += 1


def _header_value(value: str) -> str:
    """A header value SendGrid can pass through: non-ASCII display text RFC 2047-encoded, one line."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    m = re.fullmatch(r"(.*?)\s*(<[^<>]*>)", value)
    phrase, tail = (m.group(1), " " + m.group(2)) if m else (value, "")
    return Header(phrase, "utf-8").encode(linesep=" ") + tail


def _one_line(value: str) -> str:
    return " ".join(value.split()) if ("\n" in value or "\r" in value or "  " in value) else value.strip()


def _json_bytes_bound(p: dict[str, Any], subs_bytes: int) -> int:
    """An upper bound on a personalization's JSON size, without serialising it twice.

    JSON with ensure_ascii writes a non-ASCII character (2-4 UTF-8 bytes) as 6 or 12
    characters and doubles a quote or backslash: never more than 3x the UTF-8 size of the
    strings, plus the fixed syntax around them.
    """
    strings = subs_bytes + sum(len(v.encode()) for v in p["headers"].values())
    strings += sum(len(v.encode()) for v in p["to"][0].values()) + len(p.get("subject", "").encode())
    strings += sum(len(k) + len(v.encode()) for k, v in p["custom_args"].items())
    return 3 * strings + 400


class PayloadBuilder:
    """The mail/send request for one issue: shared parts computed once, one personalization per reader.

    Pure: no I/O, no clock, so a payload can be checked without a network (and against the
    published schema, as the tests do).
    """

    def __init__(self, message: PreparedMessage, *, sandbox: bool = False) -> None:
        self.message = message
        self.html_prefix, self.text_prefix = _tag_prefixes(message.html, message.text, message.subject)
        self.subject = Template(message.subject) if fields_in(message.subject) else None
        #: (tag, field, fallback) per distinct placeholder of each part; fallbacks unescaped
        self.html_tags: list[tuple[str, str, str]] = []
        self.text_tags: list[tuple[str, str, str]] = []
        html_part = WITH_FALLBACK.sub(lambda m: self._tag(m, self.html_prefix, self.html_tags, True), message.html)
        text_part = WITH_FALLBACK.sub(lambda m: self._tag(m, self.text_prefix, self.text_tags, False), message.text)
        content = [{"type": t, "value": v} for t, v in (("text/plain", text_part), ("text/html", html_part)) if v]
        if not content:
            raise BackendError("the message has neither a text nor an HTML part: nothing to send")
        headers = {"List-Id": _header_value(message.list_id)}
        for name, value in message.headers.items():
            if name.lower() in FORBIDDEN_HEADERS:
                raise BackendError(f"header {name!r} cannot be set through SendGrid (it sets it itself)")
            headers[name] = _header_value(value)
        sender: dict[str, str] = {"email": message.from_email}
        if message.from_name:
            sender["name"] = _one_line(message.from_name)
        base: dict[str, Any] = {
            "from": sender,
            "content": content,
            "headers": headers,
            "categories": [message.issue_slug[:MAX_CATEGORY_CHARS]],
            # The published schema types this one as a string; the API takes an object of strings.
            "custom_args": {ISSUE_ARG: message.issue_slug},
        }
        if self.subject is None:
            base["subject"] = _one_line(message.subject)
        if message.reply_to:
            base["reply_to"] = {"email": message.reply_to}
        if sandbox:
            base["mail_settings"] = {"sandbox_mode": {"enable": True}}
        self.base = base
        self.base_bytes = len(json.dumps(base))

    @staticmethod
    def _tag(m: re.Match[str], prefix: str, tags: list[tuple[str, str, str]], unescape: bool) -> str:
        """The substitution tag for one placeholder: `-nlh-name-`, or `-nlh-name.2-` for the
        second distinct fallback of `name` (`.` cannot occur in a field name: no tag is a
        prefix of another)."""
        field, fallback = m.group(1), m.group(2) or ""
        if unescape:
            fallback = html.unescape(fallback)
        for tag, f, fb in tags:
            if (f, fb) == (field, fallback):
                return tag
        n = sum(f == field for _, f, _ in tags)
        tag = f"{prefix}{field}{f'.{n}' if n else ''}-"
        tags.append((tag, field, fallback))
        return tag

    def substitutions(self, recipient: Recipient) -> dict[str, str]:
        """The recipient's tag → value map: HTML-escaped for the HTML part, raw for the text part."""
        values = recipient.fields
        subs = {tag: html.escape(field_value(values, f, fb), quote=True) for tag, f, fb in self.html_tags}
        subs.update({tag: field_value(values, f, fb) for tag, f, fb in self.text_tags})
        return subs

    def personalization(self, recipient: Recipient) -> dict[str, Any]:
        to: dict[str, str] = {"email": recipient.email}
        if recipient.name and recipient.name.strip():
            to["name"] = _one_line(recipient.name)
        p: dict[str, Any] = {
            "to": [to],
            "headers": {
                "List-Unsubscribe": _one_line(recipient.list_unsubscribe),
                "List-Unsubscribe-Post": ONE_CLICK,
                "Message-ID": recipient.message_id,
            },
            "custom_args": {MESSAGE_ID_ARG: recipient.message_id},
        }
        subs = self.substitutions(recipient)
        if subs:
            p["substitutions"] = subs
        if self.subject is not None:
            p["subject"] = _one_line(self.subject.fill(recipient.fields)) or "(no subject)"
        return p

    def request(self, personalizations: list[dict[str, Any]]) -> dict[str, Any]:
        """The whole request body for these personalizations (at most 1,000)."""
        if not 0 < len(personalizations) <= MAX_PERSONALIZATIONS:
            raise ValueError(f"a request carries 1 to {MAX_PERSONALIZATIONS} personalizations, "
                             f"not {len(personalizations)}")
        return {"personalizations": personalizations, **self.base}


def build_payload(message: PreparedMessage, recipients: Sequence[Recipient], *,
                  sandbox: bool = False) -> dict[str, Any]:
    """The mail/send request body for up to 1,000 recipients of `message` (pure)."""
    builder = PayloadBuilder(message, sandbox=sandbox)
    return builder.request([builder.personalization(r) for r in recipients])


def substitution_bytes(subs: dict[str, str]) -> int:
    """Size as SendGrid counts it against its 10,000-byte limit: tags plus values, UTF-8."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in subs.items())


# --------------------------------------------------------------------------- backend

class SendGridBackend(HTTPBackend):
    """Hands batches to SendGrid, up to 1,000 personalizations per request.

    Settings: `[sendgrid] host` (default https://api.sendgrid.com), `timeout` (seconds,
    default 30), `sandbox` (SendGrid validates, delivers nothing: every reader is reported
    `failed` with that reason, so a later real send still mails them); the API key comes from
    the SENDGRID_API_KEY environment variable only. Options: those of HTTPBackend (retries,
    waits), and `per_request` (≤ 1,000).

    Posting, retries, hand-off marks and the overlapped sender thread are HTTPBackend's;
    this class is the payload (PayloadBuilder), SendGrid's limits, and reading its answers.
    """

    name = "sendgrid"
    service = "SendGrid"
    #: A batch fills one request: half as many requests as 500 would take, each of them a
    #: round trip to SendGrid (and its share of the issue's HTML) however few readers it carries.
    batch_size = MAX_PERSONALIZATIONS

    def __init__(self, config: Config, **options: object) -> None:
        super().__init__(config, **options)
        key = env_secret(SENDGRID_KEY_VAR)
        if not key:
            raise BackendError(f"{SENDGRID_KEY_VAR} is not set: the sendgrid backend needs an API key "
                               f"(export {SENDGRID_KEY_VAR}=SG.… ; it is read from the environment only)")
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise BackendError(f"{SENDGRID_KEY_VAR} contains whitespace or control characters: "
                               f"check how it was exported (its value is not shown)")
        settings = config.sendgrid or {}
        host = str(settings.get("host") or DEFAULT_HOST).rstrip("/")
        parts = urllib.parse.urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise BackendError(f"[sendgrid] host in {config.path.name} must be a bare http(s) URL such as "
                               f"{DEFAULT_HOST} (no path), not {host!r}")
        timeout = settings.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise BackendError(f"[sendgrid] timeout in {config.path.name} must be a positive number of seconds")
        self.host = host
        self.url = f"{host}/v3/mail/send"
        self.timeout = float(timeout)
        self.sandbox = bool(settings.get("sandbox", False))
        self.per_request = option(options, "per_request", MAX_PERSONALIZATIONS, integer=True, backend=self.name)
        if not 1 <= self.per_request <= MAX_PERSONALIZATIONS:
            raise BackendError(f"sendgrid backend option per_request must be 1 to {MAX_PERSONALIZATIONS}")
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": USER_AGENT}

    def __repr__(self) -> str:  # the headers hold the key: never let a repr show it
        return f"SendGridBackend(host={self.host!r}, timeout={self.timeout}, sandbox={self.sandbox})"

    def headers(self) -> dict[str, str]:
        return self._headers

    def prepare(self, message: PreparedMessage) -> PayloadBuilder:
        return PayloadBuilder(message, sandbox=self.sandbox)

    def payload(self, shared: PayloadBuilder, items: list[dict[str, Any]]) -> bytes:
        return json.dumps(shared.request(items), separators=(",", ":")).encode()

    def requests(self, shared: PayloadBuilder, recipients: Sequence[Recipient], settle: Settle) -> Iterator[Chunk]:
        """The requests for `recipients`: (index, recipient, personalization) each, at most
        per_request and 28 MB per request, no address twice in one. Readers who cannot be sent
        at all (too many merge-field bytes) are settled `failed` here, for good."""
        chunk: Chunk = []
        size = shared.base_bytes
        seen: set[str] = set()
        for i, r in enumerate(recipients):
            p = shared.personalization(r)
            subs = substitution_bytes(p.get("substitutions") or {})
            if subs > MAX_SUBSTITUTION_BYTES:
                settle(i, self.done(Outcome(
                    r.email, "failed", f"not sent: this reader's merge fields take {subs:,} bytes as SendGrid "
                    f"substitutions, over SendGrid's {MAX_SUBSTITUTION_BYTES:,}-byte limit per reader; shorten "
                    "their values in the subscriber list (or use fewer fields in the issue)", retryable=False)))
                continue
            p_bytes = _json_bytes_bound(p, subs)
            if shared.base_bytes + p_bytes > MAX_REQUEST_BYTES:
                settle(i, self.done(Outcome(r.email, "failed", "not sent: the message is over SendGrid's 30 MB "
                                            "limit", retryable=False)))
                continue
            key = r.email.lower()
            if chunk and (len(chunk) >= self.per_request or size + p_bytes > MAX_REQUEST_BYTES or key in seen):
                yield chunk
                chunk, size, seen = [], shared.base_bytes, set()
            chunk.append((i, r, p))
            size += p_bytes
            seen.add(key)
        if chunk:
            yield chunk

    def parse(self, response: Response, recipients: list[Recipient]) -> list[Outcome]:
        """mail/send accepts or refuses a request as a whole: every reader of a 2xx is `sent`,
        with the request's X-Message-Id."""
        message_id = response.headers.get("X-Message-Id") or None
        if self.sandbox:
            # Deliberately not `sent`: the ledger would then skip these readers in the real
            # send that follows. `failed` is retried by the next run, and the summary says why.
            detail = ("sandbox mode ([sendgrid] sandbox = true): SendGrid validated the request "
                      "and delivered nothing")
            return [Outcome(r.email, "failed", detail, message_id) for r in recipients]
        detail = message_id or f"accepted ({response.status})"
        return [Outcome(r.email, "sent", detail, message_id) for r in recipients]

    def refusal(self, status: int | None, body: bytes, summary: str | None) -> SendGridError:
        if status is None:
            return SendGridError(summary or "SendGrid could not be reached")
        return _refusal(status, body, summary)


_HINTS = {401: f"check the API key in {SENDGRID_KEY_VAR} (its value is not shown)",
          403: f"the API key in {SENDGRID_KEY_VAR} lacks the Mail Send permission, or the sender is not verified",
          413: "the request is too large for SendGrid"}


def _refusal(status: int, body: bytes | str | None, summary: str | None) -> SendGridError:
    """SendGridError from SendGrid's answer: its `errors` (field + message), or the raw text."""
    reason = http.client.responses.get(status, "")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    errors: list[tuple[str | None, str]] = []
    try:
        data = json.loads(text) if text else {}
        for err in data.get("errors") or []:
            field = err.get("field")
            field = None if field in (None, "null", "") else str(field)
            message = str(err.get("message") or "")
            help_ = err.get("help")
            if help_ and help_ != "null":
                message += f" (help: {help_})"
            errors.append((field, message))
    except (ValueError, AttributeError):
        pass
    if not errors and text.strip():
        errors.append((None, " ".join(text.split())[:300]))
    head = summary or f"SendGrid refused the request: {status} {reason}".rstrip()
    if status in _HINTS and summary is None:
        head += f" — {_HINTS[status]}"
    return SendGridError(head, errors, status=status)
