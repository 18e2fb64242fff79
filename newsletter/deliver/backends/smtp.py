"""The SMTP backend: any relay, with STARTTLS or implicit TLS, login, reused connections.

Each message is one SMTP transaction on a kept-open connection (several connections in
parallel with `[smtp] connections`). When the server offers PIPELINING (RFC 2920), MAIL,
RCPT and DATA go out in one write, and each message's content and final "." go out in
the same write as the next message's MAIL/RCPT/DATA: one round trip per message instead
of four. (smtplib does not pipeline; we use its connection, TLS, login and reply parsing,
and drive the transaction ourselves.)

What each answer means for the reader:

- 2xx after the final "."          -> sent
- 5xx anywhere                     -> failed, with the server's own words; the send goes on
- 4xx anywhere, or the connection
  drops before the final "."       -> not delivered: retried with backoff, on a new
                                      connection if needed; failed after `retries`
- the connection drops (or times out) after the final "." and before the answer
                                   -> uncertain: the server may have taken it. Not retried.

The ledger is told (`handoff`, a committed write) after the message's content is written
and right before the final "." -- the moment after which the server may deliver. A database
elsewhere (PostgreSQL) commits while the next message is built; the "." waits for it. A kill
or a dropped connection before it leaves the reader unsent (resent: the server discards
an unfinished message); after it, the reader is `uncertain` (0 or 1 copies).
"""

from __future__ import annotations

import functools
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from newsletter.audience.secrets import SMTP_PASSWORD_VAR, env_secret
from newsletter.config import Config
from newsletter.deliver.backends.base import NO_HOOKS, Backend, Hooks, Outcome
from newsletter.deliver.message import PreparedMessage, Recipient
from newsletter.errors import BackendError

MAX_BACKOFF = 60.0
_T = TypeVar("_T")


class _Retry(Exception):
    """Not delivered, worth another try (4xx, or the connection dropped before the final '.')."""


class _Unreachable(Exception):
    """Could not connect or greet at all: about the server, not about this reader."""


def _words(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    return f"{code} {' '.join(text.split())}".strip()


_QUEUE_ID = re.compile(r"(?:queued as|id=|<)\s*([A-Za-z0-9._@-]+)", re.I)


def _send_dot(sock: socket.socket, dot: bytes | memoryview) -> bool:
    """Write the final "." (and what follows it). False when the connection was already gone
    and not one byte of it left: the server never saw the end of the message, so it is not
    delivered and may be retried. A failure after the first byte raises: uncertain."""
    try:
        sent = sock.send(dot)
    except OSError:
        return False
    if sent < len(dot):
        sock.sendall(dot[sent:])
    return True


def _uncertain(r: Recipient, e: BaseException) -> Outcome:
    return Outcome(r.email, "uncertain", f"connection lost after the message was sent, before the server "
                                         f"answered ({e or type(e).__name__}); not resent")


class _Connection:
    """One SMTP session, reconnected on demand."""

    def __init__(self, backend: SMTPBackend):
        self.b = backend
        self.smtp: smtplib.SMTP | None = None
        self.pipelining = False

    def ensure(self) -> smtplib.SMTP:
        if self.smtp is not None:
            return self.smtp
        b = self.b
        try:
            if b.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(b.host, b.port, timeout=b.timeout, context=b.ssl_context)
            else:
                smtp = smtplib.SMTP(b.host, b.port, timeout=b.timeout)
            smtp.ehlo()
            if b.security == "starttls":
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    raise BackendError(f"smtp.security: {b.host}:{b.port} does not offer STARTTLS")
                smtp.starttls(context=b.ssl_context)
                smtp.ehlo()
            if b.username:
                try:
                    smtp.login(b.username, b.password or "")
                except smtplib.SMTPAuthenticationError as e:
                    smtp.close()
                    raise BackendError(f"smtp: login as {b.username} refused: {_words(e.smtp_code, e.smtp_error)}"
                                       ) from None
                except smtplib.SMTPNotSupportedError:
                    smtp.close()
                    raise BackendError(f"smtp.username: {b.host}:{b.port} does not offer AUTH "
                                       "(use security = \"starttls\" or \"tls\"?)") from None
        except ssl.SSLError as e:
            raise BackendError(f"smtp: TLS with {b.host}:{b.port} failed: {e.reason or e}") from None
        except (OSError, smtplib.SMTPException) as e:
            raise _Unreachable(f"cannot connect to {b.host}:{b.port}: {e}") from None
        self.pipelining = smtp.has_extn("pipelining")
        try:  # the final "." is a write of its own (after the ledger mark): don't let Nagle hold it 40 ms
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        except OSError:
            pass
        self.smtp = smtp
        return smtp

    def drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            except OSError:
                pass
            self.smtp = None

    def quit(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self.drop()

    def reset(self) -> None:
        """RSET after a refused transaction; a connection that cannot even do that is dropped."""
        try:
            assert self.smtp is not None
            code, _ = self.smtp.rset()
            if code != 250:
                self.drop()
        except (OSError, smtplib.SMTPException, AssertionError):
            self.drop()

    def end_refused(self, replies: list[tuple[int, bytes]]) -> None:
        """After MAIL/RCPT was refused: a DATA the server still accepted (354) is ended empty,
        then the transaction is reset, so the connection can carry the next message."""
        if len(replies) == 3 and replies[2][0] == 354 and self.smtp is not None:
            try:
                self.smtp.send(b".\r\n")
                self.smtp.getreply()
            except (OSError, smtplib.SMTPServerDisconnected):
                self.drop()
        if self.smtp is not None:
            self.reset()

    def transact(self, r: Recipient, data: bytes) -> Outcome:
        """One attempt with `data` dot-stuffed and CRLF-terminated (`to_wire`). Returns
        sent/failed/uncertain, raises _Retry or _Unreachable."""
        smtp = self.ensure()
        mail = f"MAIL FROM:<{self.b.return_path(r) or self.b.envelope_from}>\r\n".encode("ascii")
        rcpt = f"RCPT TO:<{r.email}>\r\n".encode("ascii")
        try:
            if self.pipelining:
                smtp.send(mail + rcpt + b"DATA\r\n")
                replies = [smtp.getreply(), smtp.getreply(), smtp.getreply()]
            else:
                smtp.send(mail)
                replies = [smtp.getreply()]
                if replies[0][0] == 250:
                    smtp.send(rcpt)
                    replies.append(smtp.getreply())
                    if replies[1][0] in (250, 251):
                        smtp.send(b"DATA\r\n")
                        replies.append(smtp.getreply())
        except (OSError, smtplib.SMTPServerDisconnected) as e:
            self.drop()
            raise _Retry(f"connection lost before the message was sent: {e}") from None
        refusal = _refusal(replies)
        if refusal is not None:
            self.end_refused(replies)
            return self._answer(r, *refusal)
        try:
            smtp.sock.sendall(data)  # type: ignore[union-attr]
        except OSError as e:  # no "." went out: the server must discard what it got
            self.drop()
            raise _Retry(f"connection lost while sending the message: {e}") from None
        self.handoff(r)  # committed in the ledger before the server can take it
        try:
            if not _send_dot(smtp.sock, b".\r\n"):  # type: ignore[arg-type]
                self.drop()
                raise _Retry("connection lost before the end of the message was sent")
            code, msg = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as e:
            self.drop()
            return _uncertain(r, e)
        if code == 421:
            self.drop()
        return self._answer(r, code, msg)

    def pipeline(self, todo: Sequence[Recipient], render: Callable[[Recipient, bytes], bytes]
                 ) -> tuple[dict[int, Outcome], list[tuple[int, str]], int]:
        """Send `todo` with each end-of-data written together with the next message's
        MAIL/RCPT/DATA (RFC 2920 lets message content open a group): one round trip a message.

        Returns (outcomes by index, [(index, why)] refused for now: retry with backoff,
        index of the first reader not attempted). Stops at the first connection trouble,
        leaving the rest to the caller. The ledger is told before each final ".", as in
        `transact`.
        """
        smtp = self.ensure()
        outcomes: dict[int, Outcome] = {}
        retry: list[tuple[int, str]] = []

        def commands(r: Recipient) -> bytes:
            sender = self.b.return_path(r) or self.b.envelope_from
            return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{r.email}>\r\nDATA\r\n".encode("ascii")

        def settle(i: int, code: int, msg: bytes) -> None:
            try:
                outcomes[i] = self.b.done(self._answer(todo[i], code, msg))
            except _Retry as e:
                retry.append((i, str(e)))

        def lost(i: int, e: BaseException) -> None:
            self.drop()
            outcomes[i] = self.b.done(_uncertain(todo[i], e))

        n = len(todo)
        try:
            smtp.send(commands(todo[0]))
        except (OSError, smtplib.SMTPServerDisconnected):
            self.drop()
            return outcomes, retry, 0
        def wire(i: int) -> tuple[memoryview, memoryview]:
            """todo[i]'s message, and the "." with the next commands, from one buffer."""
            tail = b".\r\n" + (commands(todo[i + 1]) if i + 1 < n else b"")
            data = memoryview(render(todo[i], tail))
            return data[:len(data) - len(tail)], data[len(data) - len(tail):]

        prev: int | None = None  # whose "." went out with this group and still awaits its reply
        ready: tuple[memoryview, memoryview] | None = None  # todo[k]'s bytes, built ahead
        k = 0
        while k < n:
            if prev is not None:
                try:
                    code, msg = smtp.getreply()
                except (OSError, smtplib.SMTPServerDisconnected) as e:
                    lost(prev, e)
                    return outcomes, retry, k
                settle(prev, code, msg)
                prev = None
                if self.smtp is None:  # 421: the server is closing
                    return outcomes, retry, k
            try:
                replies = [smtp.getreply(), smtp.getreply(), smtp.getreply()]
            except (OSError, smtplib.SMTPServerDisconnected):
                self.drop()
                return outcomes, retry, k
            refusal = _refusal(replies)
            if refusal is not None:
                self.end_refused(replies)
                settle(k, *refusal)
                k += 1
                ready = None
                if self.smtp is None:
                    return outcomes, retry, k
                if k < n:
                    try:
                        smtp.send(commands(todo[k]))
                    except (OSError, smtplib.SMTPServerDisconnected):
                        self.drop()
                        return outcomes, retry, k
                continue
            body, dot = ready if ready is not None else wire(k)
            try:
                smtp.sock.sendall(body)  # type: ignore[union-attr]
            except OSError as e:  # no "." went out: the server must discard what it got
                self.drop()
                retry.append((k, f"connection lost while sending the message: {e}"))
                return outcomes, retry, k + 1
            # committed in the ledger before the server can take it; a database elsewhere
            # commits while we build the next message
            ahead = self.handoff(todo[k], functools.partial(wire, k + 1) if k + 1 < n else None)
            try:
                if not _send_dot(smtp.sock, dot):  # type: ignore[arg-type]
                    self.drop()
                    retry.append((k, "connection lost before the end of the message was sent"))
                    return outcomes, retry, k + 1
            except OSError as e:
                lost(k, e)
                return outcomes, retry, k + 1
            prev = k
            k += 1
            # else build the next message while the server takes this one (the wait releases the GIL)
            ready = ahead if ahead is not None else wire(k) if k < n else None
        if prev is not None:
            try:
                code, msg = smtp.getreply()
            except (OSError, smtplib.SMTPServerDisconnected) as e:
                lost(prev, e)
                return outcomes, retry, n
            settle(prev, code, msg)
        return outcomes, retry, n

    def handoff(self, r: Recipient, meanwhile: Callable[[], _T] | None = None) -> _T | None:
        """Tell the ledger, and return once it has committed. While a database elsewhere
        (PostgreSQL) commits, run `meanwhile` and return what it made; when the write was
        committed at once (SQLite), return None and leave `meanwhile` to the caller.

        If the ledger cannot record (disk full, locked, server gone), cut the connection. It is
        mid-DATA: a polite QUIT would be read as message text and wait out the timeout, while
        a cut connection makes the server discard the unfinished message."""
        try:
            committed = self.b.start_handoff([r])
            if committed is None:
                return None
            try:
                return meanwhile() if meanwhile is not None else None
            finally:
                committed()
        except BaseException:
            self.drop()
            raise

    def _answer(self, r: Recipient, code: int, msg: bytes) -> Outcome:
        words = _words(code, msg)
        if 200 <= code < 300:
            m = _QUEUE_ID.search(words)
            return Outcome(r.email, "sent", words, m.group(1) if m else None)
        if code == 421 or code < 0:  # closing, or gibberish: start over on a new connection
            self.drop()
            raise _Retry(words)
        if 400 <= code < 500:
            raise _Retry(words)
        return Outcome(r.email, "failed", words)


class SMTPBackend(Backend):
    name = "smtp"

    def __init__(self, config: Config, **options: object) -> None:
        super().__init__(config, **options)
        s = {**config.smtp, **{k: v for k, v in options.items() if v is not None}}
        self.security = str(s.get("security", "none"))
        if self.security not in ("none", "starttls", "tls"):
            raise BackendError(f"smtp.security: {self.security!r} is not one of none, starttls, tls")
        self.host = str(s.get("host") or "localhost")
        self.port = int(s.get("port") or (465 if self.security == "tls" else 25))  # type: ignore[call-overload]
        self.username = s.get("username") or None
        self.password = env_secret(SMTP_PASSWORD_VAR)
        if self.username and not self.password:
            raise BackendError(f"smtp.username is set but {SMTP_PASSWORD_VAR} is not: "
                               "export the relay's password in that variable")
        self.timeout = float(s.get("timeout") or 30)  # type: ignore[arg-type]
        self.connections = int(s.get("connections") or 1)  # type: ignore[call-overload]
        self.retries = int(s.get("retries", 5))  # type: ignore[call-overload]
        self.retry_delay = float(s.get("retry_delay", 1.0))  # type: ignore[arg-type]
        self.ssl_context = s.get("ssl_context") or ssl.create_default_context()
        self.envelope_from = str(s.get("envelope_from") or config.sender_address)
        self._conns: list[_Connection] = []
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()

    def open(self, message: PreparedMessage, hooks: Hooks = NO_HOOKS) -> None:
        super().open(message, hooks)
        if self.connections > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.connections, thread_name_prefix="smtp")
        # connect once now so a wrong host or password stops the send before anyone is marked
        conn = self._connection()
        try:
            conn.ensure()
        except _Unreachable as e:
            raise BackendError(f"smtp: {e}") from None

    def _connection(self) -> _Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _Connection(self)
            self._conns.append(conn)
        return conn

    def send_messages(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        if self.message is None:
            raise BackendError("smtp: send_messages() called before open()")
        if self._pool is None or len(recipients) == 1:
            return self._send_chunk(recipients)
        return self._send_parallel(recipients)

    def _send_parallel(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Each connection takes chunks from a shared list until it is empty."""
        size = max(1, min(50, -(-len(recipients) // (2 * self.connections))))
        chunks = [recipients[i:i + size] for i in range(0, len(recipients), size)]
        results: list[list[Outcome]] = [[] for _ in chunks]
        lock = threading.Lock()
        items = iter(enumerate(chunks))
        stop: list[BackendError] = []

        def worker() -> None:
            while not stop:
                with lock:
                    item = next(items, None)
                if item is None:
                    return
                try:
                    results[item[0]] = self._send_chunk(item[1])
                except BackendError as e:
                    results[item[0]] = e.outcomes
                    stop.append(e)

        assert self._pool is not None
        futures = [self._pool.submit(worker) for _ in range(min(self.connections, len(chunks)))]
        for f in futures:
            f.result()
        flat = [o for chunk in results for o in chunk]
        if stop:
            stop[0].outcomes = flat
            raise stop[0]
        return flat

    def _send_chunk(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """On one connection: pipelined when the server allows, one by one otherwise."""
        assert self.message is not None
        conn = self._connection()
        results: dict[int, Outcome] = {}
        start = 0
        try:
            while start < len(recipients):
                outs: dict[int, Outcome] = {}
                retry: list[tuple[int, str]] = []
                done = 0
                if conn.smtp is not None and conn.pipelining and len(recipients) - start > 1:
                    part = recipients[start:]
                    outs, retry, done = conn.pipeline(part, self.message.to_wire)
                    for i, o in outs.items():
                        results[start + i] = o
                    for i, why in retry:
                        results[start + i] = self._send_one(part[i], tried=1, last=why)
                if not (outs or retry or done):  # not connected yet, no pipelining, or no progress
                    results[start] = self._send_one(recipients[start])
                    done = 1
                start += done
        except BackendError as e:
            e.outcomes = [results[i] for i in sorted(results)]
            raise
        return [results[i] for i in range(len(recipients))]

    def _send_one(self, r: Recipient, *, tried: int = 0, last: str = "") -> Outcome:
        """One reader, with retries and backoff (the first `tried` attempts already happened)."""
        assert self.message is not None
        data = self.message.to_wire(r)
        conn = self._connection()
        for attempt in range(tried, self.retries + 1):
            if attempt:
                time.sleep(min(MAX_BACKOFF, self.retry_delay * 2 ** (attempt - 1)))
            try:
                return self.done(conn.transact(r, data))
            except _Retry as e:
                last = str(e)
            except _Unreachable as e:
                last = str(e)
                if attempt == self.retries:
                    raise BackendError(f"smtp: {e} (gave up after {attempt + 1} attempts)") from None
            except (TimeoutError, smtplib.SMTPException) as e:  # anything smtplib throws before "."
                conn.drop()
                last = str(e)
        return self.done(Outcome(r.email, "failed", f"{last} (gave up after {self.retries + 1} attempts)"))

    def close(self) -> None:
        for conn in self._conns:
            conn.quit()
        self._conns.clear()
        self._local = threading.local()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _refusal(replies: list[tuple[int, bytes]]) -> tuple[int, bytes] | None:
    """The first refused reply of MAIL FROM / RCPT TO / DATA, or None if all were accepted."""
    for (code, msg), ok in zip(replies, ((250,), (250, 251), (354,)), strict=False):
        if code not in ok:
            return code, msg
    return None
