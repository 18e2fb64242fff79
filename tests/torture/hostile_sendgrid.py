"""A hostile SendGrid stand-in: tests/sendgrid_server.py's schema-checking server, misbehaving at random.

Per request, drawn from a seeded RNG at configurable rates: 429 with X-RateLimit-*
headers, 500 / 502 / 503, an answer slower than the client's timeout (with the request
accepted, or not), a connection reset after accepting or without accepting, a slow but
timely answer, and a 400 with SendGrid's error body. Faults queued with `script()` still
come first. The server's own `accepted` list is the truth the ledger is compared with.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tests.sendgrid_server import (
    Fault,
    SendGridServer,
    rate_limited,
    refuse,
    reset_after_accept,
    reset_without_accept,
    server_error,
    slow,
)

BAD_REQUEST = "The from address does not match a verified Sender Identity."

DEFAULT_RATES = {
    "429": 0.06, "500": 0.03, "502": 0.03, "503": 0.03,
    "slow_past_timeout_accepted": 0.03, "slow_past_timeout_not_accepted": 0.02,
    "reset_after_accept": 0.03, "reset_without_accept": 0.03, "slow_in_time": 0.05, "400": 0.01,
}


class HostileSendGridServer(SendGridServer):
    def __init__(self, api_key: str = "SG.test-key", *, rates: dict[str, float] | None = None, seed: int = 0,
                 timeout: float = 0.5, **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.rates = dict(DEFAULT_RATES if rates is None else rates)
        unknown = set(self.rates) - set(DEFAULT_RATES)
        assert not unknown, f"unknown fault kinds: {unknown}"
        self.rng = random.Random(seed)
        self.timeout = timeout  # the client's; "slow past timeout" answers after 1.5 x this
        self.faults: Counter[str] = Counter()
        self.enabled = True

    def _fault(self, kind: str) -> Fault:
        late = self.timeout * 1.5
        return {
            "429": lambda: rate_limited(reset_in=0.2),
            "500": lambda: server_error(500),
            "502": lambda: server_error(502),
            "503": lambda: server_error(503),
            "slow_past_timeout_accepted": lambda: slow(late, accept=True),
            "slow_past_timeout_not_accepted": lambda: slow(late, accept=False),
            "reset_after_accept": reset_after_accept,
            "reset_without_accept": reset_without_accept,
            "slow_in_time": lambda: slow(self.timeout / 10, accept=True),
            "400": lambda: refuse(400, BAD_REQUEST, "from.email"),
        }[kind]()

    def _next_fault(self) -> Fault | None:
        scripted = super()._next_fault()
        if scripted is not None:
            return scripted
        with self._lock:
            if not self.enabled:
                return None
            x = self.rng.random()
            for kind, rate in self.rates.items():
                if x < rate:
                    self.faults[kind] += 1
                    return self._fault(kind)
                x -= rate
        return None

    def script_each(self) -> None:
        """Queue one fault of every kind with a non-zero rate, so each kind happens at least once."""
        kinds = [k for k, rate in self.rates.items() if rate > 0]
        self.rng.shuffle(kinds)
        with self._lock:
            self.faults.update(kinds)
        self.script(*(self._fault(k) for k in kinds))

    def calm(self) -> None:
        with self._lock:
            self.enabled = False
