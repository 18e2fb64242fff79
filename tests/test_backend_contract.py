"""The one contract every backend keeps (newsletter/backends/base.py), run against each.

To add a backend: write a `Harness` subclass that builds it against a real local stand-in
(a directory, an SMTP server, an HTTP server) and can say what the stand-in received,
then add it to HARNESSES. Every test below then runs against it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import Built, build_issue
from newsletter.config import Config, load_config
from newsletter.deliver.backends import Backend, Outcome, get_backend
from newsletter.deliver.backends.base import Hooks
from newsletter.deliver.message import PreparedMessage, Recipient, make_recipient, prepare_message
from newsletter.errors import BackendError
from tests.sendgrid_server import SendGridServer
from tests.sendkit import SLUG, make_project
from tests.smtp_server import SMTPServer

KEYS = SigningKeys(b"contract-test-key-0123456789abcdef", (), False)


class Harness:
    """A backend plus a real local stand-in for where its messages go."""

    name = ""
    can_refuse = False  # can the stand-in be told to refuse one recipient for good?

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def backend(self, config: Config) -> Backend:
        return get_backend(self.name, config)

    def refuse(self, email: str) -> None:
        raise NotImplementedError

    def received(self) -> Counter[str]:
        """How many messages each address got."""
        raise NotImplementedError

    def to_header(self, email: str) -> str:
        """The To the stand-in saw for `email` (an address or a display form containing it)."""
        raise NotImplementedError

    def open_sessions(self) -> int:
        """Sessions the backend opened at the stand-in and has not ended (connectionless: 0)."""
        return 0


class OutboxHarness(Harness):
    name = "outbox"

    def received(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for f in (self.tmp_path / "p" / "outbox").rglob("*.eml"):
            msg = message_from_bytes(f.read_bytes(), policy=policy.default)
            out[msg["To"].addresses[0].addr_spec.lower()] += 1
        return out

    def to_header(self, email: str) -> str:
        for f in (self.tmp_path / "p" / "outbox").rglob("*.eml"):
            msg = message_from_bytes(f.read_bytes(), policy=policy.default)
            if msg["To"].addresses[0].addr_spec.lower() == email:
                return str(msg["To"])
        return ""


class SMTPHarness(Harness):
    name = "smtp"
    can_refuse = True

    def start(self) -> None:
        self.server = SMTPServer().start()

    def stop(self) -> None:
        self.server.stop()

    def backend(self, config: Config) -> Backend:
        return get_backend("smtp", config, host=self.server.host, port=self.server.port, retry_delay=0.01)

    def refuse(self, email: str) -> None:
        self.server.script.rcpt_replies[email] = ["550 5.7.1 refused by policy"]

    def received(self) -> Counter[str]:
        return self.server.counts()

    def to_header(self, email: str) -> str:
        return str(self.server.messages(email)[0]["To"])

    def open_sessions(self) -> int:
        with self.server.lock:
            return len(self.server.sessions - self.server.quit_sessions)


class SendGridHarness(Harness):
    """The real SendGrid backend against the schema-checking stand-in (tests/sendgrid_server.py)."""

    name = "sendgrid"
    key = "SG.contract-key"

    def start(self) -> None:
        self.server = SendGridServer(api_key=self.key).start()
        self.saved_key = os.environ.get("SENDGRID_API_KEY")
        os.environ["SENDGRID_API_KEY"] = self.key

    def stop(self) -> None:
        self.server.stop()
        if self.saved_key is None:
            os.environ.pop("SENDGRID_API_KEY", None)
        else:
            os.environ["SENDGRID_API_KEY"] = self.saved_key

    def backend(self, config: Config) -> Backend:
        config = dataclasses.replace(config, sendgrid={**config.sendgrid, "host": self.server.url, "timeout": 10})
        return get_backend("sendgrid", config, backoff=0.01)

    def received(self) -> Counter[str]:
        return Counter({e.lower(): n for e, n in self.server.count_by_email().items()})

    def to_header(self, email: str) -> str:
        to = self.server.render(email)["to"][0]
        return f"{to.get('name', '')} <{to['email']}>"


HARNESSES: dict[str, type[Harness]] = {"outbox": OutboxHarness, "smtp": SMTPHarness, "sendgrid": SendGridHarness}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = HARNESSES[request.param](tmp_path)
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = make_project(tmp_path_factory.mktemp("contract") / "p")
    config = load_config(root / "newsletter.toml")
    return build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)


@pytest.fixture
def config(harness: Harness) -> Config:
    root = make_project(harness.tmp_path / "p")
    return load_config(root / "newsletter.toml")


def recipients(config: Config, n: int) -> list[Recipient]:
    return [make_recipient(email=f"contract{i}@example.org", name=f"Reader Ø{i}", language="en", fields={},
                           slug=SLUG, config=config, keys=KEYS) for i in range(n)]


def message(built: Built) -> PreparedMessage:
    return prepare_message(built)


def test_one_outcome_per_recipient_in_order_and_one_message_each(harness: Harness, config: Config,
                                                                 built: Built) -> None:
    rs = recipients(config, 7)
    with harness.backend(config) as backend:
        backend.open(message(built))
        backend.open(message(built))  # idempotent
        first = backend.send_messages(rs[:3])
        second = backend.send_messages(rs[3:])
    outcomes = first + second
    assert [o.email for o in outcomes] == [r.email for r in rs]
    assert all(isinstance(o, Outcome) and o.status == "sent" for o in outcomes), outcomes
    assert harness.received() == Counter({r.email: 1 for r in rs})
    assert "contract4@example.org" in harness.to_header("contract4@example.org")


def test_close_is_safe_twice(harness: Harness, config: Config, built: Built) -> None:
    """close() releases what the backend holds (its threads, its connections) and a second
    close() neither fails nor sends anything again."""
    def own_threads() -> set[threading.Thread]:  # non-daemon: the backends' worker pools, not the stand-ins'
        return {t for t in threading.enumerate() if not t.daemon}

    before = own_threads()
    backend = harness.backend(config)
    backend.open(message(built))
    outcomes = backend.send_messages(recipients(config, 1))
    backend.close()
    after_first = harness.received()
    backend.close()
    assert [(o.email, o.status) for o in outcomes] == [("contract0@example.org", "sent")]
    assert after_first == harness.received() == Counter({"contract0@example.org": 1})
    assert own_threads() <= before
    assert harness.open_sessions() == 0


def test_handoff_is_announced_before_each_outcome(harness: Harness, config: Config, built: Built) -> None:
    events: list[tuple[str, str]] = []
    rs = recipients(config, 4)
    with harness.backend(config) as backend:
        backend.open(message(built), Hooks(handoff=lambda batch: events.extend(("handoff", r.email) for r in batch),
                                           outcome=lambda o: events.append(("outcome", o.email))))
        backend.send_messages(rs)
    for r in rs:
        assert events.index(("handoff", r.email)) < events.index(("outcome", r.email))
    assert len(events) == 2 * len(rs)


def test_a_started_handoff_is_committed_before_the_hand_off(harness: Harness, config: Config,
                                                            built: Built) -> None:
    """With a database elsewhere, the mark is started and committed later (the SMTP backend
    builds its next message meanwhile); each reader's commit must return before the server or
    service has anything of theirs, and be waited for exactly once."""
    events: list[tuple[str, ...]] = []
    rs = recipients(config, 4)

    def start(batch: Sequence[Recipient]) -> Callable[[], None]:
        events.extend(("started", r.email) for r in batch)

        def committed() -> None:
            time.sleep(0.05)  # time for anything already handed off to arrive
            got = harness.received()
            events.extend(("committed", r.email, str(got[r.email])) for r in batch)

        return committed

    with harness.backend(config) as backend:
        backend.open(message(built), Hooks(start_handoff=start, outcome=lambda o: events.append(("outcome", o.email))))
        outcomes = backend.send_messages(rs)
    assert [o.status for o in outcomes] == ["sent"] * len(rs)
    assert harness.received() == Counter(r.email for r in rs)
    for r in rs:
        assert events.count(("committed", r.email, "0")) == 1, events  # nothing of theirs had arrived
        assert (events.index(("started", r.email)) < events.index(("committed", r.email, "0"))
                < events.index(("outcome", r.email)))
    assert len([e for e in events if e[0] == "committed"]) == len(rs)


def test_a_refused_recipient_fails_with_the_remote_words_and_the_rest_go_out(harness: Harness, config: Config,
                                                                            built: Built) -> None:
    if not harness.can_refuse:
        pytest.skip(f"{harness.name} never refuses a recipient")
    rs = recipients(config, 3)
    harness.refuse(rs[1].email)
    with harness.backend(config) as backend:
        backend.open(message(built))
        outcomes = backend.send_messages(rs)
    assert [o.status for o in outcomes] == ["sent", "failed", "sent"]
    assert "refused by policy" in outcomes[1].detail
    assert harness.received() == Counter({rs[0].email: 1, rs[2].email: 1})


def test_send_before_open_is_an_error(harness: Harness, config: Config) -> None:
    with harness.backend(config) as backend, pytest.raises(BackendError):
        backend.send_messages(recipients(config, 1))


def test_unknown_backend_is_refused_by_name(tmp_path: Path) -> None:
    config = load_config(make_project(tmp_path / "p") / "newsletter.toml")
    with pytest.raises(BackendError, match="unknown backend 'carrier-pigeon'"):
        get_backend("carrier-pigeon", config)
