"""The backend contract, in the spirit of Django's mail backends.

    with get_backend("smtp", config) as backend:      # __init__ validates settings
        backend.open(message, hooks)                   # connect; the issue's shared parts
        outcomes = backend.send_messages(recipients)   # one Outcome per recipient, in order
    # close() on exit

A backend never raises for one recipient's failure: it reports it in that recipient's
Outcome. It raises BackendError only when it cannot go on at all (bad credentials, the
service refuses every request), carrying in `BackendError.outcomes` what it settled before
that; the send loop then stops, and what was already reported stays recorded.

The send loop's `Hooks` are passed to `open()`. Every backend calls `self.handoff(...)`
(or `self.start_handoff(...)` and then the call it returns) right before a hand-off becomes
irrevocable (SMTP: before the final "." of DATA; an HTTP API: before the request; the
outbox: before the file is renamed into place) and `self.done(outcome)` as soon as each
outcome is known. The ledger marks exactly those recipients `sending` and records each
outcome as it comes, so a kill at any moment leaves at most the hand-offs in flight
`uncertain` (see store/ledger.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from newsletter.audience.secrets import SigningKeys
    from newsletter.config import Config
    from newsletter.deliver.message import PreparedMessage, Recipient

#: sent: the server/ESP accepted it. failed: refused for good (5xx, 4xx other than rate
#: limits), with the remote answer. uncertain: the hand-off may or may not have happened
#: (connection died after DATA / request in flight) and must not be resent silently.
Status = Literal["sent", "failed", "uncertain"]


@dataclass(frozen=True)
class Outcome:
    email: str
    status: Status
    detail: str = ""  # the server's or ESP's own words for failures; message id for sends
    remote_id: str | None = None  # SMTP queue id / SendGrid X-Message-Id, when known
    #: failed only: whether running the send again may succeed (a refused request, a full
    #: mailbox) or cannot until the input changes (this reader's data breaks a limit or a rule)
    retryable: bool = True


def _nothing(_: object) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """What the send loop wants to hear during one open() session (outside a send: nothing).

    `handoff(recipients)` must return (its write committed) before their hand-off becomes
    irrevocable; if it raises, the backend must not hand them off. `start_handoff`, when
    given, is used instead: it starts that write and returns None if it is committed already,
    else a call that returns once it is (or raises), so a backend can build its next message
    while a database elsewhere commits. `outcome(o)` may be called from a backend's own threads.
    """

    handoff: Callable[[Sequence[Recipient]], None] = _nothing
    outcome: Callable[[Outcome], None] = _nothing
    start_handoff: Callable[[Sequence[Recipient]], Callable[[], None] | None] | None = None


NO_HOOKS = Hooks()


class Backend(ABC):
    """Base class. Subclasses validate their settings in __init__ (fail early, name the setting)."""

    name: str = "base"
    #: Readers per batch this backend works best with, used when [send] batch_size is not
    #: set (None: the general default, 500). SendGrid: 1,000, one full request per batch.
    batch_size: int | None = None

    def __init__(self, config: Config, **options: object) -> None:
        self.config = config
        self.options = options
        self.message: PreparedMessage | None = None
        self.hooks: Hooks = NO_HOOKS

    def open(self, message: PreparedMessage, hooks: Hooks = NO_HOOKS) -> None:
        """Get ready to send `message` (connect, log in), reporting to `hooks`. Idempotent."""
        self.message = message
        self.hooks = hooks

    def return_path(self, recipient: Recipient) -> str | None:
        """The envelope sender for `recipient` when `[bounces] address` is set: a VERP
        address naming issue and reader, so `newsletter bounces` knows exactly who bounced."""
        address = self.config.bounces.get("address")
        if not address or self.message is None:
            return None
        if self.message.test:  # a `send --to` test is not in the ledger: its bounce names nobody
            return str(address)
        from newsletter.audience.verp import verp_address

        return verp_address(str(address), self._verp_keys, self.message.issue_slug, recipient.email)

    @cached_property
    def _verp_keys(self) -> SigningKeys:
        from newsletter.audience.secrets import signing_keys

        return signing_keys(allow_development=True)  # `send` has already required the real key if needed

    def handoff(self, recipients: Sequence[Recipient]) -> None:
        """Backends call this just before `recipients` can no longer be taken back."""
        committed = self.start_handoff(recipients)
        if committed is not None:
            committed()

    def start_handoff(self, recipients: Sequence[Recipient]) -> Callable[[], None] | None:
        """`handoff` for a backend with work of its own to do meanwhile: None if the write is
        committed, else a call the backend must make once, before the hand-off (it returns
        when the write is committed, or raises)."""
        if self.hooks.start_handoff is None:
            self.hooks.handoff(recipients)
            return None
        return self.hooks.start_handoff(recipients)

    def done(self, outcome: Outcome) -> Outcome:
        """Backends call this with each outcome as soon as it is known."""
        self.hooks.outcome(outcome)
        return outcome

    @abstractmethod
    def send_messages(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Hand off one batch; return one Outcome per recipient, in the same order."""

    def submit(self, recipients: Sequence[Recipient]) -> list[Outcome]:
        """Hand off a batch, perhaps returning before all of it is settled (a backend that
        overlaps its network wait with the send loop's reading of the next batch).

        Returns the outcomes settled since the last call, of this batch or earlier ones;
        `finish()` returns the rest. Such a backend reports hand-offs and outcomes through
        its hooks as they happen, from whichever thread makes them, and `close()` waits for
        a hand-off in flight. By default: `send_messages`, nothing left over.
        """
        return self.send_messages(recipients)

    def finish(self) -> list[Outcome]:
        """Wait for every hand-off `submit` started; return the outcomes it has not returned."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
