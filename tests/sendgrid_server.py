"""A real HTTP server on loopback standing in for SendGrid's `POST /v3/mail/send`.

Why a server and not a mock: the backend must be exercised through its real HTTP path,
real sockets and real JSON, and every request must pass the schema SendGrid
publishes (`tests/data/sendgrid/tsg_mail_v3.json`, `components.requestBodies.PostMailSend`)
plus the limits its documentation states but the schema does not. Anything SendGrid would
refuse, this server refuses with SendGrid's error body shape, so a test cannot pass
against it with a payload the real service would reject.

    with SendGridServer(api_key="SG.test") as sg:          # or: python -m tests.sendgrid_server
        sg.script(rate_limited(reset_in=1), server_error(503), slow(2.0), reset_after_accept())
        ... point [sendgrid] host at sg.url and send ...
        sg.count_by_email()          # exact accounting: who was accepted, how many times
        sg.render("a@example.org")   # the message as SendGrid would deliver it (substituted)

Scripted faults apply to the next requests in order, one per request. `validate=False`
skips the (slow) jsonschema pass for benchmarks; the documented limits are always checked.
`record="emails"` or `"count"` keeps memory flat at a million recipients.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "sendgrid" / "tsg_mail_v3.json"
SCHEMA_URI = "urn:sendgrid:tsg_mail_v3"
REQUEST_SCHEMA_POINTER = "#/components/requestBodies/PostMailSend/content/application~1json/schema"

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_SEND_AT_AHEAD = 72 * 3600
#: Headers SendGrid will not let a request set (documented; compared case-insensitively).
FORBIDDEN_HEADERS = frozenset(h.lower() for h in (
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding",
    "To", "From", "Subject", "Reply-To", "CC", "BCC"))

#: The key the tests' stand-in accepts (the `sendgrid_server` fixture's); SENDGRID_API_KEY in their sends.
API_KEY = "SG.test-key.0123456789"

Record = Literal["full", "emails", "count"]
#: SendGrid's suppression lists (GET /v3/suppression/<name>) and the fields of their entries.
SUPPRESSION_LISTS = {
    "bounces": ("created", "email", "reason", "status"),
    "blocks": ("created", "email", "reason", "status"),
    "spam_reports": ("created", "email", "ip"),
    "invalid_emails": ("created", "email", "reason"),
    "unsubscribes": ("created", "email"),
}
SUPPRESSION_PAGE_MAX = 500


# --------------------------------------------------------------------------- validation

@lru_cache(maxsize=1)
def _validator() -> Any:
    """The jsonschema validator for PostMailSend, built once (refs resolve inside the file)."""
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    body = doc["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    # Known quirk of the published file: top-level custom_args is typed "string", while the
    # API takes an object of strings (as each personalization's custom_args is typed). Accept both.
    body["properties"]["custom_args"] = {
        "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]}
    registry = Registry().with_resource(SCHEMA_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": SCHEMA_URI + REQUEST_SCHEMA_POINTER}, registry=registry,
                                format_checker=FormatChecker())


def _error(message: str, where: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": where, "help": None}


def schema_errors(body: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Errors of `body` against the published schema, as SendGrid reports them (field = dotted path)."""
    out = []
    for err in sorted(_validator().iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
        path = [str(p) for p in err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, dict):  # name the missing field itself
            path += [k for k in err.validator_value if k not in err.instance][:1]
        out.append(_error(err.message, ".".join(path) or None))
        if len(out) >= limit:
            break
    return out


def _bytes(mapping: Any) -> int:
    if isinstance(mapping, str):
        return len(mapping.encode())
    if not isinstance(mapping, dict):
        return 0
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in mapping.items())


def limit_errors(body: Any, now: float | None = None) -> list[dict[str, Any]]:
    """The documented limits and rules the schema does not encode (checked even without the schema)."""
    if not isinstance(body, dict):
        return [_error("The request body must be a JSON object.")]
    errs: list[dict[str, Any]] = []
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        return [_error("You must have at least one personalization.", "personalizations")]
    if len(pers) > MAX_PERSONALIZATIONS:
        errs.append(_error(f"The personalization block is limited to 1000 personalizations per API request. "
                           f"You have provided {len(pers)} personalizations. Please consider splitting this "
                           f"into multiple requests and resending your request.", "personalizations"))
    total = 0
    seen: set[str] = set()
    template = body.get("template_id")
    every_has_subject = True
    now = time.time() if now is None else now
    for i, p in enumerate(pers):
        where = f"personalizations.{i}"
        if not isinstance(p, dict):
            errs.append(_error("Each personalization must be an object.", where))
            continue
        if not p.get("to"):
            errs.append(_error("The to parameter is required for all personalization objects, and must have "
                               "at least one email object with a valid email address.", f"{where}.to"))
        for kind in ("to", "cc", "bcc"):
            for j, addr in enumerate(p.get(kind) or []):
                total += 1
                email = addr.get("email") if isinstance(addr, dict) else None
                if not isinstance(email, str) or "@" not in email:
                    errs.append(_error("Does not contain a valid address.", f"{where}.{kind}.{j}.email"))
                    continue
                key = email.strip().lower()
                if key in seen:
                    errs.append(_error(f"Each unique email address in the personalizations array should only be "
                                       f"included once. You have included {email} more than once.",
                                       f"{where}.{kind}.{j}.email"))
                seen.add(key)
        subs = p.get("substitutions")
        if subs is not None:
            if isinstance(subs, dict) and not all(isinstance(v, str) for v in subs.values()):
                errs.append(_error("Substitution values must be strings.", f"{where}.substitutions"))
            if _bytes(subs) > MAX_SUBSTITUTION_BYTES:
                errs.append(_error(f"The total collective size of your substitutions may not exceed "
                                   f"{MAX_SUBSTITUTION_BYTES} bytes per personalization object.",
                                   f"{where}.substitutions"))
        errs += _custom_args_errors(p.get("custom_args"), f"{where}.custom_args")
        errs += _header_errors(p.get("headers"), f"{where}.headers")
        if not p.get("subject"):
            every_has_subject = False
        send_at = p.get("send_at")
        if isinstance(send_at, int) and send_at > now + MAX_SEND_AT_AHEAD:
            errs.append(_error("send_at may not be more than 72 hours in the future.", f"{where}.send_at"))
    if total > MAX_RECIPIENTS:
        errs.append(_error("There is a limit of 1000 total recipients (to + cc + bcc) per request.",
                           "personalizations"))
    cats = body.get("categories")
    if isinstance(cats, list):
        if len(cats) > MAX_CATEGORIES:
            errs.append(_error("You may not have more than 10 categories per request.", "categories"))
        for i, c in enumerate(cats):
            if not isinstance(c, str) or len(c) > MAX_CATEGORY_CHARS:
                errs.append(_error("A category cannot be more than 255 characters.", f"categories.{i}"))
    errs += _custom_args_errors(body.get("custom_args"), "custom_args")
    errs += _header_errors(body.get("headers"), "headers")
    if not template:
        if not body.get("subject") and not every_has_subject:
            errs.append(_error("The subject is required. You can get around this requirement if you use a template "
                               "with a subject defined or if every personalization has a subject defined.",
                               "subject"))
        content = body.get("content")
        if not isinstance(content, list) or not content:
            errs.append(_error("Unless a valid template_id is provided, the content parameter is required. There "
                               "must be at least one defined content block.", "content"))
        else:
            types = [c.get("type") for c in content if isinstance(c, dict)]
            if len(set(types)) != len(types):
                errs.append(_error("If present, text/plain and text/html may only be provided once.", "content"))
            if "text/plain" in types and types.index("text/plain") != 0:
                errs.append(_error("If present, text/plain must be first, followed by text/html, followed by any "
                                   "other content.", "content"))
    send_at = body.get("send_at")
    if isinstance(send_at, int) and send_at > now + MAX_SEND_AT_AHEAD:
        errs.append(_error("send_at may not be more than 72 hours in the future.", "send_at"))
    return errs


def _custom_args_errors(args: Any, where: str) -> list[dict[str, Any]]:
    errs = []
    if isinstance(args, dict) and not all(isinstance(v, str) for v in args.values()):
        errs.append(_error("Custom arguments values must be strings.", where))
    if args is not None and _bytes(args) >= MAX_CUSTOM_ARGS_BYTES:
        errs.append(_error(f"Total custom_args size may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes.", where))
    return errs


def _header_errors(headers: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(headers, dict):
        return []
    errs = []
    for name, value in headers.items():
        if str(name).lower() in FORBIDDEN_HEADERS:
            errs.append(_error(f"The {name} header is a reserved header and may not be set.", f"{where}.{name}"))
        elif not isinstance(value, str):
            errs.append(_error("Header values must be strings.", f"{where}.{name}"))
        elif "\r" in value or "\n" in value:
            errs.append(_error("Header values may not contain line breaks.", f"{where}.{name}"))
    return errs


def validate_request(body: Any, *, schema: bool = True) -> list[dict[str, Any]]:
    """Every reason SendGrid would answer 400 to `body` (empty list: it would be accepted)."""
    errs = schema_errors(body) if schema else []
    return errs or limit_errors(body)


# --------------------------------------------------------------------------- scripting

@dataclass(frozen=True)
class Fault:
    """What the server does with one request instead of (or after) the normal answer.

    status: answer this status (429, 5xx, ...) without accepting anything.
    accept: validate and record the request as accepted before the fault (slow / reset).
    delay: seconds to wait before answering (longer than the client's timeout = read timeout).
    reset: drop the connection with a TCP RST instead of answering.
    Neither status, delay nor reset: answer normally (`ok()`). Not accepted but delayed
    without reset: a 503 after the delay.
    """

    status: int | None = None
    reset_in: float = 1.0  # 429: X-RateLimit-Reset is this many seconds ahead
    accept: bool = False
    delay: float = 0.0
    reset: bool = False
    body: dict[str, Any] | None = None


def ok() -> Fault:
    """Answer this request normally (to script a fault for a later one)."""
    return Fault()


def rate_limited(reset_in: float = 1.0) -> Fault:
    return Fault(status=429, reset_in=reset_in)


def server_error(status: int = 503) -> Fault:
    return Fault(status=status)


def refuse(status: int, message: str, where: str | None = None) -> Fault:
    """Answer `status` with SendGrid's error body carrying `message` (400, 401, 403, 413, ...)."""
    return Fault(status=status, body={"errors": [_error(message, where)]})


def slow(seconds: float, accept: bool = True) -> Fault:
    """Accept the request (it counts as sent) but answer only after `seconds`."""
    return Fault(accept=accept, delay=seconds)


def reset_after_accept() -> Fault:
    """Accept the request, then reset the connection: the client never learns it was sent."""
    return Fault(accept=True, reset=True)


def reset_without_accept() -> Fault:
    """Read the whole request, accept nothing, reset the connection."""
    return Fault(accept=False, reset=True)


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class RequestLog:
    """One request the server answered (or dropped)."""

    index: int
    at: float  # time.time() when the request was read in full
    status: int | None  # None: connection reset
    personalizations: int
    message_id: str | None
    errors: list[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)  # extra answer headers (X-RateLimit-*)


@dataclass(frozen=True)
class Accepted:
    """One personalization SendGrid would now deliver."""

    email: str
    message_id: str  # the request's X-Message-Id
    request: int  # index into SendGridServer.requests
    personalization: dict[str, Any] | None = None  # record="full" only


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
            415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_DEFAULT_MESSAGES = {401: "authorization required", 403: "access forbidden", 404: "not found",
                     405: "method not allowed", 413: "content too large", 429: "too many requests",
                     500: "internal server error", 502: "bad gateway", 503: "service unavailable",
                     504: "gateway timeout"}


# --------------------------------------------------------------------------- the server

class SendGridServer:
    """SendGrid's mail/send endpoint on loopback; start() in a thread, stop() when done."""

    def __init__(self, api_key: str = "SG.test-key", *, validate: bool = True, record: Record = "full",
                 host: str = "127.0.0.1", port: int = 0, rate_limit: int = 600,
                 tls: ssl.SSLContext | None = None) -> None:
        self.api_key = api_key
        self.validate = validate
        self.record = record
        self.rate_limit = rate_limit
        self.requests: list[RequestLog] = []
        self.accepted: list[Accepted] = []
        self.bodies: dict[int, dict[str, Any]] = {}  # request index -> accepted body (record="full")
        self.accepted_count = 0
        self.sandboxed_count = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.suppression_lists: dict[str, list[dict[str, Any]]] = {}
        self.suppression_requests: list[tuple[str, dict[str, int]]] = []
        self.scopes = set(SUPPRESSION_LISTS)  # lists the key may read (others: 403)
        self.suppression_faults: list[Fault] = []  # scripted answers to the next suppression GETs
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self.tls = tls
        if tls is not None:  # HTTPS, e.g. with a certificate the client does not trust
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> SendGridServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sendgrid-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # scripting and accounting ---------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Queue faults: each applies to one upcoming request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def add_suppressions(self, name: str, entries: Iterable[dict[str, Any]]) -> None:
        """Put entries on one of SendGrid's suppression lists, checking they have its fields."""
        fields = SUPPRESSION_LISTS[name]
        rows = []
        for e in entries:
            if set(e) - set(fields) or not {"created", "email"} <= set(e) or not isinstance(e["created"], int):
                raise ValueError(f"a {name} entry has exactly {fields} (created: unix seconds): {e}")
            rows.append(dict(e))
        with self._lock:
            self.suppression_lists.setdefault(name, []).extend(rows)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def count_by_email(self) -> Counter[str]:
        """How many times each address was accepted (record "full" or "emails")."""
        with self._lock:
            return Counter(a.email for a in self.accepted)

    def render(self, email: str) -> dict[str, Any]:
        """The message SendGrid would deliver to `email`: substitutions applied, headers merged.

        Substitutions are applied as SendGrid documents them: each tag replaced literally, in
        the subject and every content part. Needs record="full".
        """
        with self._lock:
            found = [a for a in self.accepted if a.email.lower() == email.lower()]
        if not found or found[-1].personalization is None:
            raise KeyError(f"{email} was not accepted (or record != 'full')")
        acc = found[-1]
        body = self.bodies[acc.request]
        p = acc.personalization
        subs = p.get("substitutions") or {}

        def fill(text: str) -> str:
            for tag, value in subs.items():
                text = text.replace(tag, value)
            return text

        parts = {c["type"]: fill(c["value"]) for c in body.get("content") or []}
        custom = body.get("custom_args") if isinstance(body.get("custom_args"), dict) else {}
        return {
            "to": p["to"], "from": p.get("from") or body["from"], "reply_to": body.get("reply_to"),
            "subject": fill(p.get("subject") or body.get("subject") or ""),
            "text": parts.get("text/plain"), "html": parts.get("text/html"),
            "headers": {**(body.get("headers") or {}), **(p.get("headers") or {})},
            "custom_args": {**custom, **(p.get("custom_args") or {})},
            "categories": body.get("categories") or [],
            "message_id": acc.message_id,
        }

    # request handling (called from handler threads) ------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _log(self, status: int | None, personalizations: int, message_id: str | None,
             errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> int:
        with self._lock:
            idx = len(self.requests)
            self.requests.append(RequestLog(idx, time.time(), status, personalizations, message_id, errors,
                                            dict(headers or {})))
            return idx

    def _accept(self, body: dict[str, Any], message_id: str) -> int:
        pers = body["personalizations"]
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        with self._lock:
            idx = len(self.requests)
            self.requests.append(RequestLog(idx, time.time(), 200 if sandbox else 202, len(pers), message_id, []))
            if sandbox:
                self.sandboxed_count += sum(len(p.get("to") or []) for p in pers)
                return idx
            if self.record == "full":
                self.bodies[idx] = body
            for p in pers:
                for to in p.get("to") or []:
                    self.accepted_count += 1
                    if self.record != "count":
                        self.accepted.append(Accepted(to["email"], message_id, idx,
                                                      p if self.record == "full" else None))
            return idx


def _handler_for(server: SendGridServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        sg = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    sg: SendGridServer
    protocol_version = "HTTP/1.1"
    server_version = "sendgrid-standin/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records instead
        pass

    def _answer(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            self.send_response(status, _REASONS.get(status))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (read timeout) - as with the real service, too late
            self.close_connection = True

    def _refuse(self, status: int, message: str | None = None, where: str | None = None,
                errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
                count: int = 0) -> None:
        errors = errors or [_error(message or _DEFAULT_MESSAGES.get(status, "error"), where)]
        self.sg._log(status, count, None, errors, headers)
        self._answer(status, {"errors": errors}, headers)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashing proxy would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._read_body()
        path, _, query = self.path.partition("?")
        if path.startswith("/v3/suppression/"):
            return self._suppressions(path[len("/v3/suppression/"):].rstrip("/"), query)
        self._refuse(405 if self.path.rstrip("/") == "/v3/mail/send" else 404)

    def _suppressions(self, name: str, query: str) -> None:
        """GET /v3/suppression/{bounces,blocks,spam_reports,invalid_emails,unsubscribes}: the
        published query parameters (start_time, end_time: unix seconds, inclusive; limit,
        offset), newest first, a JSON array of entries; 401 without the right key."""
        from urllib.parse import parse_qs

        if name not in SUPPRESSION_LISTS:
            return self._refuse(404)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not secrets.compare_digest(auth[7:].encode(), self.sg.api_key.encode()):
            return self._refuse(401, "authorization required" if not auth else
                                "The provided authorization grant is invalid, expired, or revoked")
        if name not in self.sg.scopes:
            return self._refuse(403, "access forbidden")
        params: dict[str, int] = {}
        for key, values in parse_qs(query, keep_blank_values=True).items():
            if key not in ("start_time", "end_time", "limit", "offset"):
                continue
            try:
                params[key] = int(values[-1])
            except ValueError:
                return self._refuse(400, f"{key} must be an integer", key)
        limit = params.get("limit", SUPPRESSION_PAGE_MAX)
        if not 1 <= limit <= SUPPRESSION_PAGE_MAX or params.get("offset", 0) < 0:
            return self._refuse(400, f"limit must be 1 to {SUPPRESSION_PAGE_MAX}, offset 0 or more", "limit")
        with self.sg._lock:  # their own script: faults for mail/send stay where the test put them
            fault = self.sg.suppression_faults.pop(0) if self.sg.suppression_faults else None
        if fault is not None and fault.status is not None:
            return self._scripted_status(fault)
        with self.sg._lock:
            self.sg.suppression_requests.append((name, dict(params)))
            entries = [e for e in self.sg.suppression_lists.get(name, [])
                       if params.get("start_time", 0) <= e["created"] <= params.get("end_time", 2**62)]
        entries.sort(key=lambda e: (-e["created"], e["email"]))
        offset = params.get("offset", 0)
        self._answer(200, entries[offset:offset + limit])  # type: ignore[arg-type]

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def do_POST(self) -> None:
        raw = self._read_body()
        if self.path.split("?")[0].rstrip("/") != "/v3/mail/send":
            return self._refuse(404)
        if raw is None:
            return self._refuse(411, "Content-Length required")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._refuse(401, "authorization required")
        if not secrets.compare_digest(auth[7:].encode(), self.sg.api_key.encode()):
            return self._refuse(401, "The provided authorization grant is invalid, expired, or revoked")
        if len(raw) > MAX_BODY_BYTES:
            return self._refuse(413)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._refuse(415, "Content-Type should be application/json.")
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            raw = gzip.decompress(raw)
        fault = self.sg._next_fault()
        if fault is not None and fault.status is not None:
            return self._scripted_status(fault)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._refuse(400, "Bad Request")
        errors = validate_request(body, schema=self.sg.validate)
        if errors:
            count = len(body.get("personalizations") or []) if isinstance(body, dict) else 0
            return self._refuse(400, errors=errors, count=count)
        if fault is not None and not fault.accept and (fault.reset or fault.delay):
            self.sg._log(None, len(body["personalizations"]), None, [_error("connection reset (scripted)")])
            if fault.delay:
                time.sleep(fault.delay)
            return self._reset() if fault.reset else self._answer(503, {"errors": [_error("service unavailable")]})
        message_id = secrets.token_urlsafe(16)[:22]
        self.sg._accept(body, message_id)
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                return self._reset()
        self._answer(200 if sandbox else 202, None, {"X-Message-Id": message_id})

    def _scripted_status(self, fault: Fault) -> None:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if status == 429:
            headers = {"X-RateLimit-Limit": str(self.sg.rate_limit), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(math.ceil(time.time() + fault.reset_in))}
        if fault.delay:
            time.sleep(fault.delay)
        errors = (fault.body or {}).get("errors")
        self._refuse(status, errors=errors, headers=headers)


# --------------------------------------------------------------------------- measuring

def measure(n: int, *, validate: bool, batch: int = 1000, issue: str = "2011-11-28-free-ales-bialiatski") -> str:
    """Send the example issue to `n` made-up readers through the real backend into this server.

    The whole path after the send loop: PayloadBuilder, the real backend, HTTP on
    loopback, JSON parsing and the documented limits (and the schema when `validate`). The
    server runs in the same process, so the figure is a floor for the client on its own.
    """
    import shutil
    import tempfile

    from newsletter.audience.secrets import signing_keys
    from newsletter.compose.build import build_issue
    from newsletter.config import load_config
    from newsletter.deliver.backends import get_backend
    from newsletter.deliver.message import make_recipient, prepare_message
    from tests.tomledit import edit_toml, read_toml

    repo = Path(__file__).resolve().parents[1]
    key = "SG.measure-key"
    os.environ["SENDGRID_API_KEY"] = key
    with SendGridServer(key, validate=validate, record="count") as sg, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "newsletter.toml"
        shutil.copy(repo / "newsletter.toml", path)
        example = read_toml(path)  # the example's theme; what it writes, into the temporary folder
        edit_toml(path, {"sendgrid.host": sg.url, "templates": str(repo / example["templates"]),
                         **{name: f"{tmp}/{example[name]}" for name in ("build_dir", "outbox_dir", "database")}})
        config = load_config(path)
        built = build_issue(repo / "issues" / f"{issue}.yaml", config, write=False)
        message = prepare_message(built)
        keys = signing_keys(allow_development=True)
        t0 = time.perf_counter()
        readers = [make_recipient(email=f"reader{i:07d}@example.org", name=f"Reader {i}", language="en",
                                  fields={}, slug=built.slug, config=config, keys=keys) for i in range(n)]
        made = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), time.process_time()
        with get_backend("sendgrid", config) as backend:
            backend.open(message)
            sent = sum(o.status == "sent" for start in range(0, n, batch)
                       for o in backend.send_messages(readers[start:start + batch]))
        took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert sent == n == sg.accepted_count, (sent, sg.accepted_count)
        return (f"{n:,} recipients of {issue} ({len(message.html):,} B of HTML) in {len(sg.requests)} requests, "
                f"schema validation {'on' if validate else 'off'}: {took:.2f} s = {n / took:,.0f} recipients/s "
                f"through backend + client + server, {cpu:.2f} s CPU for both (making the recipients: "
                f"{n / made:,.0f}/s)")


# --------------------------------------------------------------------------- command line

def main(argv: Iterable[str] | None = None) -> None:
    """`python -m tests.sendgrid_server`: serve until Ctrl-C, then print what was accepted."""
    ap = argparse.ArgumentParser(prog="python -m tests.sendgrid_server", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument("--api-key", default=os.environ.get("SENDGRID_API_KEY", "SG.test-key"),
                    help="the key to expect (default: $SENDGRID_API_KEY, else SG.test-key)")
    ap.add_argument("--no-validate", action="store_true", help="skip jsonschema (limits still checked)")
    ap.add_argument("--record", choices=("full", "emails", "count"), default="count")
    ap.add_argument("--measure", type=int, metavar="N",
                    help="instead of serving: send the example issue to N readers through the real backend, "
                         "print recipients/s")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.measure:
        print(measure(args.measure, validate=not args.no_validate), flush=True)
        return
    server = SendGridServer(args.api_key, validate=not args.no_validate, record=args.record,
                            host=args.host, port=args.port)
    print(f"SendGrid stand-in on {server.url}  (set [sendgrid] host = \"{server.url}\"; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(f"{len(server.requests)} requests, {server.accepted_count} recipients accepted, "
              f"{server.sandboxed_count} sandboxed", flush=True)


if __name__ == "__main__":
    main()
