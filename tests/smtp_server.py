"""A real SMTP server on loopback for tests (aiosmtpd), with scripted misbehaviour.

    with SMTPServer(rcpt_replies={"bad@example.org": ["550 5.1.1 no such user"]}) as server:
        ... send to 127.0.0.1:server.port ...
        assert server.count("ada@example.org") == 1

- Every accepted message is logged once per recipient (`deliveries`, `count`, `messages`).
- `rcpt_replies` / `data_replies`: per address, a list of replies used by successive
  attempts ("451 4.3.0 try later", "550 ..."); when the list runs out the server accepts.
  A DATA reply applies when the address is among the transaction's recipients; the
  message is NOT logged (a 4xx/5xx at the end of DATA means "not taken").
- `drop_after_data`: per address, how many times to take the message (it IS logged: the
  server has it) and then cut the connection instead of answering: the uncertain case.
- `delay`: seconds to wait before answering each end of DATA (a slow server); messages
  are logged when the wait is over, whether or not the client is still there, as a real
  MTA that has received the final "." would deliver.
  The reply "DROP" cuts the connection at RCPT instead of answering.
- `pipelining`: advertise PIPELINING (aiosmtpd itself reads pipelined commands fine).
- `auth`: (user, password) required via AUTH PLAIN/LOGIN; `tls_context`: offer and
  require STARTTLS; `implicit_tls`: an SSLContext to speak TLS from the first byte.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.ports import free_port


@dataclass(frozen=True)
class Delivery:
    mail_from: str
    rcpt: str
    data: bytes
    session: int

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class _Script:
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    drop_after_data: dict[str, int] = field(default_factory=dict)


class _Handler:
    def __init__(self, server: SMTPServer):
        self.server = server

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.server.lock:
            self.server.quit_sessions.add(id(session))
        return "221 Bye"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        reply = self.server._next_reply(self.server.script.rcpt_replies, address)
        if reply == "DROP":  # the connection dies before any message was sent
            server.transport.close()
            return "421 never seen: the connection is already closed"
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        s = self.server
        if s.delay:
            await asyncio.sleep(s.delay)
        for rcpt in envelope.rcpt_tos:
            reply = s._next_reply(s.script.data_replies, rcpt)
            if reply:
                return reply
        data = envelope.original_content or envelope.content
        sid = id(session)
        with s.lock:
            for rcpt in envelope.rcpt_tos:
                s.deliveries.append(Delivery(envelope.mail_from, rcpt.lower(), data, sid))
            s.sessions.add(sid)
            n = len(s.deliveries)
            drop = any(s.script.drop_after_data.get(r.lower(), 0) > 0 for r in envelope.rcpt_tos)
            for r in envelope.rcpt_tos:
                if s.script.drop_after_data.get(r.lower(), 0) > 0:
                    s.script.drop_after_data[r.lower()] -= 1
        if drop:
            server.transport.close()
            return "250 never seen: the connection is already closed"
        return f"250 2.0.0 Ok: queued as Q{n:08d}"


class _Authenticator:
    def __init__(self, user: str, password: str):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.user
              and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


class SMTPServer:
    """aiosmtpd on 127.0.0.1 in a background thread; a context manager."""

    def __init__(self, *, rcpt_replies: dict[str, Iterable[str]] | None = None,
                 data_replies: dict[str, Iterable[str]] | None = None,
                 drop_after_data: dict[str, int] | None = None, delay: float = 0.0, pipelining: bool = False,
                 auth: tuple[str, str] | None = None, tls_context: Any = None, implicit_tls: Any = None,
                 port: int | None = None):
        self.script = _Script(
            rcpt_replies={k.lower(): list(v) for k, v in (rcpt_replies or {}).items()},
            data_replies={k.lower(): list(v) for k, v in (data_replies or {}).items()},
            drop_after_data={k.lower(): v for k, v in (drop_after_data or {}).items()},
        )
        self.delay = delay
        self.pipelining = pipelining
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self.sessions: set[int] = set()
        self.quit_sessions: set[int] = set()  # sessions the client ended with QUIT
        self.attempts: Counter[str] = Counter()  # RCPT commands seen per address
        kwargs: dict[str, Any] = {"data_size_limit": 64 * 1024 * 1024}
        if auth:
            kwargs.update(authenticator=_Authenticator(*auth), auth_required=True, auth_require_tls=tls_context
                          is not None)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, ssl_context=implicit_tls,
                                     **kwargs)

    def _next_reply(self, table: dict[str, list[str]], address: str) -> str | None:
        key = address.lower()
        if table is self.script.rcpt_replies:
            with self.lock:
                self.attempts[key] += 1
        replies = table.get(key)
        if replies:
            return replies.pop(0)
        return None

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what arrived -----------------------------------------------------------------------

    def count(self, address: str) -> int:
        address = address.lower()
        with self.lock:
            return sum(1 for d in self.deliveries if d.rcpt == address)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(d.rcpt for d in self.deliveries)

    def messages(self, address: str) -> list[EmailMessage]:
        address = address.lower()
        with self.lock:
            return [d.message() for d in self.deliveries if d.rcpt == address]

    def clear(self) -> None:
        with self.lock:
            self.deliveries.clear()
