"""SendGrid webhook events settle readers the ledger has as `uncertain` (a request whose answer
never came): real SQLite state, the webhook's own apply_events."""

from __future__ import annotations

from newsletter.audience.webhook import ISSUE_ARG, apply_events
from newsletter.deliver.backends.base import Outcome
from newsletter.deliver.message import Recipient
from newsletter.store import Store
from newsletter.store.ledger import Ledger

ISSUE = "2011-11-28-test"


def test_events_settle_uncertain_readers_and_nobody_else(store: Store) -> None:
    ledger = Ledger(store, ISSUE, "sendgrid")
    emails = ["took@example.org", "bounced@example.org", "deferred@example.org", "unknown@example.org",
              "sent@example.org"]
    ledger.mark_sending([Recipient(e, None, {}, f"<{i}@x>", "<https://x>") for i, e in enumerate(emails)])
    ledger.record([Outcome("sent@example.org", "sent", "202")], flush=True)
    assert ledger.recover() == 4, "the request's answer never came: four uncertain"

    def ev(kind: str, email: str, **extra: str) -> dict[str, str]:
        return {"event": kind, "email": email, ISSUE_ARG: ISSUE, "sg_event_id": kind + email, **extra}

    applied = apply_events(store, [ev("processed", "took@example.org"), ev("bounce", "bounced@example.org",
                                                               reason="550 5.1.1 no such user"),
                        ev("deferred", "deferred@example.org"), ev("bounce", "sent@example.org"),
                        {**ev("processed", "unknown@example.org"), ISSUE_ARG: "another-issue"}])
    got = {r.email: (r.status, r.last_error) for s in ("sent", "failed", "uncertain") for r in ledger.rows(s)}
    assert got == {
        "took@example.org": ("sent", ""),
        "deferred@example.org": ("sent", ""),
        "bounced@example.org": ("failed", "settled by SendGrid's bounce event: 550 5.1.1 no such user"),
        "unknown@example.org": ("uncertain", got["unknown@example.org"][1]),  # another issue's event
        "sent@example.org": ("sent", ""),  # already settled: a later bounce does not rewrite the send
    }
    assert ledger.counts()["uncertain"] == 1, "--resend-uncertain now resends only the one still unknown"
    assert (applied.events, applied.settled, applied.ignored) == (5, 3, 0), applied
