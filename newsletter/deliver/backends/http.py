"""A reusable base for email services with an HTTP API (SendGrid today; Postmark, Mailgun, SES...).

In the shape of django-anymail's ESP backends, a subclass supplies four small steps and
this class does everything that is the same for every such service:

    prepare(message)              -> the issue's shared payload parts, once per open() (pure)
    requests(shared, recipients)  -> readers grouped into requests, within the service's limits
    payload(shared, items)        -> one request body (pure: no I/O, no clock)
    parse(response, recipients)   -> one Outcome per reader of an accepted request
    refusal(status, body, words)  -> the BackendError that stops the send, in the service's words

Here: posting (urllib, a timeout always), what is retried and what is not (see `_post`),
the ledger's hand-off mark right before each request, reporting each outcome as it is
known, and overlapping the network wait with the send loop's next batch (`submit`: one
request in flight, posted by a sender thread). A second service is a short file.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
import urllib.error
import urllib.request
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.deliver.backends.base import NO_HOOKS, Backend, Hooks, Outcome
from newsletter.errors import BackendError

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.deliver.message import PreparedMessage, Recipient

#: (index in the batch, recipient, the service's per-recipient item) for each reader of one request
Chunk = list[tuple[int, "Recipient", Any]]
Settle = Callable[[int, Outcome], None]


@dataclass(frozen=True)
class Response:
    """What the service answered: status, headers, body (read in full)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def option(options: Mapping[str, object], name: str, default: float, *, integer: bool = False,
           backend: str = "http") -> Any:
    """A non-negative number from the backend's options, or BackendError naming it."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (integer and value != int(value)):
        raise BackendError(f"{backend} backend option {name}={value!r}: expected a non-negative "
                           f"{'integer' if integer else 'number'}")
    return int(value) if integer else float(value)


class HTTPBackend(Backend):
    """Template for an ESP's HTTP API; see the module docstring for what a subclass writes.

    Options (tests and tuning): `max_attempts` (5), `backoff` (1.0 s, doubling),
    `max_backoff` (30 s), `rate_limit_waits` (10 per request), `max_rate_limit_wait` (60 s),
    `uncertain_limit` (3 unanswered requests in a row stop the send), `sleep`.
    Subclasses set `service` (its name in messages), `host`, `timeout` and `url`.
    """

    service = "the service"
    host = ""
    url = ""
    timeout = 30.0

    def __init__(self, config: Config, **options: object) -> None:
        super().__init__(config, **options)
        name = self.name
        self.max_attempts = max(1, option(options, "max_attempts", 5, integer=True, backend=name))
        self.backoff = option(options, "backoff", 1.0, backend=name)
        self.max_backoff = option(options, "max_backoff", 30.0, backend=name)
        self.rate_limit_waits = option(options, "rate_limit_waits", 10, integer=True, backend=name)
        self.max_rate_limit_wait = option(options, "max_rate_limit_wait", 60.0, backend=name)
        self.uncertain_limit = max(1, option(options, "uncertain_limit", 3, integer=True, backend=name))
        sleep = options.get("sleep", time.sleep)
        self._sleep: Callable[[float], object] = sleep if callable(sleep) else time.sleep
        self._shared: Any = None
        self._uncertain_streak = 0
        self._pool: Any = None  # the sender thread of submit(), started on first use
        self._in_flight: Any = None  # its Future: the request being posted
        self._settled: list[Outcome] = []
        self._settled_lock = threading.Lock()
        self._opener = urllib.request.build_opener()
        self.requests_made = 0  # HTTP requests posted, retries included

    # -- what a service writes ---------------------------------------------------
    @abstractmethod
    def prepare(self, message: PreparedMessage) -> Any:
        """The parts every request of this issue shares (pure)."""

    @abstractmethod
    def requests(self, shared: Any, recipients: Sequence[Recipient], settle: Settle) -> Iterator[Chunk]:
        """`recipients` grouped into requests. A reader who cannot be sent at all (over a
        per-recipient limit) is settled here with `settle(i, self.done(Outcome(...failed...)))`."""

    @abstractmethod
    def payload(self, shared: Any, items: list[Any]) -> bytes:
        """One request body for these per-recipient items (pure)."""

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """The request headers, authentication included (never logged)."""

    @abstractmethod
    def parse(self, response: Response, recipients: list[Recipient]) -> list[Outcome]:
        """One Outcome per recipient of a request the service accepted (2xx)."""

    @abstractmethod
    def refusal(self, status: int | None, body: bytes, summary: str | None) -> BackendError:
        """The error that stops the send: `status` and `body` as answered (None: no answer),
        `summary` our words for why (None: the service refused the request itself)."""

    # -- the Backend contract -------------------------------------------------------
    def open(self, message: PreparedMessage, hooks: Hooks = NO_HOOKS) -> None:
        if self.message is not message or self._shared is None:
            self._shared = self.prepare(message)
        super().open(message, hooks)

    def send_messages(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Hand off `recipients` in as many requests as needed; one Outcome each, in order."""
        shared = self._ready()
        outcomes: list[Outcome | None] = [None] * len(recipients)

        def settle(i: int, outcome: Outcome) -> None:
            outcomes[i] = outcome

        try:
            for chunk in self.requests(shared, recipients, settle):
                self._hand_off(shared, chunk, settle)
        except BackendError as e:
            e.outcomes = [o for o in outcomes if o is not None]
            raise
        return [o for o in outcomes if o is not None]

    def submit(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Like send_messages, but each request is posted by a sender thread, so the send loop
        reads, checks and builds the next batch while the service answers this one.

        At most one request is in flight: the next is handed over only once the previous
        one is answered (so a batch's suppression check is at most one request older than
        its hand-off), and the ledger's `sending` mark is still committed, in the sender
        thread, right before its request is posted. Returns the outcomes settled since the
        last call; finish() waits for the last request and returns the rest.
        """
        shared = self._ready()
        for chunk in self.requests(shared, recipients, self._settle):
            self._wait()  # the previous request answered (or its error raised here)
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            self._in_flight = self._pool.submit(self._hand_off, shared, chunk, self._settle)
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

    # -- the machinery ----------------------------------------------------------------
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
        except BackendError as e:
            e.outcomes = self._take()
            raise

    def _ready(self) -> Any:
        if self._shared is None:
            raise BackendError(f"{type(self).__name__}.open(message) must be called before send_messages")
        return self._shared

    def _hand_off(self, shared: Any, chunk: Chunk, settle: Settle) -> None:
        """One request: mark its readers `sending` (handoff), post, report each outcome (done)."""
        if self._uncertain_streak >= self.uncertain_limit:
            raise self.refusal(None, b"", f"{self.service} at {self.host} left {self._uncertain_streak} requests "
                                          "in a row unanswered; stopping (those readers are marked uncertain)")
        recipients = [r for _, r, _ in chunk]
        body = self.payload(shared, [item for _, _, item in chunk])  # once, whatever the retries
        self.handoff(recipients)
        try:
            outcomes = self._post(body, recipients)
        except BackendError as e:
            # Refused or never received: nothing in this request was sent. `failed` with the
            # service's words, so the ledger shows why and a rerun tries them again.
            words = "; ".join(e.lines())[:1000]
            for i, r, _ in chunk:
                settle(i, self.done(Outcome(r.email, "failed", words)))
            raise
        for (i, _, _), outcome in zip(chunk, outcomes, strict=True):
            settle(i, self.done(outcome))

    def _send(self, body: bytes) -> Response:
        """POST `body`; any HTTP answer is a Response. urllib raises URLError only while the
        request is being written (connect, TLS, send), and other OSErrors (a timeout, a reset)
        only once the whole request is out: `_post` relies on that difference."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self.headers())
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as e:
            with e:
                try:
                    data = e.read()
                except (OSError, http.client.HTTPException):
                    data = b""
                return Response(e.code, e.headers, data)

    def _post(self, body: bytes, recipients: list[Recipient]) -> list[Outcome]:
        """Post one request until the service answers; one Outcome per recipient.

        Retried, because the service said it did not take the request, or cannot have it:
        - 429: wait until X-RateLimit-Reset (epoch seconds, or a delay; bounded by
          max_rate_limit_wait), or Retry-After, then try again, up to rate_limit_waits times;
        - 5xx: the service's answer that it failed to process the request; exponential
          backoff (honouring Retry-After), up to max_attempts in all;
        - connection refused, reset or timed out while connecting or sending: the service
          cannot hold a complete request. Same backoff.

        Not retried — the recipients are marked `uncertain` instead: a read timeout, or the
        connection dropped, after the whole request was sent. The service may well have
        accepted it (a slow answer is not a refusal), and without an idempotency key posting
        it again could mail every reader of the request twice. Resending those is the user's
        explicit choice (`--resend-uncertain`). After `uncertain_limit` such requests in a
        row the service is taken to be down and the send stops.

        Any other 4xx (400, 401, 403, 413, ...) means the request itself is wrong and every
        following one would be too: raise `refusal` with the service's own words.
        """
        attempts = rate_waits = 0
        n = len(recipients)
        while True:
            self.requests_made += 1
            try:
                response = self._send(body)
            except urllib.error.URLError as e:
                attempts += 1
                if isinstance(e.reason, ssl.SSLCertVerificationError):  # waiting will not fix a certificate
                    raise self.refusal(None, b"", f"cannot reach {self.service} at {self.host}: {e.reason}") from None
                if attempts >= self.max_attempts:
                    raise self.refusal(None, b"", f"cannot reach {self.service} at {self.host}: {e.reason} "
                                                  f"({attempts} attempts; nothing in this request was sent)") from None
                self._sleep(self._backoff(attempts, None))
                continue
            except (OSError, http.client.HTTPException) as e:
                self._uncertain_streak += 1
                what = f"no answer within {self.timeout:g} s" if isinstance(e, TimeoutError) else \
                    f"connection lost before the answer ({type(e).__name__}: {e})"
                detail = (f"{self.service} received the request for {n} readers but gave {what}; "
                          "it may have accepted it, so it is not resent automatically")
                return [Outcome(r.email, "uncertain", detail) for r in recipients]
            status = response.status
            if status == 429:
                rate_waits += 1
                if rate_waits > self.rate_limit_waits:
                    raise self.refusal(status, response.body, f"{self.service} kept rate-limiting ({rate_waits} "
                                                              "times for one request); stopping")
                self._sleep(self._rate_limit_wait(response.headers, rate_waits))
                continue
            if status >= 500:
                attempts += 1
                if attempts >= self.max_attempts:
                    raise self.refusal(status, response.body, f"{self.service} answered {status} {attempts} times "
                                                              "in a row; stopping (nothing in this request was sent)")
                self._sleep(self._backoff(attempts, response.headers))
                continue
            if not 200 <= status < 300:
                raise self.refusal(status, response.body, None)
            self._uncertain_streak = 0
            return self.parse(response, recipients)

    def _backoff(self, attempt: int, headers: Mapping[str, str] | None) -> float:
        wait = self.backoff * 2 ** (attempt - 1)
        retry_after = _number(headers.get("Retry-After")) if headers is not None else None
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff)

    def _rate_limit_wait(self, headers: Mapping[str, str], attempt: int) -> float:
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is None:
            return self._backoff(attempt, headers)
        wait = reset - time.time() if reset > 1e9 else reset  # epoch seconds (SendGrid) or a delay
        return min(max(wait, 0.05), self.max_rate_limit_wait)


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip()) if value is not None else None
    except ValueError:
        return None
