"""SendGrid backend: the v3 `mail/send` API through the official `sendgrid` client.

In the style of django-anymail's ESP backends, three separate steps:

1. build the payload — pure (`PayloadBuilder`, `build_payload`): the issue's shared parts
   once per request, one personalization per reader carrying their `to`, substitutions,
   List-Unsubscribe headers, Message-ID and custom_args;
2. post it — `SendGridAPIClient(api_key, host=...)` with a timeout (the client has none by
   default), retrying only what is safe to retry;
3. parse the answer — 2xx and `X-Message-Id` → `sent`; SendGrid's own error messages
   (field + message) travel in `SendGridError`.

Placeholders. Built parts hold `{{ field }}`. SendGrid's legacy substitutions replace
literal tags anywhere in the subject and every content part, with no escaping and in no
documented order, so tags are chosen to be safe: `-nlh-name-` in the HTML part (value
HTML-escaped, as the MIME path does) and `-nlt-name-` in the text part (raw). The closing
`-` cannot occur in a field name, so no tag is a prefix of another, and the tag prefix is
changed (`-nl1h-`, ...) if the issue's own text happens to contain it. A placeholder in the
subject is filled here, per personalization, rather than trusted to substitution.

What is retried and what is not — see `SendGridBackend._post`.
"""

from __future__ import annotations

import html
import http.client
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from email.header import Header
from typing import TYPE_CHECKING, Any

from newsletter.audience.secrets import SENDGRID_KEY_VAR, env_secret
from newsletter.deliver.backends.base import Backend, Outcome, Status
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
#: custom_args keys; SendGrid echoes custom args as top-level keys of webhook events.
ISSUE_ARG = "newsletter_issue"  # read back by newsletter.audience.webhook
MESSAGE_ID_ARG = "newsletter_message_id"
#: Headers SendGrid refuses to let a request set (its documentation), lower-cased.
FORBIDDEN_HEADERS = frozenset(h.lower() for h in (
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding",
    "To", "From", "Subject", "Reply-To", "CC", "BCC"))
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058


class _HideRequestHeaders(logging.Filter):
    """The sendgrid client (python_http_client) logs each request's headers at DEBUG, the API
    key in `Authorization` included: with DEBUG logging on, the key would reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HEADERS:")


logging.getLogger("python_http_client.client").addFilter(_HideRequestHeaders())


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
        self.outcomes = list(outcomes)
        super().__init__("\n".join(self.lines()))

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

def _positive(options: dict[str, object], name: str, default: float, *, integer: bool = False) -> Any:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (integer and value != int(value)):
        raise BackendError(f"sendgrid backend option {name}={value!r}: expected a non-negative "
                           f"{'integer' if integer else 'number'}")
    return int(value) if integer else float(value)


class SendGridBackend(Backend):
    """Hands batches to SendGrid, up to 1,000 personalizations per request.

    Settings: `[sendgrid] host` (default https://api.sendgrid.com), `timeout` (seconds,
    default 30), `sandbox` (SendGrid validates, delivers nothing: every reader is reported
    `failed` with that reason, so a later real send still mails them); the API key comes from
    the SENDGRID_API_KEY environment variable only. Options (for tests and tuning):
    `max_attempts` (5), `backoff` (1.0 s, doubling), `max_backoff` (30 s),
    `rate_limit_waits` (10 per request), `max_rate_limit_wait` (60 s), `uncertain_limit`
    (3 unanswered requests in a row stop the send), `per_request` (≤ 1,000).
    """

    name = "sendgrid"
    #: `handoff()` is called right before each request is posted: the ledger marks exactly
    #: the readers of that request `sending`, never those of later requests in the batch.
    reports_handoff = True
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
        self.timeout = float(timeout)
        self.sandbox = bool(settings.get("sandbox", False))
        self.max_attempts = max(1, _positive(options, "max_attempts", 5, integer=True))
        self.backoff = _positive(options, "backoff", 1.0)
        self.max_backoff = _positive(options, "max_backoff", 30.0)
        self.rate_limit_waits = _positive(options, "rate_limit_waits", 10, integer=True)
        self.max_rate_limit_wait = _positive(options, "max_rate_limit_wait", 60.0)
        self.uncertain_limit = max(1, _positive(options, "uncertain_limit", 3, integer=True))
        self.per_request = _positive(options, "per_request", MAX_PERSONALIZATIONS, integer=True)
        if not 1 <= self.per_request <= MAX_PERSONALIZATIONS:
            raise BackendError(f"sendgrid backend option per_request must be 1 to {MAX_PERSONALIZATIONS}")
        sleep = options.get("sleep", time.sleep)
        self._sleep: Callable[[float], object] = sleep if callable(sleep) else time.sleep
        self._builder: PayloadBuilder | None = None
        self._uncertain_streak = 0
        self._pool: Any = None  # the sender thread of submit(), started on first use
        self._in_flight: Any = None  # its Future: the request being posted
        self._settled: list[Outcome] = []
        self._settled_lock = threading.Lock()
        self.requests_made = 0  # HTTP requests posted, retries included
        from sendgrid import SendGridAPIClient  # imported here only: `newsletter --help` stays light

        self._api = SendGridAPIClient(api_key=key, host=host)
        self._api.client.timeout = self.timeout  # the client's default is no timeout at all
        self._opener = urllib.request.build_opener()

    def __repr__(self) -> str:  # the client holds the key: never let a repr show it
        return f"SendGridBackend(host={self.host!r}, timeout={self.timeout}, sandbox={self.sandbox})"

    def open(self, message: PreparedMessage) -> None:
        if self.message is not message or self._builder is None:
            self._builder = PayloadBuilder(message, sandbox=self.sandbox)
        super().open(message)

    def send_messages(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Hand off `recipients` in requests of at most 1,000; one Outcome each, in order."""
        builder = self._ready()
        outcomes: list[Outcome | None] = [None] * len(recipients)

        def settle(i: int, outcome: Outcome) -> None:
            outcomes[i] = outcome

        try:
            for chunk in self._requests(builder, recipients, settle):
                self._hand_off(builder, chunk, settle)
        except SendGridError as e:
            e.outcomes = [o for o in outcomes if o is not None]
            raise
        return [o for o in outcomes if o is not None]

    # -- overlapped: the send loop's submit / finish ------------------------------
    def submit(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Like send_messages, but each request is posted by a sender thread, so the send loop
        reads, checks and builds the next batch while SendGrid answers this one.

        At most one request is in flight: the next is handed over only once the previous
        one is answered (so a batch's suppression check is at most one request older than
        its hand-off), and the ledger's `sending` mark is still committed, in the sender
        thread, right before its request is posted. Returns the outcomes settled since the
        last call; finish() waits for the last request and returns the rest.
        """
        builder = self._ready()
        for chunk in self._requests(builder, recipients, self._settle):
            self._wait()  # the previous request answered (or its SendGridError raised here)
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sendgrid")
            self._in_flight = self._pool.submit(self._hand_off, builder, chunk, self._settle)
        return self._take()

    def finish(self) -> list[Outcome]:
        self._wait()
        return self._take()

    def close(self) -> None:
        """Wait for a request in flight (its outcomes are reported as usual), stop the sender thread."""
        try:
            if self._in_flight is not None:
                self._in_flight.exception()  # waits; an error here was already reported through done()
                self._in_flight = None
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _settle(self, _: int, outcome: Outcome) -> None:
        with self._settled_lock:
            self._settled.append(outcome)

    def _take(self) -> list[Outcome]:
        with self._settled_lock:
            out, self._settled = self._settled, []
        return out

    def _wait(self) -> None:
        future, self._in_flight = self._in_flight, None
        if future is None:
            return
        try:
            future.result()
        except SendGridError as e:
            e.outcomes = self._take()
            raise

    def _ready(self) -> PayloadBuilder:
        if self._builder is None:
            raise BackendError("SendGridBackend.open(message) must be called before send_messages")
        return self._builder

    def _requests(self, builder: PayloadBuilder, recipients: Sequence[Recipient],
                  settle: Callable[[int, Outcome], None]) -> Iterator[list[tuple[int, Recipient, dict[str, Any]]]]:
        """The requests for `recipients`: (index, recipient, personalization) each, at most
        per_request and 28 MB per request, no address twice in one. Readers who cannot be sent
        at all (too many merge-field bytes) are settled `failed` here."""
        chunk: list[tuple[int, Recipient, dict[str, Any]]] = []
        size = builder.base_bytes
        seen: set[str] = set()
        for i, r in enumerate(recipients):
            p = builder.personalization(r)
            subs = substitution_bytes(p.get("substitutions") or {})
            if subs > MAX_SUBSTITUTION_BYTES:
                settle(i, self.done(Outcome(
                    r.email, "failed", f"not sent: this reader's merge fields take {subs:,} bytes as SendGrid "
                    f"substitutions, over SendGrid's {MAX_SUBSTITUTION_BYTES:,}-byte limit per reader; shorten "
                    "their values in the subscriber list (or use fewer fields in the issue)", retryable=False)))
                continue
            p_bytes = _json_bytes_bound(p, subs)
            if builder.base_bytes + p_bytes > MAX_REQUEST_BYTES:
                settle(i, self.done(Outcome(r.email, "failed", "not sent: the message is over SendGrid's 30 MB "
                                            "limit", retryable=False)))
                continue
            key = r.email.lower()
            if chunk and (len(chunk) >= self.per_request or size + p_bytes > MAX_REQUEST_BYTES or key in seen):
                yield chunk
                chunk, size, seen = [], builder.base_bytes, set()
            chunk.append((i, r, p))
            size += p_bytes
            seen.add(key)
        if chunk:
            yield chunk

    def _hand_off(self, builder: PayloadBuilder, chunk: list[tuple[int, Recipient, dict[str, Any]]],
                  settle: Callable[[int, Outcome], None]) -> None:
        """One request: mark its readers `sending` (handoff), post, report each outcome (done)."""
        if self._uncertain_streak >= self.uncertain_limit:
            raise SendGridError(f"SendGrid at {self.host} left {self._uncertain_streak} requests in a row "
                                f"unanswered; stopping (those readers are marked uncertain)")
        self.handoff([r for _, r, _ in chunk])
        try:
            status, detail, remote = self._post(builder.request([p for _, _, p in chunk]))
        except SendGridError as e:
            # Refused or never received: nothing in this request was sent. `failed` with
            # SendGrid's words, so the ledger shows why and a rerun tries them again.
            words = "; ".join(e.lines())[:1000]
            for i, r, _ in chunk:
                settle(i, self.done(Outcome(r.email, "failed", words)))
            raise
        for i, r, _ in chunk:  # done(): the send loop records outcomes as backends report them
            settle(i, self.done(Outcome(r.email, status, detail, remote)))

    # -- posting --------------------------------------------------------------
    def _post(self, payload: dict[str, Any]) -> tuple[Status, str, str | None]:
        """Post one request until SendGrid answers; return (status, detail, X-Message-Id).

        Retried, because SendGrid said it did not take the request, or cannot have it:
        - 429: wait until X-RateLimit-Reset (epoch seconds; bounded by max_rate_limit_wait),
          then try again, up to rate_limit_waits times;
        - 5xx: SendGrid's answer that it failed to process the request; exponential backoff
          (honouring Retry-After), up to max_attempts in all;
        - connection refused, reset or timed out while connecting or sending: urllib raises
          URLError only while the request is being written, so SendGrid cannot hold a
          complete request. Same backoff.

        Not retried — the recipients are marked `uncertain` instead: a read timeout, or the
        connection dropped, after the whole request was sent. SendGrid may well have
        accepted it (a slow answer is not a refusal), and mail/send has no idempotency key,
        so posting it again could mail every reader of the batch twice. Resending those is
        the user's explicit choice (`--resend-uncertain`). After `uncertain_limit` such
        requests in a row the service is taken to be down and the send stops.

        Any other 4xx (400, 401, 403, 413, ...) means the request itself is wrong and every
        following one would be too: raise SendGridError with SendGrid's own messages.
        """
        from python_http_client.exceptions import HTTPError

        attempts = rate_waits = 0
        n = len(payload["personalizations"])
        body = json.dumps(payload, separators=(",", ":")).encode()  # once, whatever the retries
        while True:
            self.requests_made += 1
            try:
                response = self._send(body)
            except HTTPError as e:
                status, headers = int(e.status_code), e.headers
                if status == 429:
                    rate_waits += 1
                    if rate_waits > self.rate_limit_waits:
                        raise _refusal(status, e.body, f"SendGrid kept rate-limiting ({rate_waits} times "
                                                       f"for one request); stopping") from None
                    self._sleep(self._rate_limit_wait(headers, rate_waits))
                    continue
                if status >= 500:
                    attempts += 1
                    if attempts >= self.max_attempts:
                        raise _refusal(status, e.body, f"SendGrid answered {status} {attempts} times in a row; "
                                                       f"stopping (nothing in this request was sent)") from None
                    self._sleep(self._backoff(attempts, headers))
                    continue
                raise _refusal(status, e.body, None) from None
            except urllib.error.URLError as e:
                attempts += 1
                if isinstance(e.reason, ssl.SSLCertVerificationError):  # waiting will not fix a certificate
                    raise SendGridError(f"cannot reach SendGrid at {self.host}: {e.reason}") from None
                if attempts >= self.max_attempts:
                    raise SendGridError(f"cannot reach SendGrid at {self.host}: {e.reason} "
                                        f"({attempts} attempts; nothing in this request was sent)") from None
                self._sleep(self._backoff(attempts, None))
                continue
            except (OSError, http.client.HTTPException) as e:
                self._uncertain_streak += 1
                what = f"no answer within {self.timeout:g} s" if isinstance(e, TimeoutError) else \
                    f"connection lost before the answer ({type(e).__name__}: {e})"
                return ("uncertain", f"SendGrid received the request for {n} readers but gave {what}; "
                        f"it may have accepted it, so it is not resent automatically", None)
            self._uncertain_streak = 0
            message_id = response.headers.get("X-Message-Id") if response.headers else None
            if self.sandbox:
                # Deliberately not `sent`: the ledger would then skip these readers in the real
                # send that follows. `failed` is retried by the next run, and the summary says why.
                return ("failed", "sandbox mode ([sendgrid] sandbox = true): SendGrid validated the request "
                        "and delivered nothing", message_id)
            return "sent", message_id or f"accepted ({response.status_code})", message_id

    def _send(self, body: bytes) -> Any:
        """POST `body` to mail/send through the client's own request path: its URL, headers
        (the key) and error mapping (`_make_request` raises python_http_client's HTTPError
        with SendGrid's status, headers and body). Not through its `post()`, which serialises
        the payload itself and then formats all of it into a debug-log string on every request,
        logging on or not: ~8% of a million-reader send's CPU, for nothing."""
        from python_http_client.client import Response

        client = self._api.client.mail.send
        request = urllib.request.Request(client._build_url(None), data=body, method="POST",
                                         headers={**client.request_headers, "Content-Type": "application/json"})
        return Response(client._make_request(self._opener, request, timeout=self.timeout))

    def _backoff(self, attempt: int, headers: Any) -> float:
        wait = self.backoff * 2 ** (attempt - 1)
        retry_after = _number(headers.get("Retry-After")) if headers is not None else None
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff)

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        reset = _number(headers.get("X-RateLimit-Reset")) if headers is not None else None
        if reset is None:
            return self._backoff(attempt, headers)
        wait = reset - time.time() if reset > 1e9 else reset  # epoch seconds (SendGrid) or a delay
        return min(max(wait, 0.05), self.max_rate_limit_wait)


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip()) if value is not None else None
    except ValueError:
        return None


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
