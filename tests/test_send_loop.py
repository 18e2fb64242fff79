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
from newsletter.deliver.send import make_plan, send_issue
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


class BatchOutbox(OutboxBackend):
    """A backend that does not report hand-offs: the loop must mark the whole batch first."""

    reports_handoff = False
    seen: list[dict[str, str]]

    def send_messages(self, recipients: Sequence[Recipient]) -> list:
        self.seen.append({r.email: statuses(self.root.parent)[r.email] for r in recipients})
        return super().send_messages(recipients)


def test_a_backend_without_handoff_reports_gets_its_batch_marked_sending_first(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    backend = BatchOutbox(built.config)
    backend.seen = []
    report = send_issue(built, backend, root / "subscribers.csv", conn, keys=KEYS, batch_size=8)
    assert report.sent == 20
    assert [len(b) for b in backend.seen] == [8, 8, 4]
    assert all(set(b.values()) == {"sending"} for b in backend.seen), "committed before the hand-off"
    assert set(statuses(root).values()) == {"sent"}


class SuppressMidway(OutboxBackend):
    """An unsubscribe arrives (through another connection) while the send is running."""

    def send_messages(self, recipients: Sequence[Recipient]) -> list:
        other = open_store(self.root.parent / ".newsletter" / "state.db")
        other.suppress(address(15), "unsubscribed", source="one-click")
        other.close()
        return super().send_messages(recipients)


def test_an_unsubscribe_during_the_send_is_honoured_from_the_next_batch(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    report = send_issue(built, SuppressMidway(built.config), root / "subscribers.csv", conn, keys=KEYS,
                        batch_size=5)
    assert (report.sent, report.suppressed) == (19, 1)
    assert address(15) not in statuses(root)
    assert not (root / "outbox" / SLUG / f"{address(15)}.eml").exists()


class DiesMidBatch(OutboxBackend):
    """Hands off two readers of the third batch, then gives up (the service went away)."""

    def send_messages(self, recipients: Sequence[Recipient]) -> list:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            done = super().send_messages(recipients[:2])
            e = BackendError("the service refuses every request")
            e.outcomes = done  # type: ignore[attr-defined]
            raise e
        return super().send_messages(recipients)


def test_a_backend_giving_up_mid_batch_keeps_what_went_out_and_a_rerun_finishes(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    first = send_issue(built, DiesMidBatch(built.config), root / "subscribers.csv", conn, keys=KEYS, batch_size=4)
    assert first.stopped == "the service refuses every request"
    assert (first.sent, first.uncertain) == (10, 0) and not first.complete
    assert list(statuses(root).values()).count("sent") == 10
    second = send_issue(built, OutboxBackend(built.config), root / "subscribers.csv", conn, keys=KEYS)
    assert (second.sent, second.already_sent) == (10, 10) and second.complete
    assert len(list((root / "outbox" / SLUG).glob("*.eml"))) == 20


def test_rate_limit_spaces_the_hand_offs(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    start = time.monotonic()
    report = send_issue(built, OutboxBackend(built.config), root / "subscribers.csv", conn, keys=KEYS, rate=40)
    assert report.sent == 20
    assert time.monotonic() - start >= (20 - 4) / 40 * 0.9  # batches of 4, the first one at once


def test_plan_counts_match_what_the_send_does(setup) -> None:  # noqa: ANN001
    built, conn, root = setup
    conn.suppress(address(3), "bounced", source="test")
    plan = make_plan(built, root / "subscribers.csv", conn)
    report = send_issue(built, OutboxBackend(built.config), root / "subscribers.csv", conn, keys=KEYS)
    assert (plan.to_send, plan.suppressed) == (report.sent, report.suppressed) == (19, 1)
    after = make_plan(built, root / "subscribers.csv", conn)
    assert (after.to_send, after.already_sent, after.suppressed) == (0, 19, 1)
