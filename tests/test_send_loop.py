"""The send loop's ordering guarantees, checked from inside a real (outbox) backend."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from newsletter.audience.secrets import SigningKeys
from newsletter.compose.build import Built, build_issue
from newsletter.config import load_config
from newsletter.deliver.backends.outbox import OutboxBackend
from newsletter.deliver.message import Recipient
from newsletter.deliver.send import SendOptions, make_plan, send_issue
from newsletter.errors import BackendError
from newsletter.store import Store, open_store
from tests.sendkit import SLUG, address, make_project

KEYS = SigningKeys(b"loop-test-key-0123456789abcdef", (), False)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Built, Store, Path]:
    root = make_project(tmp_path / "p", subscribers=20)
    config = load_config(root / "newsletter.toml")
    built = build_issue(root / "issues" / f"{SLUG}.yaml", config, write=False)
    return built, open_store(config.database), root


def statuses(root: Path) -> dict[str, str]:
    """Read the ledger through a second connection, as another process would see it."""
    conn = sqlite3.connect(root / ".newsletter" / "state.db")
    try:
        return dict(conn.execute("SELECT email, status FROM ledger"))
    finally:
        conn.close()


class MarkedOutbox(OutboxBackend):
    """Looks at the ledger (through another connection) as each reader's hand-off happens."""

    seen: list[tuple[str, str]]

    def handoff(self, recipients: Sequence[Recipient]) -> None:
        super().handoff(recipients)
        self.seen.extend((r.email, statuses(self.root.parent)[r.email]) for r in recipients)


def test_every_hand_off_is_committed_sending_before_it_happens_and_only_that_one(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    backend = MarkedOutbox(built.config)
    backend.seen = []
    report = send_issue(built, SendOptions(backend, batch_size=8), root / "subscribers.csv", conn, keys=KEYS)
    assert report.sent == 20
    assert len(backend.seen) == 20 and {status for _, status in backend.seen} == {"sending"}
    assert set(statuses(root).values()) == {"sent"}


def test_send_options_decide_the_batch_size_once(setup) -> None:  # noqa: ANN001
    built, _, _ = setup
    outbox = OutboxBackend(built.config)
    assert SendOptions(outbox).batch_size == 500
    assert SendOptions(outbox, batch_size=8).batch_size == 8
    assert SendOptions(outbox, rate=40).batch_size == 4  # ten small batches a second
    assert SendOptions.from_config(built.config, outbox, rate=0).batch_size == built.config.batch_size


class SuppressMidway(OutboxBackend):
    """An unsubscribe arrives (through another connection) while the send is running."""

    def send_messages(self, recipients: Sequence[Recipient]) -> list:
        other = open_store(self.root.parent / ".newsletter" / "state.db")
        other.suppress(address(15), "unsubscribed", source="one-click")
        other.close()
        return super().send_messages(recipients)


def test_an_unsubscribe_during_the_send_is_honoured_from_the_next_batch(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    report = send_issue(built, SendOptions(SuppressMidway(built.config), batch_size=5), root / "subscribers.csv",
                        conn, keys=KEYS)
    assert (report.sent, report.suppressed) == (19, 1)
    assert address(15) not in statuses(root)
    assert not (root / "outbox" / SLUG / f"{address(15)}.eml").exists()


class DiesMidBatch(OutboxBackend):
    """Hands off two readers of the third batch, then gives up (the service went away)."""

    def send_messages(self, recipients: Sequence[Recipient]) -> list:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            done = super().send_messages(recipients[:2])
            raise BackendError("the service refuses every request", outcomes=done)
        return super().send_messages(recipients)


def test_a_backend_giving_up_mid_batch_keeps_what_went_out_and_a_rerun_finishes(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    first = send_issue(built, SendOptions(DiesMidBatch(built.config), batch_size=4), root / "subscribers.csv", conn,
                       keys=KEYS)
    assert first.stopped == "the service refuses every request"
    assert (first.sent, first.uncertain) == (10, 0) and not first.complete
    assert list(statuses(root).values()).count("sent") == 10
    second = send_issue(built, SendOptions(OutboxBackend(built.config)), root / "subscribers.csv", conn, keys=KEYS)
    assert (second.sent, second.already_sent) == (10, 10) and second.complete
    assert len(list((root / "outbox" / SLUG).glob("*.eml"))) == 20


def test_rate_limit_spaces_the_hand_offs(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    start = time.monotonic()
    report = send_issue(built, SendOptions(OutboxBackend(built.config), rate=40), root / "subscribers.csv", conn,
                        keys=KEYS)
    assert report.sent == 20
    assert time.monotonic() - start >= (20 - 4) / 40 * 0.9  # batches of 4, the first one at once


def test_plan_counts_match_what_the_send_does(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    conn.suppress(address(3), "bounced", source="test")
    plan = make_plan(built, root / "subscribers.csv", conn)
    report = send_issue(built, SendOptions(OutboxBackend(built.config)), root / "subscribers.csv", conn, keys=KEYS)
    assert (plan.to_send, plan.suppressed) == (report.sent, report.suppressed) == (19, 1)
    after = make_plan(built, root / "subscribers.csv", conn)
    assert (after.to_send, after.already_sent, after.suppressed) == (0, 19, 1)
