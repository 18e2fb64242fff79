"""A hostile SMTP server: tests/smtp_server.py's aiosmtpd server, misbehaving at random.

At configurable rates (per transaction, drawn from a seeded RNG) it answers 421 / 451 /
452 / 550 at RCPT (and now and then a reply that is not SMTP at all, or a 9 kB line),
451 / 552 at the end of DATA, drops the connection before DATA (at RCPT), during DATA
(after its 354, while the body streams in) and after DATA (the message is taken and
logged, then the connection is cut before the reply), stalls past the client's timeout
(before DATA: nothing taken; after DATA: taken, as a real MTA that has the final "."
would deliver, but answered too late), and greets slowly.

Its own log is the truth the ledger is compared with: `deliveries` (inherited) holds
every message it took, `refusals[address]` the last permanent refusal it gave, and
`faults[kind]` / `hit[kind]` how many faults of each kind it injected and on whom.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from typing import Any

from aiosmtpd.smtp import SMTP

from tests.smtp_server import SMTPServer, _Handler

#: fault kind -> where it strikes. Rates are per transaction attempt.
KINDS = {
    "rcpt_421": "421 4.3.2 Service shutting down, closing channel",
    "rcpt_451": "451 4.3.0 Temporary local problem, try later",
    "rcpt_452": "452 4.5.3 Too many recipients / insufficient storage",
    "rcpt_550": "550 5.1.1 User unknown in virtual mailbox table",
    "drop_before_data": "",
    "stall_before_data": "",
    "garbage_reply": "ohai, this is not SMTP",
    "overlong_reply": "451-" + "x" * 9000,
    "drop_during_data": "",
    "data_451": "451 4.7.1 Greylisted, come back later",
    "data_552": "552 5.3.4 Message size exceeds fixed maximum message size",
    "drop_after_data": "",
    "stall_after_data": "",
}
RCPT_KINDS = ("rcpt_421", "rcpt_451", "rcpt_452", "rcpt_550", "drop_before_data", "stall_before_data",
              "garbage_reply", "overlong_reply", "drop_during_data")
DATA_KINDS = ("data_451", "data_552", "drop_after_data", "stall_after_data")
PERMANENT = ("rcpt_550", "data_552")

DEFAULT_RATES = {
    "rcpt_421": 0.015, "rcpt_451": 0.02, "rcpt_452": 0.015, "rcpt_550": 0.015,
    "drop_before_data": 0.015, "stall_before_data": 0.0, "drop_during_data": 0.015,
    "garbage_reply": 0.005, "overlong_reply": 0.005,
    "data_451": 0.02, "data_552": 0.01, "drop_after_data": 0.01, "stall_after_data": 0.0,
}


class _HostileSMTP(SMTP):
    """aiosmtpd's protocol with one extra trick: cutting the connection in the middle of DATA."""

    hostile: HostileSMTPServer

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's naming
        envelope = self.envelope
        victim = envelope.rcpt_tos[0].lower() if envelope is not None and envelope.rcpt_tos else None
        if victim and self.hostile._pop_pending(victim, "drop_during_data"):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await asyncio.wait_for(self._reader.readuntil(b"\r\n"), 2)  # a line of the body, then gone
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            if self.transport is not None:
                self.transport.close()
            return
        await super().smtp_DATA(arg)


class _HostileHandler(_Handler):
    server: HostileSMTPServer

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        s = self.server
        if s.slow_greeting and s._roll("slow_accept", s.slow_greeting_rate):
            await asyncio.sleep(s.slow_greeting)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        s = self.server
        key = address.lower()
        with s.lock:
            s.attempts[key] += 1
        kind = s._draw(RCPT_KINDS, key)
        if kind in ("rcpt_421", "rcpt_451", "rcpt_452", "rcpt_550", "garbage_reply", "overlong_reply"):
            if kind == "rcpt_550":
                with s.lock:
                    s.refusals[key] = KINDS[kind]
            return KINDS[kind]
        if kind == "drop_before_data":
            server.transport.close()
            return "421 4.4.2 never seen: connection already closed"
        if kind == "stall_before_data":
            await asyncio.sleep(s.stall)
            return "451 4.4.2 too late, the client gave up"
        if kind == "drop_during_data":
            with s.lock:
                s.pending[key].add("drop_during_data")
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        s = self.server
        key = envelope.rcpt_tos[0].lower()
        kind = s._draw(DATA_KINDS, key)
        if kind in ("data_451", "data_552"):
            if kind == "data_552":
                with s.lock:
                    s.refusals[key] = KINDS[kind]
            return KINDS[kind]
        reply = await super().handle_DATA(server, session, envelope)  # taken (and logged) now
        if kind == "stall_after_data":
            await asyncio.sleep(s.stall)  # ... but answered after the client has given up
        if kind == "drop_after_data":
            server.transport.close()
        return reply


class HostileSMTPServer(SMTPServer):
    """SMTPServer that injects faults at `rates` (kind -> probability per transaction)."""

    def __init__(self, *, rates: dict[str, float] | None = None, seed: int = 0, stall: float = 1.5,
                 slow_greeting: float = 0.0, slow_greeting_rate: float = 0.0, max_faults: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        unknown = set(self.rates) - set(KINDS)
        assert not unknown, f"unknown fault kinds: {unknown}"
        self.rng = random.Random(seed)
        self.stall = stall
        self.slow_greeting = slow_greeting
        self.slow_greeting_rate = slow_greeting_rate
        self.max_faults = max_faults
        self.enabled = True
        self.faults: Counter[str] = Counter()
        self.hit: defaultdict[str, set[str]] = defaultdict(set)
        self.refusals: dict[str, str] = {}
        self.pending: defaultdict[str, set[str]] = defaultdict(set)
        # the parent's controller (port, options), with our handler and our protocol class
        self.controller.handler = _HostileHandler(self)
        self.controller.factory = self._factory  # type: ignore[method-assign]

    def _factory(self) -> SMTP:
        smtp = _HostileSMTP(self.controller.handler, **self.controller.SMTP_kwargs)
        smtp.hostile = self
        return smtp

    # --- drawing faults (called from the server's event loop thread) ---------------------

    def _roll(self, kind: str, rate: float) -> bool:
        with self.lock:
            if not self.enabled or (self.max_faults is not None and sum(self.faults.values()) >= self.max_faults):
                return False
            if self.rng.random() < rate:
                self.faults[kind] += 1
                return True
            return False

    def _draw(self, kinds: tuple[str, ...], address: str) -> str | None:
        with self.lock:
            if not self.enabled or (self.max_faults is not None and sum(self.faults.values()) >= self.max_faults):
                return None
            x = self.rng.random()
            for kind in kinds:
                rate = self.rates.get(kind, 0.0)
                if x < rate:
                    self.faults[kind] += 1
                    self.hit[kind].add(address)
                    return kind
                x -= rate
            return None

    def _pop_pending(self, address: str, kind: str) -> bool:
        with self.lock:
            if kind in self.pending[address]:
                self.pending[address].discard(kind)
                return True
            return False

    def calm(self) -> None:
        """Stop injecting faults (for the clean rerun after the storm)."""
        with self.lock:
            self.enabled = False


__all__ = ["HostileSMTPServer", "KINDS", "DEFAULT_RATES", "PERMANENT"]
