"""The web side: the page behind every unsubscribe link, and SendGrid's Event Webhook.

An ASGI application (Starlette) with exactly these routes:

    GET  /unsubscribe/<token>   a page with one "Unsubscribe" button; changes nothing,
                                because mail scanners and link previews follow links
    POST /unsubscribe/<token>   unsubscribes (RFC 8058 one-click `List-Unsubscribe=One-Click`
                                answered with a plain 200, or the page's button answered
                                with a confirmation page); `action=resubscribe` with the fresh
                                form nonce that confirmation page issued lifts the suppression
    GET  /unsubscribe/<token>/  308 to the link on [site] base_url (never to the request's Host)
    POST /webhooks/sendgrid     signed Event Webhook batches (see `newsletter.audience.webhook`)

Form posts that the browser marks as made by another site (Sec-Fetch-Site, else Origin) are
refused, except RFC 8058's one-click body, which mail providers send from their own servers.

Run it with `newsletter serve`, or under any ASGI server:
`NEWSLETTER_CONFIG=/path/newsletter.toml uvicorn --factory newsletter.audience.web:app_factory`.

The state (newsletter.store) is shared with a running `newsletter send`: every write is
one short transaction, made off the event loop, on the store's one connection that the
app's threads take turns on (so they queue in Python, not in SQLite's sleep-and-retry
busy handler); SQLite's busy timeout covers the moments the send holds the write lock. An
unsubscribe waits for it at most `[web] db_wait_seconds`, then goes to the durable spool
(`newsletter.store.spool`, SQLite only) and is answered 202: it is never lost, nor kept waiting long.
A bad token gets the same neutral page whatever address it names, and no page says
whether an address is on the list.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.audience.secrets import MissingSecret, SigningKeys, signing_keys
from newsletter.audience.tokens import InvalidToken, form_nonce_is_fresh, make_form_nonce, read_token
from newsletter.audience.webhook import (
    DEFAULT_MAX_AGE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verifier,
    WebhookError,
    apply_events,
    parse_events,
)
from newsletter.compose import i18n
from newsletter.compose.render import default_theme
from newsletter.config import Config, load_config
from newsletter.errors import NewsletterError
from newsletter.store import DatabaseError, Store, open_store, spool

log = logging.getLogger("newsletter.audience.web")

CONFIG_VAR = "NEWSLETTER_CONFIG"
DEFAULT_MAX_BODY = 2_000_000  # webhook batches; SendGrid's are far smaller
FORM_MAX_BODY = 8_192  # an unsubscribe POST is a few dozen bytes
DEFAULT_HEADER_TIMEOUT = 10  # seconds for a request's headers to arrive (`serve` only; see README)
DEFAULT_BODY_TIMEOUT = 30  # seconds for its body
DEFAULT_DB_WAIT = 5  # seconds an unsubscribe waits for a busy state database before it is spooled


def resubscribe_by_link(store: Store, email: str, list_key: str | None = None) -> bool:
    """Lift a suppression the reader made themselves, and their leaving of `list_key`. False if
    the suppression was a bounce, complaint or an operator's decision: a link must not undo
    those (`newsletter resubscribe` can). Spooled unsubscribes are applied first, so an older
    one cannot undo this later."""
    store.drain_spool()
    with store.transaction():
        if store.suppression(email) is not None and not store.resubscribe(email, source="page", only=("unsubscribed",)):
            return False
        if list_key is not None and store.membership(list_key, email) == "unsubscribed":
            store.set_membership(list_key, email, "confirmed", source="page")
        return True


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refusing (413) anything over `limit` before or while reading it, and
    (408) a body that has not fully arrived within `timeout` seconds: a client trickling bytes
    must not hold a connection and a worker thread's turn forever."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _TooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise _TooSlow from None
    return b"".join(chunks)


def header_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection (408) whose next request's headers are not
    complete `seconds` after it connected or after its previous response. uvicorn has no such
    timeout (its keep-alive timer is reset by every byte, and an ASGI app only runs once the
    headers are in), so a client trickling one header byte every few seconds was held forever.
    Pass it as uvicorn's `http=`. The clock stops while the app handles a request: the app is
    called once a request's headers are complete, and bounds the body's time itself.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        deadline: asyncio.TimerHandle | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            app = self.app

            async def timed(scope: Scope, receive: Receive, send: Send) -> None:
                self.disarm()  # the headers are in
                try:
                    await app(scope, receive, send)
                finally:
                    if not self.transport.is_closing():
                        self.arm()  # keep-alive: the next request's headers get the same time

            self.app = timed

        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(transport)  # type: ignore[arg-type]
            self.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self.disarm()
            super().connection_lost(exc)

        def arm(self) -> None:
            self.disarm()
            self.deadline = asyncio.get_running_loop().call_later(seconds, self.headers_too_slow)

        def disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def headers_too_slow(self) -> None:
            self.deadline = None
            log.info("closed a connection whose request headers took longer than %gs", seconds)
            if not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                     b"Content-Length: 0\r\n\r\n")
                self.transport.close()

    return HeaderDeadline


class _Pages:
    """Jinja2 pages in the reader's language; the project's templates/web/ overrides the theme's."""

    def __init__(self, config: Config):
        self.config = config
        folders = [str(config.templates_dir)] if config.templates_dir.is_dir() else []
        folders.append(str(default_theme()))
        self._loader = jinja2.FileSystemLoader(folders)
        self._envs: dict[str, jinja2.Environment] = {}
        self._have = frozenset(i18n.available(config.locale_dir))
        self._lock = threading.Lock()

    def language(self, requested: str | None) -> str:
        """The reader's language if we have its strings (so `lang=` matches the text), else the default."""
        tag = i18n.normalise(requested) if requested and len(requested) <= 35 else None
        for form in i18n.along(tag) if tag else ():  # pt-BR, then pt
            if form in self._have:
                return form
        return self.config.default_language

    def preferred(self, request: Request) -> str:
        """For pages without a valid token: the browser's first language we have, else the default."""
        for part in request.headers.get("accept-language", "").split(",")[:10]:
            tag = part.split(";")[0].strip()
            found = self.language(tag)
            if tag and (found != self.config.default_language or i18n.primary(tag) == i18n.primary(found)):
                return found
        return self.config.default_language

    def env(self, language: str) -> jinja2.Environment:
        with self._lock:
            env = self._envs.get(language)
            if env is None:
                env = jinja2.Environment(loader=self._loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                         extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
                env.install_gettext_translations(  # type: ignore[attr-defined]
                    i18n.translations(language, self.config.locale_dir, self.config.default_language), newstyle=True)
                env.globals["dir"] = i18n.direction(language)
                self._envs[language] = env
            return env

    def render(self, name: str, language: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        c = self.config
        html = self.env(language).get_template(f"web/{name}.html.j2").render(
            language=language, list_name=c.list_name, org_name=c.org_name,
            org_postal_address=c.org_postal_address, org_website=c.org_website, **ctx)
        return HTMLResponse(html, status_code=status)

    def error(self, kind: str, status: int, language: str | None = None,
              headers: dict[str, str] | None = None) -> HTMLResponse:
        response = self.render("error", language or self.config.default_language, status, kind=kind)
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response


_SECURITY_HEADERS = [
    # the token in the URL names the reader: never send it on as a Referer, never cache it
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-robots-tag", b"noindex, nofollow"),
]
_TOKEN_IN_PATH = re.compile(r"/unsubscribe/[^\s?#\"]+")
_NOTE = "newsletter.note"


def redact_path(text: str) -> str:
    """`text` with every unsubscribe token replaced by `<token>`: a token names a reader."""
    return _TOKEN_IN_PATH.sub("/unsubscribe/<token>", text)


class _RedactTokens(logging.Filter):
    """Rewrites a log record so no unsubscribe token shows (uvicorn's access log prints the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(logger_name: str = "uvicorn.access") -> None:
    """Install the token redaction on the ASGI server's access log (once; idempotent), so running the app
    under plain `uvicorn --factory` hides tokens just like `newsletter serve`, which logs its own lines."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())


class _Hardening:
    """Adds security headers to every answer and logs requests without the token in them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        note: dict[str, str] = {}
        scope[_NOTE] = note  # handlers leave a word here for the log line (a client gone mid-body)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = redact_path(scope.get("path", ""))
            outcome = note.get("outcome") or str(status)
            log.info("%s %s %s %.1fms", scope.get("method"), path, outcome, (time.perf_counter() - started) * 1000)


def create_app(config: Config, *, keys: SigningKeys | None = None, allow_development: bool = False) -> Starlette:
    """The ASGI app for `config`. Keys come from the environment unless given.

    Raises MissingSecret when NEWSLETTER_SECRET is unset (unless `allow_development`, for
    previewing outbox messages signed with the development key), WebhookConfigError for a
    bad webhook key and DatabaseError when the state file cannot be opened.
    """
    keys = keys or signing_keys(allow_development=allow_development)
    redact_access_log()
    if keys.is_development:
        log.warning("using the development signing key: only links from dry runs and the outbox will work")
    web = config.web or {}
    max_body = int(web.get("max_body_bytes") or DEFAULT_MAX_BODY)
    form_max = min(FORM_MAX_BODY, max_body)
    body_timeout = float(web.get("body_timeout_seconds") or DEFAULT_BODY_TIMEOUT)
    public_key = (config.sendgrid or {}).get("webhook_public_key")
    verifier = Verifier(public_key, max_age=int(web.get("webhook_max_age_seconds") or DEFAULT_MAX_AGE)) \
        if public_key else None
    pages = _Pages(config)
    # every list of the project, by the List-Id its tokens carry (newsletter/lists.py)
    from newsletter.lists import keys as list_keys

    several = len(config.lists) > 1
    lists = {c.list_id: (c, _Pages(c)) for c in (config.for_list(k) for k in list_keys(config))}
    db_wait = float(web.get("db_wait_seconds") or DEFAULT_DB_WAIT)
    # fails early: unwritable, corrupt, unreachable; an SQLite write waits at most `db_wait` for another writer
    store = open_store(config, busy_timeout_ms=int(db_wait * 1000))
    site_origin = _origin(config.base_url)

    async def unsubscribe(request: Request) -> Response:
        body = await _read_body(request, form_max, body_timeout) if request.method == "POST" else b""
        try:
            reader = read_token(keys, request.path_params["token"])
            the_list, pages_ = lists[reader.list_id]
        except (InvalidToken, KeyError):
            return pages.error("invalid", 400, pages.preferred(request))
        language = pages_.language(reader.language)
        ctx = {"email": reader.email, "several_lists": several}
        if request.method != "POST":
            return pages_.render("unsubscribe", language, **ctx)
        form = _form(request, body)
        action = form.get("action", "")
        if not _is_one_click(request, form, body) and _cross_site(request, site_origin):
            # a page elsewhere posting the reader's own form; RFC 8058's one-click POST comes from the
            # mail provider's servers and is exempt (it can only ever unsubscribe)
            log.warning("cross-site form post refused (Origin %.100r, Sec-Fetch-Site %.30r)",
                        request.headers.get("origin"), request.headers.get("sec-fetch-site"))
            return pages_.error("cross_site", 403, language)
        try:
            if action == "resubscribe":
                if not form_nonce_is_fresh(keys, form.get("nonce", ""), reader.email, reader.list_id):
                    # no fresh confirmation from our own page: ask again, change nothing
                    return pages_.render("resubscribed", language, 403, resubscribed=None,
                                         nonce=make_form_nonce(keys, reader.email, reader.list_id), **ctx)
                done = await run_in_threadpool(resubscribe_by_link, store, reader.email, the_list.list_key)
                return pages_.render("resubscribed", language, resubscribed=done, **ctx)
        except DatabaseError as e:
            log.error("resubscribe not recorded: %s", e)
            return pages_.error("busy", 503, language, {"Retry-After": "5"})
        # Any other POST unsubscribes: RFC 8058 one-click bodies (urlencoded or multipart),
        # the page's button, and clients that send an empty body. Unsubscribing is the safe side.
        # From this list; "unsubscribe_all" (and any unsubscribe of a one-list project): from everything.
        source = "page" if action in ("unsubscribe", "unsubscribe_all") else "one-click"
        everything = action == "unsubscribe_all" or not several
        list_key = None if everything else the_list.list_key
        status = 200
        try:
            await run_in_threadpool(_unsubscribe_reader, store, reader.email, list_key, source, db_wait)
        except DatabaseError as e:
            # the database stayed busy for the bounded wait: never lose an unsubscribe, spool it
            # (SQLite only: PostgreSQL locks rows, so a send never holds an unsubscribe up)
            if store.spool_database is None:
                log.error("unsubscribe not recorded: %s", e)
                return pages_.error("busy", 503, language, {"Retry-After": "5"})
            try:
                await run_in_threadpool(spool.append, store.spool_database, reader.email, source, list_key)
            except OSError as spool_error:
                log.error("unsubscribe not recorded: %s; spool: %s", e, spool_error.strerror)
                return pages_.error("busy", 503, language, {"Retry-After": "5"})
            log.warning("unsubscribe spooled, the state database is busy (%s); applied at the next chance", e)
            status = 202
        if action in ("unsubscribe", "unsubscribe_all"):
            return pages_.render("unsubscribed", language, status, everything=action == "unsubscribe_all",
                                 nonce=make_form_nonce(keys, reader.email, reader.list_id), **ctx)
        done = i18n.gettext(language, "You have been unsubscribed.", pages_.config.locale_dir)
        return PlainTextResponse(done, status)

    async def slash(request: Request) -> Response:
        """A mail client that appends a slash: back to the link, on the configured origin only."""
        return RedirectResponse(config.unsubscribe_url(request.path_params["token"]), 308)

    async def sendgrid_webhook(request: Request) -> Response:
        body = await _read_body(request, max_body, body_timeout)
        if verifier is None:
            return JSONResponse({"error": "the webhook is not configured ([sendgrid] webhook_public_key)"}, 403)
        try:
            verifier.verify(body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
            events = await run_in_threadpool(parse_events, body)
            applied = await run_in_threadpool(apply_events, store, events)
        except WebhookError as e:
            log.warning("webhook request refused: %s", e)
            return JSONResponse({"error": str(e)}, e.status)
        except DatabaseError as e:  # rolled back as a whole; SendGrid retries non-2xx answers
            log.error("webhook batch not applied: %s", e)
            return JSONResponse({"error": "busy, retry later"}, 503, headers={"Retry-After": "30"})
        log.info("webhook: %d events, %d newly suppressed, %d delivery statuses, %d uncertain settled, %d ignored",
                 applied.events, applied.suppressed, applied.deliveries, applied.settled, applied.ignored)
        return JSONResponse({"events": applied.events, "suppressed": applied.suppressed,
                             "deliveries": applied.deliveries, "settled": applied.settled,
                             "ignored": applied.ignored})

    async def disconnected(request: Request, exc: Exception) -> Response:
        # Anyone can open a connection and hang up mid-body: one log line (the request's own), no traceback.
        note = request.scope.get(_NOTE)
        if isinstance(note, dict):
            note["outcome"] = "client disconnected mid-body"
        return Response(status_code=400)  # nobody is left to read it

    async def too_slow(request: Request, exc: Exception) -> Response:
        note = request.scope.get(_NOTE)
        if isinstance(note, dict):
            note["outcome"] = f"408 body not complete within {body_timeout:g}s"
        return pages.error("too_slow", 408, pages.preferred(request), headers={"Connection": "close"})

    async def too_large(request: Request, exc: Exception) -> Response:
        return pages.error("too_large", 413, pages.preferred(request), headers={"Connection": "close"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "invalid"
        return pages.error(kind, exc.status_code, pages.preferred(request), headers=dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        return pages.error("error", 500, pages.preferred(request))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    app = Starlette(
        routes=[
            Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
            Route("/unsubscribe/{token}/", slash, methods=["GET", "HEAD"]),
            Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"]),
            *_signup(config, keys, store, pages, lists, form_max, body_timeout),  # /subscribe/<list>, /confirm/<token>
        ],
        exception_handlers={_TooLarge: too_large, _TooSlow: too_slow, ClientDisconnect: disconnected,
                            HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    )
    # Starlette would answer `/unsubscribe/<token>/` with a redirect built from the request's Host
    # header (an open redirect to any host): the one slash route above redirects to [site] base_url.
    app.router.redirect_slashes = False
    app.add_middleware(_Hardening)
    app.state.store = store
    app.state.keys_are_development = keys.is_development
    return app


def _signup(config: Config, keys: SigningKeys, store: Store, pages: _Pages,
            lists: dict[str, tuple[Config, _Pages]], form_max: int, body_timeout: float) -> list[Route]:
    """The signup routes (newsletter/audience/signup.py), with this app's pages and body limit."""
    from newsletter.audience.signup import parse_form, signup_routes

    by_key = {c.list_key: (c, p) for c, p in lists.values()}

    def pages_for(key: str) -> tuple[Config, _Pages] | None:
        return by_key.get(key) if key else (config, pages)

    async def read_form(request: Request) -> dict[str, str]:
        return parse_form(await _read_body(request, form_max, body_timeout))

    return signup_routes(config, keys, store, pages_for, read_form)


def _unsubscribe_reader(store: Store, email: str, list_key: str | None, source: str, wait: float) -> None:
    """Leave one list (`list_key`: its membership `unsubscribed`, no CSV source brings them back),
    or with None every list (a suppression, as an unsubscribe of a one-list project always is).
    Waits at most `wait` seconds for this thread's turn on the store (on top of SQLite's own
    bounded wait); DatabaseError if the turn or the write lock did not come."""
    if not store.lock.acquire(timeout=wait):
        raise DatabaseError(f"{store.name}: the state database is busy (other requests are waiting for it)")
    try:
        store.drain_spool()  # the next request is the first chance to apply what was spooled while busy
        if list_key is None:
            store.suppress(email, "unsubscribed", source=source)
        else:
            store.set_membership(list_key, email, "unsubscribed", source=source)
    finally:
        store.lock.release()


def _origin(url: str) -> str:
    """scheme://host[:port] of `url`, as browsers write it in an Origin header (default ports dropped)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _cross_site(request: Request, site_origin: str) -> bool:
    """Whether the browser says this POST was made by a page that is not ours.

    Sec-Fetch-Site is set by the browser and cannot be changed by a page; where it is missing
    (older browsers) the Origin header decides. Clients that send neither (mail providers'
    servers, curl) are not browsers riding on a reader's session and are let through.
    """
    fetch_site = request.headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site in ("same-origin", "none"):
        return False
    if fetch_site == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return fetch_site == "same-site"  # a sibling subdomain is another site as far as we are concerned
    try:
        return _origin(origin.strip()) != site_origin  # includes "null" (sandboxed or privacy-hidden)
    except ValueError:
        return True


def _is_one_click(request: Request, form: dict[str, str], body: bytes) -> bool:
    """RFC 8058's `List-Unsubscribe=One-Click` body, urlencoded or multipart."""
    if form.get("List-Unsubscribe") == "One-Click":
        return True
    return (request.headers.get("content-type", "").startswith("multipart/form-data")
            and b'name="List-Unsubscribe"' in body and b"One-Click" in body)


def _form(request: Request, body: bytes) -> dict[str, str]:
    """An urlencoded form as single values. Other bodies (multipart one-click) need no parsing."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


def app_factory() -> Starlette:
    """For `uvicorn --factory newsletter.audience.web:app_factory`: config from NEWSLETTER_CONFIG or the
    current folder, keys from the environment. Refuses to start, with one clear line, without them."""
    try:
        path = os.environ.get(CONFIG_VAR)
        config = load_config(Path(path) if path else None)
        return create_app(config)
    except (NewsletterError, MissingSecret) as e:
        for line in (e.lines() if isinstance(e, NewsletterError) else [str(e)]):
            print(f"newsletter: {line}", file=sys.stderr)
        raise SystemExit(1) from None
